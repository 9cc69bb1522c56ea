// The HTTPS listener with client-certificate verification (server.tls.client_auth). The
// bundled uWS build cannot require a client certificate nor show the peer's certificate to
// JavaScript, so this listener terminates TLS with Node's tls.Server (requestCert, the
// client CA, the same SNI certificates) and bridges each decrypted connection to a plain uWS
// app of this worker on an internal unix socket (in a private 0700 folder; measured about 40%
// cheaper per round trip than a loopback TCP port). Every request then runs through the same
// handler as on the other listeners; server.ts asks `resolve` which TLS connection it came
// from. How: the bridge opens its connection with a PROXY protocol v2 header (this uWS build
// parses it: getProxiedRemoteAddress) whose 16-byte "source address" is the connection's
// id and a random secret, so a request maps to its TLS connection with one Map lookup, and
// a connection to the internal socket without a live id and secret is refused.
// Facts (docs/operations.md#tls): Node 20 has no SO_REUSEPORT (`reusePort` is Node 22.12+),
// so one listen socket per port: only worker 0 listens; the others leave the port alone.
import { randomFillSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { createServer, createSecureContext, type SecureContext, type SecureContextOptions, type Server, type TLSSocket } from 'node:tls';
import { uWS, type HttpRequest, type HttpResponse, type ListenSocket, type TemplatedApp, type WebSocketBehavior } from './uws.js';
import type { RequestContext } from './request-context.js';
import { clientPeer } from './mtls-identity.js';
import { LISTENER, type ClientPeer, type TlsCertFiles, type TlsListenerConfig } from '../shared/tls-config.js';
import { log } from '../shared/log.js';

type Handler = (res: HttpResponse, req: HttpRequest) => void;
type Closable = TemplatedApp & { close(): void };

/** A TLS handshake that has not finished by then is dropped (a slowloris on the handshake). */
const HANDSHAKE_TIMEOUT_MS = 10_000;
const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

interface Bridged {
  /** The 16 bytes sent as the PROXY header's source address: id (4, big-endian), secret (12). */
  token: Buffer;
  peer: ClientPeer;
  tls: TLSSocket;
  inner: Socket;
}

function contextOptions(config: TlsListenerConfig, cert: TlsCertFiles, ca: Buffer): SecureContextOptions {
  return {
    cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile), passphrase: config.passphrase ?? undefined,
    ciphers: config.ciphers ?? undefined, ca, minVersion: 'TLSv1.2',
  };
}

/** Node's SNI names are matched here: exact first, then `*.rest` for one leading label, as uWS does. */
function sniContexts(config: TlsListenerConfig, ca: Buffer): Map<string, SecureContext> {
  const byFingerprint = new Map<string, SecureContext>();
  const out = new Map<string, SecureContext>();
  for (const { name, cert } of config.byName) {
    let ctx = byFingerprint.get(cert.fingerprint);
    if (ctx === undefined) byFingerprint.set(cert.fingerprint, ctx = createSecureContext(contextOptions(config, cert, ca)));
    out.set(name, ctx);
  }
  return out;
}

export class MtlsListener {
  private server: Server | null = null;
  private inner: TemplatedApp | null = null;
  private innerSocket: ListenSocket | null = null;
  /** Folder (0700) of the internal socket; removed with the listener. */
  private innerDir: string | null = null;
  private innerPath = '';
  private config: TlsListenerConfig | null = null;
  private sni = new Map<string, SecureContext>();
  /** Open bridged connections by id (the token's first 4 bytes). */
  private readonly open = new Map<number, Bridged>();
  private nextId = 1;

  constructor(private readonly handler: Handler, private readonly ws: WebSocketBehavior<never>) {}

  get configured(): boolean {
    return this.config !== null;
  }

  /** Open bridged connections (tests and the leak check). */
  get connections(): number {
    return this.open.size;
  }

  /** Takes a new certificate set: new handshakes get it, open connections go on. An error message, or null. */
  async apply(next: TlsListenerConfig): Promise<string | null> {
    try {
      const ca = readFileSync(next.clientCaFile!);
      const sni = sniContexts(next, ca);
      if (this.server !== null) this.server.setSecureContext(contextOptions(next, next.defaultCert, ca));
      this.sni = sni;
    } catch (err) {
      return String((err as Error)?.message ?? err);
    }
    this.config = next;
    return null;
  }

