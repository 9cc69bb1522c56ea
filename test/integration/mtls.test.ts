// mTLS on the listener (server.tls.client_auth), against real gateway processes with
// certificates made by openssl: Node's TLS terminates and bridges to the worker's uWS
// (src/data/mtls-listener.ts). One gateway with `required` (2 workers: only worker 0 serves
// the port), one with `optional`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { copyFileSync, readdirSync, readFileSync, readlinkSync, renameSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { Agent } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { freePort } from '../helpers/ports.js';
import { adminClient, waitUntil, type AdminClient } from '../helpers/admin.js';
import { TestPki, type CertFiles } from '../helpers/tls-certs.js';

interface Answer { status: number; headers: IncomingHttpHeaders; body: Buffer; peer: PeerCertificate }

interface Call {
  cert?: CertFiles; servername?: string; method?: string; path?: string; body?: Buffer;
  headers?: Record<string, string>; localAddress?: string; agent?: Agent;
}

let ca: Buffer;

function call(port: number, opts: Call = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1', port, path: opts.path ?? '/echo', method: opts.method ?? 'GET', agent: opts.agent ?? false, ca,
      servername: opts.servername, localAddress: opts.localAddress,
      headers: { host: opts.servername ?? 'localhost', ...opts.headers },
      ...(opts.cert && !opts.agent ? { cert: readFileSync(opts.cert.cert), key: readFileSync(opts.cert.key) } : {}),
    }, (res) => {
      const peer = (res.socket as TLSSocket).getPeerCertificate();
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), peer }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const echoed = (a: Answer): Record<string, string> => JSON.parse(a.body.toString()).headers;
const REFUSED = /certificate|alert|unknown ca|socket hang up|ECONNRESET|EPIPE|expired/i;

function replacePair(target: CertFiles, from: CertFiles): void {
  copyFileSync(from.cert, target.cert + '.new');
  copyFileSync(from.key, target.key + '.new');
  renameSync(target.key + '.new', target.key);
  renameSync(target.cert + '.new', target.cert);
}

let pki: TestPki;
let foreign: TestPki;
let up: Upstream;
let required: Gateway;
let optional: Gateway;
let reqPort: number;
let optPort: number;
let admin: AdminClient;
let served: CertFiles;
let next: CertFiles;
let api: CertFiles;
let alice: CertFiles;
let expired: CertFiles;
let stranger: CertFiles;
const BIG = 24 * 1024 * 1024;
/** The download: more than every buffer on its way (kernel, TLS, bridge, uWS) holds together. */
const HUGE = 96 * 1024 * 1024;
/** Bytes of the download the upstream's socket has taken so far. */
let bigAccepted = 0;

function config(port: number, mode: string, adminPort: number, workers: number): string {
  return `
server:
  host: 127.0.0.1
  port: __PORT__
  workers: ${workers}
  limits: { max_body_bytes: 33554432 }
  tls:
    port: ${port}
    cert_file: ${served.cert}
    key_file: ${served.key}
    plain_http: serve
    client_auth:
      mode: ${mode}
      ca_file: ${pki.ca.cert}
      headers: { subject: X-Client-Cert-Subject, san: X-Client-Cert-San, fingerprint: X-Client-Cert-Sha256 }
    certificates:
      - { server_names: [api.test], cert_file: ${api.cert}, key_file: ${api.key} }
admin: { port: ${adminPort} }
ip_deny: [127.0.0.9/32]
access_log: { path: stdout }
services:
  up: { targets: ["${up.origin}"] }
routes:
  - { name: admin, match: { prefix: /admin }, service: up, client_cert: required }
  - { name: all, match: { prefix: / }, service: up }
`;
}

