// End to end: a real Lobby process in front of real upstream HTTP servers.
// Routing and rewrites, method/host matching, header handling, status codes and bodies.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { rawRequest, rawSequence } from '../helpers/raw-http.js';

let users: Upstream;
let orders: Upstream;
let special: Upstream;
let gw: Gateway;

interface Echo { upstream: string; method: string; url: string; headers: Record<string, string>; bodyBytes: number }

async function get(path: string, headers: Record<string, string> = {}, method = 'GET', body?: string) {
  const res = await request(gw.url + path, { method: method as 'GET', headers, body });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
}

before(async () => {
  users = await startUpstream('users');
  orders = await startUpstream('orders');
  special = await startUpstream('special', (req, res, rec) => {
    switch (rec.url) {
      case '/cookies':
        res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; Path=/']);
        res.setHeader('x-multi', ['one', 'two']);
        res.end('ok');
        return;
      case '/teapot':
        res.statusCode = 418;
        res.statusMessage = 'Short And Stout';
        res.end('tea');
        return;
      case '/hop':
        res.setHeader('connection', 'x-secret-hop, keep-alive');
        res.setHeader('x-secret-hop', 'must not pass');
        res.setHeader('keep-alive', 'timeout=5');
        res.setHeader('x-visible', 'yes');
        res.end('hop');
        return;
      case '/empty204':
        res.statusCode = 204;
        res.end();
        return;
      case '/empty200':
        res.setHeader('content-length', '0');
        res.end();
        return;
      case '/chunked':
        res.write('part1-');
        setTimeout(() => res.end('part2'), 20);
        return;
      case '/sized':
        res.setHeader('content-length', '12345');
        res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(12345));
        return;
      case '/created':
        res.statusCode = 201;
        res.setHeader('location', '/things/1');
        res.end('{"id":1}');
        return;
      default:
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ upstream: 'special', method: rec.method, url: rec.url, headers: rec.headers, bodyBytes: rec.bodyBytes }));
    }
  });
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2 }
services:
  users: { targets: ["${users.origin}"] }
  orders: { targets: ["${orders.origin}"] }
  special: { targets: ["${special.origin}"] }
routes:
  - name: users
    match: { prefix: /v1/users, methods: [GET, POST, PUT, DELETE] }
    service: users
    strip_prefix: /v1
  - name: user-v2
    match: { path: "/v2/users/{id}", host: api.example.com }
    service: users
    rewrite: "/users/{id}"
  - name: user-orders
    match: { path: "/v3/users/{uid}/orders/{oid}" }
    service: orders
    rewrite: "/o/{oid}/of/{uid}"
  - name: orders-exact
    match: { path: /v1/orders/summary, methods: [GET] }
    service: special
  - name: orders
    match: { prefix: /v1/orders }
    service: orders
  - name: preserve
    match: { prefix: /keep-host }
    service: users
    preserve_host: true
  - name: special
    match: { prefix: /special }
    service: special
    strip_prefix: /special
  - name: traced
    match: { prefix: /traced, methods: [GET, TRACE] }
    service: users
