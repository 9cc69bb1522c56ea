// TLS termination and TLS to upstreams, against one real gateway process with certificates
// made by openssl (test/helpers/tls-certs.ts): the default certificate (encrypted key), SNI
// and wildcard selection, HSTS and X-Forwarded-Proto, the plain-HTTP redirect (mTLS: mtls.test.ts),
// https upstreams with a private CA over both clients, and rotation under load.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, request as httpsRequest, type Server } from 'node:https';
import { Readable } from 'node:stream';
import type { PeerCertificate } from 'node:tls';
import autocannon from 'autocannon';
import { request } from 'undici';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { MAIN_JS, startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { freePort } from '../helpers/ports.js';
import { adminClient, waitUntil, type AdminClient } from '../helpers/admin.js';
import { TestPki, type CertFiles } from '../helpers/tls-certs.js';

interface HttpsAnswer { status: number; headers: Record<string, string | string[] | undefined>; body: string; peer: PeerCertificate }

function httpsGet(port: number, path: string, opts: { servername?: string; ca: Buffer; cert?: CertFiles; method?: string; body?: string }): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1', port, path, method: opts.method ?? 'GET', agent: false, ca: opts.ca,
      servername: opts.servername, headers: { host: opts.servername ?? '127.0.0.1' },
      ...(opts.cert ? { cert: readFileSync(opts.cert.cert), key: readFileSync(opts.cert.key) } : {}),
    }, (res) => {
      const peer = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, peer }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Writes a new pair over `target` the way cert managers do: new files renamed over the old. */
function replacePair(target: CertFiles, from: CertFiles): void {
  copyFileSync(from.cert, target.cert + '.new');
  copyFileSync(from.key, target.key + '.new');
  renameSync(target.key + '.new', target.key);
  renameSync(target.cert + '.new', target.cert);
}

const PASS = 'correct horse';
let pki: TestPki;
let otherPki: TestPki;
let ca: Buffer;
let gw: Gateway;
let admin: AdminClient;
let tlsPort: number;
let plain: Upstream;
let secureUp: Server;
let rogueUp: Server;
let mtlsUp: Server;
let defaultFiles: CertFiles;
let apiFiles: CertFiles;

function startHttpsUpstream(files: CertFiles, clientCa?: Buffer): Promise<{ server: Server; port: number }> {
  const mtls = clientCa ? { ca: clientCa, requestCert: true, rejectUnauthorized: true } : {};
  const server = createHttpsServer({ cert: readFileSync(files.cert), key: readFileSync(files.key), ...mtls }, (req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => { n += c.length; });
    req.on('end', () => res.end(JSON.stringify({ secure: true, method: req.method, bodyBytes: n, host: req.headers.host })));
  });
  return freePort().then((port) => new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve({ server, port }))));
}