  async listen(host: string, port: number): Promise<number | null> {
    const config = this.config;
    if (config === null) return null;
    if (this.inner === null) {
      this.innerDir = mkdtempSync(join(tmpdir(), 'lobby-mtls-'));
      this.innerPath = join(this.innerDir, 'bridge.sock');
      this.inner = uWS.App().ws('/*', this.ws).any('/*', this.handler);
      this.innerSocket = await new Promise<ListenSocket | null>((resolve) => this.inner!.listen_unix((s) => resolve(s || null), this.innerPath));
      if (this.innerSocket === null) return null;
    }
    const ca = readFileSync(config.clientCaFile!);
    const server = createServer({
      ...contextOptions(config, config.defaultCert, ca),
      requestCert: true,
      // `optional`: the handshake completes without a certificate; one that fails
      // verification is refused in onSecure, before any byte reaches the gateway.
      rejectUnauthorized: config.clientAuthMode === 'required',
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      // As uWS does: a response is never held back by Nagle waiting for the client's ACK.
      noDelay: true,
      SNICallback: (name, cb) => cb(null, this.contextFor(name)),
    }, (socket) => {
      // A throw here would be uncaught and take the worker down: refuse the one connection instead.
      try { this.onSecure(socket); } catch (err) {
        log.error('mtls connection refused by a fault', { error: String((err as Error)?.stack ?? err) });
        socket.destroy();
      }
    });
    server.on('tlsClientError', () => { /* a refused handshake: the socket is already destroyed */ });
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', (err) => { log.warn('mtls listener cannot listen', { host, port, error: err.message }); resolve(false); });
      server.listen({ host, port }, () => resolve(true));
    });
    if (!ok) return null;
    this.server = server;
    return (server.address() as { port: number }).port;
  }

  private contextFor(name: string): SecureContext | undefined {
    const lower = name.toLowerCase();
    const exact = this.sni.get(lower);
    if (exact !== undefined) return exact;
    const dot = lower.indexOf('.');
    return dot === -1 ? undefined : this.sni.get('*' + lower.slice(dot)); // undefined = the default
  }

  private onSecure(tls: TLSSocket): void {
    const cert = tls.getPeerX509Certificate();
    // A certificate that was sent must verify, in either mode (another CA, expired, ...).
    if (!tls.authorized && cert !== undefined) { tls.destroy(); return; }
    let id = this.nextId;
    while (this.open.has(id)) id = (id % 0xffffffff) + 1;
    this.nextId = (id % 0xffffffff) + 1;
    const token = randomFillSync(Buffer.alloc(16));
    token.writeUInt32BE(id, 0);
    const addr = tls.remoteAddress ?? '';
    const clientIp = addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
    const inner = connect({ path: this.innerPath });
    const entry: Bridged = { token, peer: clientPeer(clientIp, cert), tls, inner };
    this.open.set(id, entry);
    const header = Buffer.alloc(16 + 36);
    PROXY_V2_SIGNATURE.copy(header, 0);
    header[12] = 0x21; // version 2, PROXY
    header[13] = 0x21; // TCP over IPv6
    header.writeUInt16BE(36, 14);
    token.copy(header, 16); // source "address"; the destination address stays zero
    header.writeUInt16BE(tls.remotePort ?? 0, 48);
    header.writeUInt16BE(tls.localPort ?? 0, 50);
    inner.write(header);
    // pipe() carries backpressure both ways: a slow reader pauses the other side's reads.
    tls.pipe(inner);
    inner.pipe(tls);
    // Both sides close together; the entry goes with the inner socket.
    const close = (): void => {
      if (this.open.get(id) === entry) this.open.delete(id);
      tls.destroy();
      inner.destroy();
    };
    tls.on('close', close);
    inner.on('close', close);
    tls.on('error', close);
    inner.on('error', close);
  }

  /**
   * For a request on the internal listener: sets the client's address and certificate from
   * its TLS connection and marks it TLS. False when it came from no open bridge (the caller
   * closes the connection).
   */
  resolve(ctx: RequestContext): boolean {
    const ab = ctx.res.getProxiedRemoteAddress();
    if (ab.byteLength !== 16) return false;
    const b = new Uint8Array(ab);
    const entry = this.open.get(((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0);
    if (entry === undefined) return false;
    const t = entry.token;
    for (let i = 4; i < 16; i++) if (t[i] !== b[i]) return false;
    ctx.peer = entry.peer;
    ctx.clientIp = entry.peer.clientIp;
    ctx.listener = LISTENER.TLS;
    return true;
  }

  stopListening(): void {
    this.server?.close();
    this.server = null;
    if (this.innerSocket !== null) {
      uWS.us_listen_socket_close(this.innerSocket);
      this.innerSocket = null;
    }
  }

  closeAll(): void {
    this.stopListening();
    for (const e of [...this.open.values()]) { e.tls.destroy(); e.inner.destroy(); }
    this.open.clear();
    // close() exists in this uWS build but is missing from its type definitions.
    if (this.inner !== null) (this.inner as Closable).close();
    this.inner = null;
    if (this.innerDir !== null) rmSync(this.innerDir, { recursive: true, force: true });
    this.innerDir = null;
  }
}