before(async () => {
  pki = new TestPki('mTLS Test CA');
  foreign = new TestPki('Other CA');
  ca = readFileSync(pki.ca.cert);
  served = pki.leaf('served', { names: ['localhost'] });
  next = pki.leaf('next', { names: ['localhost'], cn: 'rotated.localhost' });
  api = pki.leaf('api', { names: ['api.test'] });
  alice = pki.leaf('alice', { names: ['alice.clients.test'], usage: 'client', cn: 'alice, "admin"' });
  expired = pki.leaf('expired-client', { names: ['old.clients.test'], usage: 'client', days: -1 });
  stranger = foreign.leaf('stranger', { names: ['alice.clients.test'], usage: 'client', cn: 'alice, "admin"' });
  // Echoes the request; /big answers HUGE bytes in 1 MiB writes, each after the last one
  // drained (so `accepted` counts what the socket took); POST bodies are counted.
  up = await startUpstream('up', (req, res, rec) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': HUGE });
      const chunk = Buffer.alloc(1024 * 1024, 7);
      bigAccepted = 0;
      const next = (): void => {
        while (bigAccepted < HUGE) {
          bigAccepted += chunk.length;
          if (bigAccepted >= HUGE) { res.end(chunk); return; }
          if (!res.write(chunk)) { res.once('drain', next); return; }
        }
      };
      next();
      return;
    }
    const json = JSON.stringify({ headers: rec.headers, bodyBytes: rec.bodyBytes });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
    res.end(json);
  });
  reqPort = await freePort();
  optPort = await freePort();
  const adminPort = await freePort();
  required = await startGateway(config(reqPort, 'required', adminPort, 2), { env: { LOBBY_TEST_HOOKS: '1' } });
  optional = await startGateway(config(optPort, 'optional', await freePort(), 1));
  admin = adminClient(adminPort);
});

after(async () => {
  await required?.stop();
  await optional?.stop();
  await up?.close();
  pki?.remove();
  foreign?.remove();
});

