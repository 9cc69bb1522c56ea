// A worker's HTTPS listener: a uWS SSLApp serving the same handler as the plain one, with one
// certificate per SNI name. Facts of the bundled uWS build (measured, docs/operations.md#tls):
// - each server name has its own router, so the handlers (WebSocket upgrades', requests') are
//   registered for every name;
// - addServerName/removeServerName work at run time: new handshakes for that name get the
//   new certificate, established connections go on;
// - the default certificate (clients without SNI or with an unknown name) is fixed when the
//   SSLApp is made, so a new default means a new SSLApp listening on the same port
//   (SO_REUSEPORT) before the old listen socket closes; the old app keeps its connections.
// Client certificates (server.tls.client_auth) are not served here: see mtls-listener.ts.
// Files come from the control plane's snapshot (src/control/tls-manager.ts), already checked:
// a missing key or a wrong passphrase here would crash the process.
import { uWS, type HttpRequest, type HttpResponse, type ListenSocket, type TemplatedApp, type WebSocketBehavior } from './uws.js';
import type { TlsCertFiles, TlsListenerConfig } from '../shared/tls-config.js';

type Handler = (res: HttpResponse, req: HttpRequest) => void;
type Closable = TemplatedApp & { close(): void };

function appOptions(config: TlsListenerConfig, cert: TlsCertFiles): Record<string, string> {
  const opts: Record<string, string> = { cert_file_name: cert.certFile, key_file_name: cert.keyFile };
  if (config.passphrase !== null) opts.passphrase = config.passphrase;
  if (config.ciphers !== null) opts.ssl_ciphers = config.ciphers;
  return opts;
}

/** Everything but the SNI entries: a change here needs a new SSLApp. */
function baseKey(c: TlsListenerConfig): string {
  return JSON.stringify([c.defaultCert.fingerprint, c.passphrase, c.ciphers]);
}

export class TlsListener {
  private app: TemplatedApp | null = null;
  private socket: ListenSocket | null = null;
  /** Apps replaced by a rotation: not listening, still serving their connections until closeAll. */
  private readonly retired: TemplatedApp[] = [];
  private config: TlsListenerConfig | null = null;
  private host = '';
  private port = 0;

  constructor(private readonly handler: Handler, private readonly ws: WebSocketBehavior<never>) {}

  get configured(): boolean {
    return this.config !== null;
  }

  private build(config: TlsListenerConfig): TemplatedApp {
    const app = uWS.SSLApp(appOptions(config, config.defaultCert)); // throws "App construction failed"
    app.ws('/*', this.ws).any('/*', this.handler);
    for (const { name, cert } of config.byName) this.addName(app, config, name, cert);
    return app;
  }

  private addName(app: TemplatedApp, config: TlsListenerConfig, name: string, cert: TlsCertFiles): void {
    app.addServerName(name, appOptions(config, cert));
    app.domain(name).ws('/*', this.ws).any('/*', this.handler);
  }

  /** Takes a new certificate set; returns an error message (the running set stays) or null. */
  async apply(next: TlsListenerConfig): Promise<string | null> {
    const prev = this.config;
    if (this.socket === null || this.app === null || prev === null) {
      this.config = next; // not listening yet: listen() builds from it
      return null;
    }
    try {
      if (baseKey(prev) !== baseKey(next)) {
        const app = this.build(next);
        const socket = await listenOn(app, this.host, this.port);
        if (socket === null) return `cannot listen on ${this.host}:${this.port} with the new certificates`;
        // The new app accepts first, then the old listen socket closes; its connections go on.
        uWS.us_listen_socket_close(this.socket);
        this.retired.push(this.app);
        this.app = app;
        this.socket = socket;
      } else {
        const before = new Map(prev.byName.map((e) => [e.name, e.cert.fingerprint]));
        const after = new Set(next.byName.map((e) => e.name));
        for (const name of before.keys()) if (!after.has(name)) this.app.removeServerName(name);
        for (const { name, cert } of next.byName) {
          const had = before.get(name);
          if (had === cert.fingerprint) continue;
          if (had !== undefined) this.app.removeServerName(name);
          this.addName(this.app, next, name, cert);
        }
      }
    } catch (err) {
      return String((err as Error)?.message ?? err);
    }
    this.config = next;
    return null;
  }

  async listen(host: string, port: number): Promise<number | null> {
    if (this.config === null) return null;
    this.host = host;
    this.port = port;
    this.app ??= this.build(this.config);
    this.socket = await listenOn(this.app, host, port);
    return this.socket === null ? null : uWS.us_socket_local_port(this.socket as never);
  }

  stopListening(): void {
    if (this.socket !== null) {
      uWS.us_listen_socket_close(this.socket);
      this.socket = null;
    }
  }

  closeAll(): void {
    this.stopListening();
    // close() exists in this uWS build but is missing from its type definitions.
    for (const app of this.retired) (app as Closable).close();
    this.retired.length = 0;
    if (this.app !== null) (this.app as Closable).close();
    this.app = null;
  }
}

function listenOn(app: TemplatedApp, host: string, port: number): Promise<ListenSocket | null> {
  return new Promise((resolve) => app.listen(host, port, (socket) => resolve(socket || null)));
}