`);
});

after(async () => {
  await gw?.stop();
  await Promise.all([users?.close(), orders?.close(), special?.close()]);
});

describe('routing', () => {
  it('strips the prefix and keeps the query string', async () => {
    const r = await get('/v1/users/42?x=1&y=two');
    assert.equal(r.status, 200);
    const body = r.json() as Echo;
    assert.equal(body.upstream, 'users');
    assert.equal(body.url, '/users/42?x=1&y=two');
  });

  it('matches the prefix itself and its subpaths, not a longer segment', async () => {
    assert.equal((await get('/v1/users')).json().url, '/users');
    assert.equal((await get('/v1/users/')).json().url, '/users/');
    assert.equal((await get('/v1/usersX')).status, 404);
  });

  it('rewrites a templated path from captured params', async () => {
    const r = await get('/v2/users/9?full=1', { host: 'api.example.com' });
    assert.equal(r.status, 200);
    assert.equal(r.json().url, '/users/9?full=1');
    const two = await get('/v3/users/u7/orders/o42');
    assert.equal(two.json().upstream, 'orders');
    assert.equal(two.json().url, '/o/o42/of/u7');
  });

  it('host-specific routes only match their host', async () => {
    assert.equal((await get('/v2/users/9', { host: 'other.example.com' })).status, 404);
    assert.equal((await get('/v2/users/9', { host: 'API.Example.COM:8443' })).status, 200);
  });

  it('an exact route beats a prefix; the prefix still serves other methods', async () => {
    assert.equal((await get('/v1/orders/summary')).json().upstream, 'special');
    const post = await get('/v1/orders/summary', {}, 'POST', 'x');
    assert.equal(post.json().upstream, 'orders');
    assert.equal(post.json().url, '/v1/orders/summary');
  });

  it('answers 404 JSON with the correlation id when no route matches', async () => {
    const r = await get('/nothing/here', { 'x-correlation-id': 'abc-123' });
    assert.equal(r.status, 404);
    assert.equal(r.headers['x-correlation-id'], 'abc-123');
    assert.deepEqual(r.json(), { error: { status: 404, code: 'route_not_found', message: 'No route matches this request.', correlation_id: 'abc-123' } });
    assert.equal(r.headers['content-type'], 'application/json');
  });

  it('answers 405 with Allow when the path matches but the method does not', async () => {
    const r = await get('/v1/users/1', {}, 'PATCH', 'x');
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, 'GET, POST, PUT, DELETE');
    assert.equal(r.json().error.code, 'method_not_allowed');
  });

  it('answers TRACE 405 on a route without a methods list (as nginx does), forwards it where a route lists it', async () => {
    const refused = await rawRequest(gw.port, 'TRACE /v1/orders/1 HTTP/1.1\r\nHost: a\r\nCookie: secret=1\r\n\r\n');
    assert.equal(refused.status, 405, refused.raw);
    assert.match(refused.body, /"code":"method_not_allowed"/);
    assert.doesNotMatch(refused.headers.get('allow')![0], /TRACE/);
    assert.match(refused.headers.get('allow')![0], /GET/);
    const before = orders.received.length;
    assert.equal(orders.received.length, before, 'TRACE never reached the upstream');
    const listed = await rawRequest(gw.port, 'TRACE /traced/x HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(listed.status, 200, listed.raw);
    assert.equal(JSON.parse(listed.body).method, 'TRACE');
  });
});

describe('path normalization', () => {
  it('resolves dot segments before routing, so ../ cannot escape a prefix', async () => {
    // /v1/users/../orders/1 is /v1/orders/1: routed to orders, never to users.
    const r = await get('/v1/users/../orders/1');
    assert.equal(r.json().upstream, 'orders');
    assert.equal(r.json().url, '/v1/orders/1');
  });

  it('decodes escaped dots and unreserved characters, merges slashes', async () => {
    const raw = await rawRequest(gw.port, 'GET /v1/users/%2e%2e/%2E%2e/special/x HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(raw.status, 200);
    assert.equal(JSON.parse(raw.body).upstream, 'special');
    assert.equal(JSON.parse(raw.body).url, '/x');
    const merged = await get('/v1//users///%41bc');
    assert.equal(merged.json().url, '/users/Abc');
  });

  it('refuses an escaped slash by default (escaped_slashes: reject; keep/unescape in escaped-slashes.test.ts)', async () => {
    const r = await rawRequest(gw.port, 'GET /v1/users/a%2fb HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(r.status, 400);
    assert.match(r.body, /"code":"invalid_path".*encoded slash/);
  });

  it('rejects invalid paths with 400', async () => {
    const bad = await rawRequest(gw.port, 'GET /v1/users/%zz HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(bad.status, 400);
    assert.match(bad.body, /"code":"invalid_path"/);
    const backslash = await rawRequest(gw.port, 'GET /v1/users\\..\\admin HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(backslash.status, 400);
  });
});

describe('headers', () => {
  it('sets X-Forwarded-*, appends to a client X-Forwarded-For, sends the target Host', async () => {
    const body = (await get('/v1/users/1', { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil' })).json() as Echo;
    assert.equal(body.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(body.headers['x-forwarded-proto'], 'http');
    assert.equal(body.headers['x-forwarded-host'], `127.0.0.1:${gw.port}`);
    assert.equal(body.headers.host, `127.0.0.1:${users.port}`);
  });

  it('keeps the client Host with preserve_host', async () => {
    const body = (await get('/keep-host/x', { host: 'client.example' })).json() as Echo;
    assert.equal(body.headers.host, 'client.example');
  });

  it('removes hop-by-hop request headers and those named in Connection', async () => {
    const raw = await rawRequest(gw.port,
      'GET /v1/users/1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-drop-me\r\nX-Drop-Me: 1\r\n' +
      'Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Authorization: Basic x\r\nX-Keep: 1\r\n\r\n');
    const h = JSON.parse(raw.body).headers as Record<string, string>;
    assert.equal(h['x-keep'], '1');
    for (const name of ['x-drop-me', 'keep-alive', 'te', 'upgrade', 'proxy-authorization']) assert.equal(h[name], undefined, name);
    assert.notEqual(h.connection, 'keep-alive, x-drop-me');
  });

  it('removes hop-by-hop response headers and those named in Connection', async () => {
    const r = await get('/special/hop');
    assert.equal(r.headers['x-visible'], 'yes');
    assert.equal(r.headers['x-secret-hop'], undefined);
    assert.equal(r.headers['keep-alive'], undefined);
  });

  it('passes multi-valued headers (set-cookie) as separate fields', async () => {
    const raw = await rawRequest(gw.port, 'GET /special/cookies HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.deepEqual(raw.headers.get('set-cookie'), ['a=1; Path=/', 'b=2; Path=/']);
    assert.deepEqual(raw.headers.get('x-multi'), ['one', 'two']);
  });

  it('keeps a valid client correlation id, forwards and echoes it', async () => {
    const r = await get('/v1/users/1', { 'x-correlation-id': 'req-7f3a.9:x' });
    assert.equal(r.headers['x-correlation-id'], 'req-7f3a.9:x');
    assert.equal(r.json().headers['x-correlation-id'], 'req-7f3a.9:x');
  });

  it('replaces an invalid or overlong correlation id with a generated one', async () => {
    for (const bad of ['has space', 'x'.repeat(129), 'quote"d', 'a,b']) {
      const r = await get('/v1/users/1', { 'x-correlation-id': bad });
      const id = r.headers['x-correlation-id'] as string;
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(r.json().headers['x-correlation-id'], id);
    }
  });

  it('generates a correlation id when none is sent', async () => {
    const r = await get('/v1/users/1');
    assert.match(r.headers['x-correlation-id'] as string, /^[0-9a-f-]{36}$/);
  });
});

describe('status codes and bodies', () => {
  it('passes status codes with the upstream reason phrase', async () => {
    const raw = await rawRequest(gw.port, 'GET /special/teapot HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.match(raw.raw, /^HTTP\/1\.1 418 Short And Stout\r\n/);
    assert.equal(raw.body, 'tea');
    const created = await rawRequest(gw.port, 'GET /special/created HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.match(created.raw, /^HTTP\/1\.1 201 Created\r\n/);
    assert.deepEqual(created.headers.get('location'), ['/things/1']);
  });

  it('passes empty bodies: 204 without Content-Length, 200 with Content-Length 0', async () => {
    const r204 = await rawRequest(gw.port, 'GET /special/empty204 HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(r204.status, 204);
    assert.equal(r204.headers.get('content-length'), undefined);
    assert.equal(r204.body, '');
    const r200 = await rawRequest(gw.port, 'GET /special/empty200 HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(r200.status, 200);
    assert.deepEqual(r200.headers.get('content-length'), ['0']);
  });

  it('answers HEAD with the upstream Content-Length and no body, and the connection stays usable', async () => {
    const raw = await rawSequence(gw.port, ['HEAD /special/sized HTTP/1.1\r\nHost: a\r\n\r\n', 'GET /special/teapot HTTP/1.1\r\nHost: a\r\n\r\n']);
    assert.equal(raw.closed, false);
    assert.match(raw.raw, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(raw.raw, /content-length: 12345\r\n/i);
    assert.equal(raw.raw.split('HTTP/1.1 418').length - 1, 1);
    assert.ok(raw.raw.endsWith('tea'));
  });

  it('streams a chunked upstream response', async () => {
    const r = await get('/special/chunked');
    assert.equal(r.text, 'part1-part2');
  });

  it('forwards methods and request bodies faithfully', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const r = await get('/v1/users/5', { 'content-type': 'text/plain' }, method, 'x'.repeat(1000));
      assert.equal(r.json().method, method);
      assert.equal(r.json().bodyBytes, 1000);
    }
    const lower = await get('/special/echo', {}, 'OPTIONS');
    assert.equal(lower.json().method, 'OPTIONS');
  });
});

describe('limits', () => {
  it('answers 414 for a URL over max_url_bytes', async () => {
    const r = await get('/v1/users/' + 'a'.repeat(9000));
    assert.equal(r.status, 414);
    assert.equal(r.json().error.code, 'uri_too_long');
  });

  it('answers 431 for headers over max_header_bytes', async () => {
    const r = await get('/v1/users/1', { 'x-big': 'b'.repeat(17000) });
    assert.equal(r.status, 431);
    assert.equal(r.json().error.code, 'request_header_fields_too_large');
  });

  it('answers 413 for a declared body over max_body_bytes, without forwarding it', async () => {
    const before = users.received.length;
    const raw = await rawRequest(gw.port, 'POST /v1/users/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 20000000\r\n\r\nabc');
    assert.equal(raw.status, 413);
    assert.match(raw.body, /"code":"payload_too_large"/);
    assert.equal(users.received.length, before);
  });
});
