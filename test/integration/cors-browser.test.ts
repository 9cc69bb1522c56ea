// Issue 13, CORS in a real browser: headless Chromium (playwright-core) loads a page from one
// loopback origin and calls the gateway, on another port, with fetch. What the browser allowed
// and refused is what the page could read; the requests the browser sent are counted on the
// wire by a TCP relay in front of the gateway (preflights never reach the upstream, so only
// the relay sees them), and what reached the upstream by the upstream itself.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, connect, type Server as TcpServer, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { freePort } from '../helpers/ports.js';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let upstream: Upstream;
let gw: Gateway;
let pages: Server;
let allowedPort: number;
let otherPort: number;
let relay: TcpServer;
let relayPort: number;
const relaySockets = new Set<Socket>();
let clientBytes = '';
let context: BrowserContext;
let userDataDir: string;

/** Preflights the browser sent (request lines on the wire, through the relay). */
const optionsSent = () => (clientBytes.match(/(?:^|\r\n)OPTIONS \//g) ?? []).length;

function listenOn(server: Server | TcpServer, port: number): Promise<void> {
  return new Promise((resolve, reject) => { server.once('error', reject); server.listen(port, '127.0.0.1', () => resolve()); });
}

before(async () => {
  upstream = await startUpstream('app', (req, res, received) => {
    const json = JSON.stringify({ method: received.method, cookie: req.headers.cookie ?? null, trace: req.headers['x-trace'] ?? null, bodyBytes: received.bodyBytes });
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(json),
      'x-request-cost': '3',
      'x-secret': 'not-exposed',
      // The upstream's own CORS header: the gateway's replace it.
      'access-control-allow-origin': '*',
    });
    res.end(json);
  });
  // One page server on two ports: two origins, one allowed and one not.
  pages = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end('<!doctype html><title>cors</title>'); });
  allowedPort = await freePort();
  await listenOn(pages, allowedPort);
  otherPort = await freePort();
  const second = createServer(pages.listeners('request')[0] as never);
  await listenOn(second, otherPort);
  pages.on('close', () => second.close());
  (pages as Server & { second?: Server }).second = second;

  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
services: { app: { targets: ["${upstream.origin}"] } }
auth:
  providers:
    - { name: tools, issuer: lobby-tools, secret: an-example-secret-of-at-least-32-bytes, algorithms: [HS256] }
cors:
  allow_origins: ["http://127.0.0.1:${allowedPort}"]
  allow_headers: [content-type, x-trace]
  expose_headers: [x-request-cost]
  allow_credentials: true
  max_age: 600
routes:
  - { name: items, match: { prefix: /items, methods: [GET, PUT] }, service: app }
  - { name: private, match: { prefix: /private }, service: app, auth: { provider: tools } }
`);
  // The relay the browser talks to: every byte to the gateway is kept for counting.
  relay = createTcpServer((client) => {
    const server = connect(gw.port, '127.0.0.1');
    relaySockets.add(client).add(server);
    client.on('data', (chunk: Buffer) => { clientBytes += chunk.toString('latin1'); });
    client.pipe(server).pipe(client);
    const close = () => { client.destroy(); server.destroy(); relaySockets.delete(client); relaySockets.delete(server); };
    client.on('error', close).on('close', close);
    server.on('error', close).on('close', close);
  });
  relayPort = await freePort();
  await listenOn(relay, relayPort);

  userDataDir = await mkdtemp(join(tmpdir(), 'lobby-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, { executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
  // Cookies ignore ports: the page's site and the gateway's are the same (127.0.0.1).
  await context.addCookies([{ name: 'sid', value: 'abc123', domain: '127.0.0.1', path: '/' }]);
});

after(async () => {
  await context?.close();
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
  for (const s of relaySockets) s.destroy();
  relay?.close();
  const second = (pages as Server & { second?: Server } | undefined)?.second;
  second?.closeAllConnections();
  second?.close();
  pages?.closeAllConnections();
  pages?.close();
  await gw?.stop();
  await upstream?.close();
});

interface Outcome { ok: boolean; status?: number; body?: string; cost?: string | null; secret?: string | null; error?: string }

/** Runs fetch(url, init) in the page; what the page could read, or the error it got. */
function pageFetch(page: Page, path: string, init: Record<string, unknown> = {}): Promise<Outcome> {
  return page.evaluate(async ({ url, init }) => {
    try {
      const res = await fetch(url, init as RequestInit);
      return { ok: true, status: res.status, body: await res.text(), cost: res.headers.get('x-request-cost'), secret: res.headers.get('x-secret') };
    } catch (err) {
      return { ok: false, error: String(err) };
    }
  }, { url: `http://127.0.0.1:${relayPort}${path}`, init });
}

const put = { method: 'PUT', headers: { 'content-type': 'application/json', 'x-trace': 't-1' }, body: JSON.stringify({ name: 'lamp' }) };