before(async () => {
  pki = new TestPki();
  otherPki = new TestPki('Other CA');
  ca = readFileSync(pki.ca.cert);
  defaultFiles = pki.leaf('default', { names: ['localhost', 'IP:127.0.0.1'], passphrase: PASS });
  apiFiles = pki.leaf('api', { names: ['api.test'] });
  const wild = pki.leaf('wild', { names: ['*.wild.test'] });
  const upstreamCert = pki.leaf('upstream', { names: ['IP:127.0.0.1', 'upstream.test'] });
  const rogueCert = otherPki.leaf('rogue', { names: ['IP:127.0.0.1'] });
  plain = await startUpstream('plain');
  const s = await startHttpsUpstream(upstreamCert);
  const r = await startHttpsUpstream(rogueCert);
  const m = await startHttpsUpstream(upstreamCert, readFileSync(pki.ca.cert));
  mtlsUp = m.server;
  const gatewayClient = pki.leaf('gateway-client', { names: ['gateway.test'], usage: 'client' });
  secureUp = s.server;
  rogueUp = r.server;
  tlsPort = await freePort();
  const adminPort = await freePort();
  gw = await startGateway(`
server:
  host: 127.0.0.1
  port: __PORT__
  workers: 2
  tls:
    port: ${tlsPort}
    cert_file: ${defaultFiles.cert}
    key_file: ${defaultFiles.key}
    passphrase: "${PASS}"
    hsts: { max_age_s: 600, include_subdomains: true }
    plain_http: redirect
    certificates:
      - { server_names: [api.test], cert_file: ${apiFiles.cert}, key_file: ${apiFiles.key} }
      - { server_names: ["*.wild.test"], cert_file: ${wild.cert}, key_file: ${wild.key} }
admin: { port: ${adminPort} }
services:
  plain: { targets: ["${plain.origin}"] }
  secure: { targets: ["https://127.0.0.1:${s.port}"], tls: { ca_file: ${pki.ca.cert} } }
  rogue: { targets: ["https://127.0.0.1:${r.port}"], tls: { ca_file: ${pki.ca.cert} } }
  mtls: { targets: ["https://127.0.0.1:${m.port}"], tls: { ca_file: ${pki.ca.cert}, servername: upstream.test, cert_file: ${gatewayClient.cert}, key_file: ${gatewayClient.key} } }
  nocert: { targets: ["https://127.0.0.1:${m.port}"], tls: { ca_file: ${pki.ca.cert} } }
  insecure: { targets: ["https://127.0.0.1:${r.port}"], tls: { verify: false } }
routes:
  - { name: insecure, match: { prefix: /insecure }, service: insecure }
  - { name: mtls, match: { prefix: /mtls }, service: mtls }
  - { name: nocert, match: { prefix: /nocert }, service: nocert }
  - { name: secure, match: { prefix: /secure }, service: secure }
  - { name: rogue, match: { prefix: /rogue }, service: rogue }
  - { name: all, match: { prefix: / }, service: plain }
`, { env: { LOBBY_TEST_HOOKS: '1' } });
  admin = adminClient(adminPort);
});

after(async () => {
  await gw?.stop();
  await plain?.close();
  secureUp?.closeAllConnections();
  secureUp?.close();
  rogueUp?.closeAllConnections();
  rogueUp?.close();
  mtlsUp?.closeAllConnections();
  mtlsUp?.close();
  pki?.remove();
  otherPki?.remove();
});

describe('TLS termination', () => {
  it('serves the default certificate (encrypted key) without SNI, with X-Forwarded-Proto https and HSTS', async () => {
    const res = await httpsGet(tlsPort, '/hello', { ca });
    assert.equal(res.status, 200);
    assert.equal(res.peer.subject.CN, 'localhost');
    assert.equal(JSON.parse(res.body).headers['x-forwarded-proto'], 'https');
    assert.equal(res.headers['strict-transport-security'], 'max-age=600; includeSubDomains');
  });

  it('selects the certificate by SNI, wildcards included; an unknown name gets the default', async () => {
    assert.equal((await httpsGet(tlsPort, '/', { ca, servername: 'api.test' })).peer.subject.CN, 'api.test');
    const wild = await httpsGet(tlsPort, '/', { ca, servername: 'x.wild.test' });
    assert.equal(wild.peer.subject.CN, '*.wild.test');
    assert.equal(wild.status, 200, 'the handler is registered for every server name');
    const unknown = await httpsGet(tlsPort, '/', { ca: readFileSync(pki.ca.cert), servername: 'localhost' });
    assert.equal(unknown.peer.subject.CN, 'localhost');
  });

  it('redirects plain HTTP to HTTPS: 301 for GET, 308 for POST; no HSTS on plain HTTP', async () => {
    const before = plain.received.length;
    const get = await request(`${gw.url}/a/b?x=1`, { headers: { host: 'shop.example' } });
    await get.body.dump();
    assert.equal(get.statusCode, 301);
    assert.equal(get.headers.location, `https://shop.example:${tlsPort}/a/b?x=1`);
    assert.equal(get.headers['strict-transport-security'], undefined);
    const post = await request(`${gw.url}/form`, { method: 'POST', body: 'a=1', headers: { host: 'shop.example' } });
    await post.body.dump();
    assert.equal(post.statusCode, 308);
    assert.equal(plain.received.length, before, 'a redirect never reaches the upstream');
  });
});

