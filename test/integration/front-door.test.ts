// Request smuggling and malformed framing: every ambiguous request is refused with 400
// before routing, and the client's framing headers never reach the upstream.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { rawRequest } from '../helpers/raw-http.js';

let up: Upstream;
let gw: Gateway;

before(async () => {
  up = await startUpstream('up');
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1, limits: { max_body_bytes: 1000 } }
services: { up: { targets: ["${up.origin}"] } }
routes: [ { name: all, match: { prefix: / }, service: up } ]
`);
});

after(async () => {
  await gw?.stop();
  await up?.close();
});

async function expect400(request: string, code: string) {
  const before = up.received.length;
  const r = await rawRequest(gw.port, request);
  assert.equal(r.status, 400, r.raw);
  assert.match(r.body, new RegExp(`"code":"${code}"`));
  assert.match(r.body, /"correlation_id":"[^"]+"/);
  assert.equal(up.received.length, before, 'nothing may reach the upstream');
  return r;
}

/** The request gets no 2xx (400, a closed connection, or no answer) and never reaches the upstream. */
async function expectRefused(request: string) {
  const before = up.received.length;
  const r = await rawRequest(gw.port, request, 700);
  assert.ok(r.status === 400 || r.status === 0, r.raw);
  assert.equal(up.received.length, before, 'nothing may reach the upstream');
}

describe('framing', () => {
  it('refuses two different Content-Length values', async () => {
    await expect400('POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde', 'invalid_framing');
  });

  it('refuses a non-numeric Content-Length (uWS closes the connection itself)', async () => {
    await expectRefused('POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3x\r\n\r\nabc');
  });

  it('refuses Content-Length together with Transfer-Encoding (uWS may close the connection itself)', async () => {
    await expectRefused('POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
  });

  it('refuses unknown transfer codings', async () => {
    await expect400('POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 'invalid_framing');
    await expect400('POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n', 'invalid_framing');
  });

  it('accepts identical duplicate Content-Length and forwards one', async () => {
    const r = await rawRequest(gw.port, 'POST /dup HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc');
    assert.equal(r.status, 200, r.raw);
    const rec = up.received.at(-1)!;
    assert.equal(rec.url, '/dup');
    assert.equal(rec.bodyBytes, 3);
    assert.equal(rec.rawHeaders.filter((h) => h.toLowerCase() === 'content-length').length, 1);
  });

  it('forwards a chunked request body with fresh framing', async () => {
    const r = await rawRequest(gw.port, 'POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n');
    assert.equal(r.status, 200, r.raw);
    assert.equal(JSON.parse(r.body).bodyBytes, 5);
  });

  it('answers 413 when a chunked body grows past max_body_bytes', async () => {
    const chunk = 'x'.repeat(600);
    const r = await rawRequest(gw.port, `POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`);
    assert.equal(r.status, 413, r.raw);
    assert.match(r.body, /"code":"payload_too_large"/);
  });
});

describe('host and headers', () => {
  it('never forwards a request without Host (uWS does not pass it on)', async () => {
    await expectRefused('GET /a HTTP/1.1\r\nX-A: 1\r\n\r\n');
  });

  it('refuses an empty Host', async () => {
    await expect400('GET /a HTTP/1.1\r\nHost:\r\n\r\n', 'invalid_host');
  });

  it('refuses two Host headers', async () => {
    await expect400('GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 'invalid_host');
  });

  it('refuses an invalid Host', async () => {
    await expect400('GET /a HTTP/1.1\r\nHost: a b\r\n\r\n', 'invalid_host');
    await expect400('GET /a HTTP/1.1\r\nHost: a,b\r\n\r\n', 'invalid_host');
    await expect400('GET /a HTTP/1.1\r\nHost: a@b\r\n\r\n', 'invalid_host');
  });

  it('accepts IPv6 literal hosts with a port', async () => {
    const r = await rawRequest(gw.port, 'GET /v6 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n');
    assert.equal(r.status, 200, r.raw);
  });

  it('refuses a header value with DEL and a header name that is not a token', async () => {
    await expect400('GET /a HTTP/1.1\r\nHost: a\r\nX-Bad: a\x7fb\r\n\r\n', 'invalid_header');
    await expectRefused('GET /a HTTP/1.1\r\nHost: a\r\nX(Bad): 1\r\n\r\n');
  });

  it('never forwards a header value with control characters', async () => {
    await expectRefused('GET /a HTTP/1.1\r\nHost: a\r\nX-Bad: a\x01b\r\n\r\n');
  });
});

describe('Connection: close from the client', () => {
  // uWS closes after such a response without saying so; a client that keeps its connections
  // unless told otherwise (Node's http.Agent) would send its next request into a closed socket.
  it('a proxied response and a local reply both say Connection: close and the connection closes', async () => {
    for (const path of ['/proxied', '/nowhere%2Fescaped']) {
      const r = await rawRequest(gw.port, `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, 2000);
      assert.deepEqual(r.headers.get('connection'), ['close'], r.raw);
      assert.equal(r.closed, true, `${path}: the gateway closed the connection`);
    }
  });

  it('a keep-alive request gets no Connection header', async () => {
    const r = await rawRequest(gw.port, 'GET /kept HTTP/1.1\r\nHost: a\r\n\r\n', 300);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('connection'), undefined, r.raw);
  });
});