describe('CORS in Chromium', () => {
  let page: Page;
  before(async () => {
    page = await context.newPage();
    await page.goto(`http://127.0.0.1:${allowedPort}/`);
  });

  it('a simple GET from the allowed origin is readable; only the exposed header is visible', async () => {
    const got = await pageFetch(page, '/items/1');
    assert.equal(got.ok, true, got.error);
    assert.equal(got.status, 200);
    assert.equal(JSON.parse(got.body!).method, 'GET');
    assert.equal(got.cost, '3');
    assert.equal(got.secret, null);
  });

  it('a preflighted PUT with a JSON body and a custom header: the gateway answers the preflight, the upstream sees only the PUT; the second PUT within max_age sends no OPTIONS', async () => {
    const before = upstream.received.length;
    const first = await pageFetch(page, '/items/2', put);
    assert.equal(first.ok, true, first.error);
    assert.deepEqual(JSON.parse(first.body!), { method: 'PUT', cookie: null, trace: 't-1', bodyBytes: 15 });
    assert.equal(optionsSent(), 1);
    const second = await pageFetch(page, '/items/2', put);
    assert.equal(second.ok, true, second.error);
    assert.equal(optionsSent(), 1, 'the preflight was cached for max_age');
    assert.deepEqual(upstream.received.slice(before).map((r) => r.method), ['PUT', 'PUT']);
  });

  it('a request with credentials carries the cookie and is readable (Allow-Credentials, the origin echoed, not *)', async () => {
    const got = await pageFetch(page, '/items/3', { credentials: 'include' });
    assert.equal(got.ok, true, got.error);
    assert.equal(JSON.parse(got.body!).cookie, 'sid=abc123');
  });

  it('a 401 from auth carries the CORS headers: the page can read the status and the error', async () => {
    const got = await pageFetch(page, '/private/x');
    assert.equal(got.ok, true, got.error);
    assert.equal(got.status, 401);
    assert.equal(JSON.parse(got.body!).error.code, 'unauthenticated');
  });

  it('the same calls from a disallowed origin are refused by the browser; the simple GET still reached the upstream, the PUT did not', async () => {
    const other = await context.newPage();
    try {
      await other.goto(`http://127.0.0.1:${otherPort}/`);
      const before = upstream.received.length;
      const preflights = optionsSent();
      const get = await pageFetch(other, '/items/1');
      assert.equal(get.ok, false);
      assert.match(get.error!, /TypeError/);
      const refusedPut = await pageFetch(other, '/items/2', put);
      assert.equal(refusedPut.ok, false);
      const credentialed = await pageFetch(other, '/items/3', { credentials: 'include' });
      assert.equal(credentialed.ok, false);
      assert.equal(optionsSent(), preflights + 1, 'the PUT\'s preflight was sent, and refused');
      // Handled as usual: the simple requests went through; the refused preflight stopped the PUT.
      assert.deepEqual(upstream.received.slice(before).map((r) => r.method), ['GET', 'GET']);
    } finally {
      await other.close();
    }
  });
});

describe('CORS on the wire (the same gateway, without a browser)', () => {
  const allowed = () => `http://127.0.0.1:${allowedPort}`;
  async function call(method: string, path: string, headers: Record<string, string>) {
    const res = await request(`${gw.url}${path}`, { method: method as 'GET', headers });
    const body = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body };
  }

  it('a preflight on a GET/PUT route is answered 204 by the gateway with the configured block, no body, and Vary: Origin', async () => {
    const before = upstream.received.length;
    const got = await call('OPTIONS', '/items/9', { origin: allowed(), 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type,x-trace' });
    assert.equal(got.status, 204);
    assert.equal(got.body, '');
    assert.equal(got.headers['access-control-allow-origin'], allowed());
    assert.equal(got.headers['access-control-allow-methods'], 'GET, PUT');
    assert.equal(got.headers['access-control-allow-headers'], 'content-type, x-trace');
    assert.equal(got.headers['access-control-allow-credentials'], 'true');
    assert.equal(got.headers['access-control-max-age'], '600');
    assert.equal(got.headers.vary, 'Origin');
    const refused = await call('OPTIONS', '/items/9', { origin: 'http://evil.test', 'access-control-request-method': 'PUT' });
    assert.equal(refused.status, 204);
    assert.equal(refused.headers['access-control-allow-origin'], undefined);
    assert.equal(upstream.received.length, before, 'no preflight reached the upstream');
    // Not a preflight: the route does not allow OPTIONS.
    const plain = await call('OPTIONS', '/items/9', { origin: allowed() });
    assert.equal(plain.status, 405);
  });

  it('the upstream\'s own Access-Control-Allow-Origin: * is replaced, or removed for an origin outside the list', async () => {
    const ok = await call('GET', '/items/1', { origin: allowed() });
    assert.equal(ok.headers['access-control-allow-origin'], allowed());
    assert.equal(ok.headers['access-control-expose-headers'], 'x-request-cost');
    const other = await call('GET', '/items/1', { origin: 'http://evil.test' });
    assert.equal(other.status, 200);
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    assert.equal(other.headers.vary, 'Origin');
  });
});