describe('TLS to upstreams', () => {
  it('reaches an https upstream verified with a private CA over the fast client (GET) and undici (streamed body)', async () => {
    const get = await httpsGet(tlsPort, '/secure/x', { ca });
    assert.equal(get.status, 200, get.body);
    assert.deepEqual(JSON.parse(get.body).secure, true);
    const body = Readable.from([Buffer.alloc(70_000, 1), Buffer.alloc(70_000, 2)]);
    const post = await request(`https://127.0.0.1:${tlsPort}/secure/up`, {
      method: 'POST', body, headers: { host: '127.0.0.1' },
      dispatcher: new (await import('undici')).Agent({ connect: { ca } }),
    });
    const answer = await post.body.json() as { bodyBytes: number; method: string };
    assert.equal(post.statusCode, 200);
    assert.equal(answer.bodyBytes, 140_000);
  });

  it('refuses an upstream whose certificate the CA did not sign (verification is on by default): 502', async () => {
    const res = await httpsGet(tlsPort, '/rogue/x', { ca });
    assert.equal(res.status, 502);
    assert.equal(JSON.parse(res.body).error.code, 'upstream_unavailable');
    assert.equal((await httpsGet(tlsPort, '/insecure/x', { ca })).status, 200, 'verify: false accepts it');
  });
});

describe('TLS to upstreams: client certificate', () => {
  it('presents the configured client certificate to an upstream that requires one; without it, 502', async () => {
    const ok = await httpsGet(tlsPort, '/mtls/x', { ca });
    assert.equal(ok.status, 200, ok.body);
    const refused = await httpsGet(tlsPort, '/nocert/x', { ca });
    assert.equal(refused.status, 502);
  });
});

describe('server.tls through the admin API', () => {
  it('GET /config redacts the passphrase, and PUT of that config back is not taken as a change of server.tls', async () => {
    const got = await admin.get('/config');
    assert.equal(got.body.config.server.tls.passphrase, '<redacted>');
    const put = await admin.put('/config', got.body.config);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const changed = await admin.put('/config', { ...got.body.config, server: { ...got.body.config.server, tls: { ...got.body.config.server.tls, port: 1 } } });
    assert.equal(changed.status, 400);
    assert.match(JSON.stringify(changed.body), /server\.tls.*cannot change at runtime; restart Lobby/);
    assert.doesNotMatch(JSON.stringify(changed.body), new RegExp(PASS));
  });
});