describe('mTLS: required', () => {
  it('accepts a certificate from the CA and sends its subject, SAN and fingerprint upstream (RFC 4514, header-safe)', async () => {
    const res = await call(reqPort, { cert: alice });
    assert.equal(res.status, 200, res.body.toString());
    const h = echoed(res);
    assert.equal(h['x-client-cert-subject'], 'CN=alice\\, \\"admin\\"');
    assert.equal(h['x-client-cert-san'], 'DNS:alice.clients.test');
    const der = new X509Certificate(readFileSync(alice.cert)).raw;
    assert.equal(h['x-client-cert-sha256'], createHash('sha256').update(der).digest('hex'));
    assert.equal(h['x-forwarded-proto'], 'https');
  });

  it('refuses a client without a certificate, with one from another CA, and with an expired one', async () => {
    await assert.rejects(call(reqPort), REFUSED);
    await assert.rejects(call(reqPort, { cert: stranger }), REFUSED);
    await assert.rejects(call(reqPort, { cert: expired }), REFUSED);
    assert.equal((await call(reqPort, { cert: alice })).status, 200, 'the listener still serves');
  });

  it('strips spoofed identity headers, on the mTLS listener and on the plain one', async () => {
    const spoof = { 'x-client-cert-subject': 'CN=root', 'x-client-cert-sha256': 'ab', 'x-client-cert-san': 'DNS:evil' };
    const res = echoed(await call(reqPort, { cert: alice, headers: spoof }));
    assert.equal(res['x-client-cert-subject'], 'CN=alice\\, \\"admin\\"', 'one value: the certificate\'s');
    assert.notEqual(res['x-client-cert-sha256'], 'ab');
    const plain = await request(`${required.url}/echo`, { headers: spoof });
    const body = await plain.body.json() as { headers: Record<string, string> };
    assert.equal(body.headers['x-client-cert-subject'], undefined);
    assert.equal(body.headers['x-client-cert-sha256'], undefined);
    assert.equal(body.headers['x-client-cert-san'], undefined);
  });

  it('uses the client\'s address (not the bridge\'s) for X-Forwarded-For, ip rules and the access log', async () => {
    const res = await call(reqPort, { cert: alice, localAddress: '127.0.0.7', path: '/from-seven' });
    assert.equal(echoed(res)['x-forwarded-for'], '127.0.0.7');
    const denied = await call(reqPort, { cert: alice, localAddress: '127.0.0.9' });
    assert.equal(denied.status, 403);
    assert.equal(JSON.parse(denied.body.toString()).error.code, 'ip_denied');
    await waitUntil('the access-log line', () => required.stdout().includes('/from-seven'), 10_000);
    const line = required.stdout().split('\n').find((l) => l.includes('/from-seven'))!;
    assert.equal(JSON.parse(line).client_ip, '127.0.0.7');
  });

  it('selects the SNI certificate and verifies the client on that name too', async () => {
    const res = await call(reqPort, { cert: alice, servername: 'api.test' });
    assert.equal(res.status, 200);
    assert.equal(res.peer.subject.CN, 'api.test');
    await assert.rejects(call(reqPort, { servername: 'api.test' }), REFUSED);
  });

  it('carries a large upload and a large download through the bridge with backpressure', async () => {
    const chunks = Array.from({ length: 96 }, (_, i) => Buffer.alloc(256 * 1024, i));
    const upload = await call(reqPort, { cert: alice, method: 'POST', path: '/upload', body: Buffer.concat(chunks) });
    assert.equal(upload.status, 200);
    assert.equal(JSON.parse(upload.body.toString()).bodyBytes, BIG);
    // A slow reader: the gateway must pause instead of buffering all of it.
    const socket = tlsConnect({ host: '127.0.0.1', port: reqPort, ca, servername: 'localhost', cert: readFileSync(alice.cert), key: readFileSync(alice.key) });
    await new Promise((r) => socket.once('secureConnect', r));
    socket.write('GET /big HTTP/1.1\r\nhost: localhost\r\n\r\n');
    let received = 0;
    socket.on('data', (c: Buffer) => { received += c.length; });
    socket.pause();
    // Once the upstream stopped being able to write (every buffer on the way is full), it
    // stays stopped while the client reads nothing: the gateway paused its upstream read.
    // Stalled: the same count over three samples 300 ms apart (a worker descheduled on a
    // loaded machine for one sample's gap does not pass for a stall).
    const samples: number[] = [];
    await waitUntil('the upstream to stall', async () => {
      await new Promise((r) => setTimeout(r, 300));
      samples.push(bigAccepted);
      const last3 = samples.slice(-3);
      return last3.length === 3 && last3[0] > 0 && last3.every((n) => n === last3[0]);
    }, 20_000);
    const stalledAt = bigAccepted;
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(bigAccepted, stalledAt, 'nothing more left the upstream while the client read nothing');
    assert.ok(stalledAt < HUGE / 2, `the upstream stalled after ${stalledAt} of ${HUGE} bytes`);
    socket.resume();
    await waitUntil('the whole download', () => received >= HUGE, 30_000);
    socket.destroy();
  });

  it('rotates the certificate: new handshakes get it, an open connection goes on', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca, cert: readFileSync(alice.cert), key: readFileSync(alice.key) });
    try {
      const first = await call(reqPort, { cert: alice, agent });
      assert.equal(first.peer.subject.CN, 'localhost');
      replacePair(served, next);
      const reload = await admin.post('/tls/reload');
      assert.equal(reload.status, 200, JSON.stringify(reload.body));
      const fresh = await call(reqPort, { cert: alice });
      assert.equal(fresh.peer.subject.CN, 'rotated.localhost');
      const again = await call(reqPort, { cert: alice, agent });
      assert.equal(again.status, 200);
      assert.equal(again.peer.subject.CN, 'localhost', 'the kept-alive connection still uses its handshake');
    } finally {
      agent.destroy();
    }
  });

  it('leaks no connection: bridged sockets close with their clients', async () => {
    const fds = (): number => readdirSync(`/proc/${required.proc.pid}/fd`).length;
    const before = fds();
    await Promise.all(Array.from({ length: 40 }, () => call(reqPort, { cert: alice })));
    await Promise.all(Array.from({ length: 20 }, () => call(reqPort).catch(() => null)));
    await waitUntil('the bridged sockets to close', () => fds() <= before + 2, 15_000);
  });
});

/** What the internal bridge socket answers to `bytes` sent by someone else ('' = closed without an answer). */
function knock(path: string, bytes: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = netConnect({ path }, () => socket.write(bytes));
    let answer = '';
    socket.on('data', (c: Buffer) => { answer += c.toString('latin1'); });
    socket.on('close', () => resolve(answer));
    socket.on('error', () => undefined);
    setTimeout(() => socket.destroy(), 3000).unref();
  });
}

/** The bridge sockets `pid` listens on (its socket fds matched to /proc/net/unix), not other processes' ones. */
function bridgeSockets(pid: number): string[] {
  const inodes = new Set(readdirSync(`/proc/${pid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return ''; } })
    .map((link) => /^socket:\[(\d+)\]$/.exec(link)?.[1]).filter((i): i is string => i !== undefined));
  return readFileSync('/proc/net/unix', 'latin1').split('\n').map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 8 && inodes.has(f[6]) && f[7].includes('lobby-mtls-')).map((f) => f[7]);
}

describe('mTLS: the internal bridge socket', () => {
  it('closes a connection that does not come from a live bridge (no PROXY header, or a live id with a wrong secret)', async () => {
    const sockets = [...new Set([...bridgeSockets(required.proc.pid!), ...bridgeSockets(optional.proc.pid!)])];
    assert.ok(sockets.length >= 2, `the gateways made their bridge sockets (${sockets.join(', ')})`);
    // Live connections whose ids the knocks below name: ids count up from 1 in each listener.
    const held = await Promise.all([reqPort, optPort].map((port) => new Promise<TLSSocket>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', cert: readFileSync(alice.cert), key: readFileSync(alice.key) });
      socket.once('secureConnect', () => resolve(socket));
      socket.once('error', reject);
    })));
    try {
      const get = Buffer.from('GET /echo HTTP/1.1\r\nhost: localhost\r\n\r\n');
      for (const path of sockets) {
        assert.doesNotMatch(await knock(path, get), /200 OK/);
        for (let id = 1; id <= 300; id++) {
          const proxy = Buffer.alloc(52);
          Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x21, 0x00, 36]).copy(proxy);
          proxy.writeUInt32BE(id, 16); // a connection id, with a zero secret
          assert.doesNotMatch(await knock(path, Buffer.concat([proxy, get])), /200 OK/, `id ${id} on ${path}`);
        }
      }
    } finally {
      for (const socket of held) socket.destroy();
    }
  });
});

describe('mTLS: worker 0 replaced', () => {
  it('listens again after the worker that serves the port crashed', async () => {
    // Only worker 0 serves the mTLS port, so this request reaches it.
    await call(reqPort, { cert: alice, headers: { 'x-lobby-test-crash': '1' } }).catch(() => null);
    await waitUntil('the replacement worker', () => required.stderr().includes('data-plane worker replaced'), 20_000);
    await waitUntil('the mTLS port again', () => call(reqPort, { cert: alice }).then((r) => r.status === 200, () => false), 20_000);
  });
});

describe('mTLS: optional', () => {
  it('serves a client without a certificate, without identity headers (spoofed ones stripped)', async () => {
    const res = await call(optPort, { headers: { 'x-client-cert-subject': 'CN=root' } });
    assert.equal(res.status, 200);
    assert.equal(echoed(res)['x-client-cert-subject'], undefined);
  });

  it('a route with client_cert: required refuses a client without a certificate (403), on the plain listener too', async () => {
    const anonymous = await call(optPort, { path: '/admin/x' });
    assert.equal(anonymous.status, 403);
    assert.equal(JSON.parse(anonymous.body.toString()).error.code, 'client_cert_required');
    assert.equal((await call(optPort, { path: '/admin/x', cert: alice })).status, 200);
    const plain = await request(`${optional.url}/admin/x`);
    assert.equal(plain.statusCode, 403);
    await plain.body.dump();
  });

  it('sends the subject for a good certificate; refuses one from another CA and an expired one', async () => {
    assert.equal(echoed(await call(optPort, { cert: alice }))['x-client-cert-subject'], 'CN=alice\\, \\"admin\\"');
    await assert.rejects(call(optPort, { cert: stranger }), REFUSED);
    await assert.rejects(call(optPort, { cert: expired }), REFUSED);
  });
});