describe('certificate rotation', () => {
  it('rotates the default and an SNI certificate under HTTPS load with zero failed requests; a bad new pair is refused', async (t) => {
    const newDefault = pki.leaf('default2', { names: ['localhost', 'IP:127.0.0.1'], passphrase: PASS, cn: 'localhost-rotated' });
    const newApi = pki.leaf('api2', { names: ['api.test'], cn: 'api-rotated' });
    // The load runs until the rotation was seen and a while after it (not for a fixed time that
    // a slow machine could spend before the new certificates serve).
    let rotated = false;
    let beforeRotation = 0;
    let afterRotation = 0;
    const cannons: autocannon.Instance[] = [];
    t.after(() => { for (const c of cannons) c.stop(); });
    const load = (connection: string, connections: number) => new Promise<autocannon.Result>((resolve, reject) => {
      const instance = autocannon({ url: `https://127.0.0.1:${tlsPort}/load`, connections, duration: 120, headers: { host: '127.0.0.1', connection } },
        (err, result) => (err ? reject(err) : resolve(result)));
      instance.on('response', () => { if (rotated) afterRotation++; else beforeRotation++; });
      cannons.push(instance);
    });
    const run = load('keep-alive', 8);
    // Half the load on new connections: every request a new handshake during the rotation.
    const fresh = load('close', 4);
    // The rotation happens under load: the load answered requests first (not a fixed sleep a slow machine overruns).
    await waitUntil('the load runs before the rotation', () => beforeRotation >= 100, 20_000);
    replacePair(defaultFiles, newDefault);
    replacePair(apiFiles, newApi);
    const probeErrors: string[] = [];
    const cn = (servername?: string) => httpsGet(tlsPort, '/', { ca, servername }).then((r) => r.peer.subject.CN, (e: Error) => { probeErrors.push(e.message); return ''; });
    await waitUntil('the new default certificate serves', async () => (await cn()) === 'localhost-rotated', 20_000);
    await waitUntil('the new SNI certificate serves', async () => (await cn('api.test')) === 'api-rotated', 20_000);
    rotated = true;
    await waitUntil('load goes on after the rotation', async () => afterRotation >= 100, 20_000);
    for (const c of cannons) c.stop();
    const [a, b] = await Promise.all([run, fresh]);
    // The probes are not the load: a probe refused while a file was half-replaced is retried.
    if (probeErrors.length > 0) console.log('rotation probes retried after:', probeErrors);
    for (const r of [a, b]) {
      assert.ok(r.requests.total > 50, `load ran (${r.requests.total} requests)`);
      assert.equal(r.errors, 0, 'no failed requests');
      assert.equal(r.non2xx, 0);
      assert.equal(r.timeouts, 0);
    }
    // A mismatched pair (the api key with the default certificate): refused, the old one serves.
    copyFileSync(apiFiles.key, defaultFiles.key);
    const refused = await admin.post('/tls/reload');
    assert.equal(refused.status, 400);
    assert.match(JSON.stringify(refused.body), new RegExp(`server\\.tls\\.key_file.*${defaultFiles.key.replace(/[.\\/]/g, '\\$&')}.*mismatched`));
    assert.equal((await httpsGet(tlsPort, '/', { ca })).peer.subject.CN, 'localhost-rotated');
    writeFileSync(defaultFiles.key, readFileSync(newDefault.key));
    const ok = await admin.post('/tls/reload');
    assert.equal(ok.status, 200);
  });
});

describe('worker replacement', () => {
  it('a worker started after a crash serves HTTPS with the current (rotated) certificates', async () => {
    await request(`${gw.url}/crash`, { headers: { 'x-lobby-test-crash': '1' } }).then((r) => r.body.dump(), () => undefined);
    await waitUntil('the crashed worker is replaced', () => gw.stderr().includes('data-plane worker replaced'), 15_000);
    // New connections are spread over both workers: every one gets the rotated default and SNI certificates.
    for (let i = 0; i < 12; i++) {
      const res = await httpsGet(tlsPort, '/', { ca, servername: i % 2 === 0 ? undefined : 'api.test' });
      assert.equal(res.status, 200);
      assert.equal(res.peer.subject.CN, i % 2 === 0 ? 'localhost-rotated' : 'api-rotated');
    }
  });
});

describe('plain_http: off', () => {
  it('listens on HTTPS only: the plain port is closed', async () => {
    const [port, securePort] = [await freePort(), await freePort()];
    const file = join(pki.dir, 'https-only.yaml');
    writeFileSync(file, `server: { host: 127.0.0.1, port: ${port}, workers: 1, tls: { port: ${securePort}, plain_http: off, cert_file: ${defaultFiles.cert}, key_file: ${defaultFiles.key}, passphrase: "${PASS}" } }
services: { plain: { targets: ["${plain.origin}"] } }
routes: [ { name: all, match: { prefix: / }, service: plain } ]
`);
    const proc = spawn(process.execPath, [MAIN_JS, 'start', '--config', file], { env: { ...process.env, LOBBY_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    try {
      await waitUntil('the HTTPS-only gateway listens', () => err.includes('"msg":"lobby listening"'), 15_000);
      assert.equal((await httpsGet(securePort, '/', { ca })).status, 200);
      const refused = await new Promise<string>((resolve) => {
        const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve('connected'); });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
      assert.equal(refused, 'ECONNREFUSED');
    } finally {
      proc.kill('SIGTERM');
      const code = await new Promise((r) => proc.once('exit', r));
      assert.equal(code, 0, `drains and exits 0 with the HTTPS listener:\n${err}`);
    }
  });
});
