// WebSocket proxying end to end (docs/websocket.md): a real Lobby process between `ws` clients
// and a real `ws` upstream. Handshake (filters first, subprotocol, headers, refusals), frames
// both ways (text, binary, 10 MB, fragmented, ping/pong, close codes), limits, backpressure
// with a reader that stops, and what the gateway records (access log, metrics).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { WebSocket, type ClientOptions } from 'ws';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';
import { waitUntil } from '../helpers/admin.js';
import { sampleValue, scrapeMetrics } from '../helpers/prom-text.js';
import { sign, type TestKey } from '../helpers/jwt.js';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { rawRequest } from '../helpers/raw-http.js';
import { opened, recordClient, startWsUpstream, type ClientEvents, type UpstreamConnection, type WsUpstream } from '../helpers/ws-upstream.js';

const SECRET = 'websocket-test-secret-0123456789abcdef';
const key: TestKey = { alg: 'HS256', kid: 'ws', signing: new TextEncoder().encode(SECRET), jwk: { kty: 'oct' } };
const MiB = 1024 * 1024;

let up: WsUpstream;
let deflating: WsUpstream;
let gw: Gateway;
let adminUrl: string;
/** Accepts connections and never answers: a handshake that times out. */
let silent: TcpServer;
const silentSockets: Socket[] = [];

before(async () => {
  up = await startWsUpstream({ maxPayload: 64 * MiB });
  deflating = await startWsUpstream({ perMessageDeflate: true });
  const adminPort = await freePort();
  const deadPort = await freePort(); // nothing listens there
  const silentPort = await freePort();
  silent = createTcpServer((sock) => { silentSockets.push(sock); sock.on('error', () => {}); });
  await new Promise<void>((resolve) => silent.listen(silentPort, '127.0.0.1', resolve));
  adminUrl = `http://127.0.0.1:${adminPort}`;
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
admin: { host: 127.0.0.1, port: ${adminPort} }
access_log: { path: stdout }
auth:
  providers:
    - { name: hmac, issuer: ws-issuer, secret: "${SECRET}", algorithms: [HS256], from_query: access_token, claims_to_headers: { sub: X-User-Id } }
services:
  chat: { targets: ["${up.origin}"], timeouts: { connect_ms: 500, response_ms: 2000 } }
  deflating: { targets: ["${deflating.origin}"] }
  down: { targets: ["http://127.0.0.1:${deadPort}"] }
  silent: { targets: ["http://127.0.0.1:${silentPort}"], timeouts: { response_ms: 300 } }
routes:
  - { name: chat, match: { prefix: /chat }, service: chat, strip_prefix: /chat, websocket: { max_message_bytes: 16777216, max_buffered_bytes: 1048576 } }
  - { name: secure, match: { prefix: /secure }, service: chat, strip_prefix: /secure, websocket: true, auth: { provider: hmac } }
  - { name: small, match: { prefix: /small }, service: chat, strip_prefix: /small, websocket: { max_message_bytes: 1024, idle_timeout_s: 1 } }
  - { name: one, match: { prefix: /one }, service: chat, strip_prefix: /one, websocket: { max_connections: 1 } }
  - { name: origin, match: { prefix: /origin }, service: chat, strip_prefix: /origin, websocket: { origins: ["https://app.example.com"] } }
  - { name: deflate, match: { prefix: /deflate }, service: deflating, strip_prefix: /deflate, websocket: true }
  - { name: down, match: { prefix: /down }, service: down, websocket: true }
  - { name: silent, match: { prefix: /silent }, service: silent, websocket: true }
  - { name: plain, match: { prefix: /plain }, service: chat, strip_prefix: /plain }
`);
});

after(async () => {
  await gw?.stop();
  await up?.close();
  await deflating?.close();
  for (const sock of silentSockets) sock.destroy();
  silent?.close();
});

function client(path: string, protocols: string[] = [], opts: ClientOptions = {}): ClientEvents {
  return recordClient(new WebSocket(`ws://127.0.0.1:${gw.port}${path}`, protocols, opts));
}

/** A client on `path`, open, with the upstream's side of its connection. */
async function connected(path: string, protocols: string[] = [], opts: ClientOptions = {}): Promise<{ c: ClientEvents; u: UpstreamConnection }> {
  const next = up.connection();
  const c = client(path, protocols, opts);
  await opened(c.ws);
  return { c, u: await next };
}

async function until<T>(what: string, value: () => T | undefined | false, timeoutMs = 5_000): Promise<T> {
  let v: T | undefined | false;
  await waitUntil(what, () => { v = value(); return v !== undefined && v !== false; }, timeoutMs);
  return v as T;
}

/** The access-log lines of the gateway so far, parsed. */
function logLines(): Record<string, unknown>[] {
  return gw.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

/** Refused handshakes: the HTTP answer (no upgrade). */
async function refused(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  try {
    await opened(new WebSocket(`ws://127.0.0.1:${gw.port}${path}`, { headers }));
  } catch (err) {
    const e = err as { status?: number; headers?: Record<string, unknown>; body?: string };
    if (e.status !== undefined) return { status: e.status, headers: e.headers!, body: e.body! };
    throw err;
  }
  throw new Error(`${path}: the upgrade went through`);
}

describe('handshake', () => {
  it('runs the filters first: no token, 401 and no upgrade; the upstream never sees it', async () => {
    const before = up.connections.length;
    const r = await refused('/secure/echo');
    assert.equal(r.status, 401);
    assert.equal(JSON.parse(r.body).error.code, 'unauthenticated');
    assert.equal(JSON.parse(r.body).error.correlation_id, r.headers['x-correlation-id']);
    assert.equal(up.connections.length, before);
  });

  it('with a token: the upstream handshake carries the identity, forwarding and correlation headers', async () => {
    const token = await sign(key, { iss: 'ws-issuer', sub: 'user-7', exp: Math.floor(Date.now() / 1000) + 600 });
    const { c, u } = await connected(`/secure/echo?access_token=${token}&room=5`, [], { headers: { 'x-correlation-id': 'ws-corr-1', 'x-user-id': 'forged' } });
    const h = u.request.headers;
    assert.equal(h['x-user-id'], 'user-7');
    assert.equal(h['x-correlation-id'], 'ws-corr-1');
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h.host, `127.0.0.1:${up.port}`);
    assert.match(u.request.url!, /^\/echo\?access_token=[^&]+&room=5$/);
    c.ws.close();
    await c.whenClosed;
  });

  it('negotiates the subprotocol end to end: the client gets the upstream\'s choice among its offer', async () => {
    const { c, u } = await connected('/chat/echo', ['chat.v1', 'chat.v2']);
    assert.equal(u.request.headers['sec-websocket-protocol'], 'chat.v1,chat.v2');
    assert.equal(c.ws.protocol, 'chat.v2'); // the helper's upstream picks the last one offered
    // The upstream's own 101 headers come along; the gateway adds the correlation id.
    assert.equal(c.upgradeHeaders!['x-upstream-hello'], '1');
    assert.match(String(c.upgradeHeaders!['x-correlation-id']), /^[0-9a-f-]{36}$/);
    assert.equal(u.request.headers['x-correlation-id'], c.upgradeHeaders!['x-correlation-id']);
    c.ws.close();
    await c.whenClosed;
  });

  it('an upstream refusal reaches the client as its status with the gateway\'s JSON body', async () => {
    const r = await refused('/chat/refuse/403');
    assert.equal(r.status, 403);
    const body = JSON.parse(r.body);
    assert.equal(body.error.code, 'upstream_refused_upgrade');
    assert.equal(body.error.status, 403);
    assert.equal(body.error.correlation_id, r.headers['x-correlation-id']);
    assert.equal(r.headers['retry-after'], '7');
    const unavailable = await refused('/chat/refuse/503');
    assert.equal(unavailable.status, 503);
  });

  it('an upstream that cannot be reached: 502 upstream_unavailable before any upgrade', async () => {
    const r = await refused('/down/x');
    assert.equal(r.status, 502);
    assert.equal(JSON.parse(r.body).error.code, 'upstream_unavailable');
  });

  it('an upstream that does not answer the handshake within response_ms: 504 upstream_timeout', async () => {
    const started = Date.now();
    const r = await refused('/silent/x');
    assert.equal(r.status, 504);
    assert.equal(JSON.parse(r.body).error.code, 'upstream_timeout');
    assert.ok(Date.now() - started >= 250, `answered after ${Date.now() - started} ms`);
  });

  it('a protocol version other than 13: 426 with Sec-WebSocket-Version: 13', async () => {
    const r = await rawRequest(gw.port, 'GET /chat/echo HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n', 500);
    assert.equal(r.status, 426);
    assert.deepEqual(r.headers.get('sec-websocket-version'), ['13']);
    assert.equal(JSON.parse(r.body).error.code, 'websocket_version_unsupported');
  });

  it('an Origin outside the route\'s origins: 403; a listed one (any case) and none go through', async () => {
    const r = await refused('/origin/echo', { origin: 'https://evil.example.com' });
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body).error.code, 'websocket_origin_forbidden');
    for (const origin of ['https://APP.example.com', undefined]) {
      const { c } = await connected('/origin/echo', [], origin ? { origin } : {});
      c.ws.close();
      await c.whenClosed;
    }
  });

  it('max_connections: the next upgrade gets 503 while the route is full, and goes through once a connection closed', async () => {
    const { c } = await connected('/one/echo');
    const r = await refused('/one/echo');
    assert.equal(r.status, 503);
    assert.equal(JSON.parse(r.body).error.code, 'websocket_connection_limit');
    c.ws.close();
    await c.whenClosed;
    // The gateway releases the slot when it ends the exchange, just after the close.
    await waitUntil('the slot is free again', async () => {
      const next = client('/one/echo');
      try { await opened(next.ws); next.ws.close(); await next.whenClosed; return true; } catch { return false; }
    });
  });

  it('an upgrade on a route without websocket is a plain GET (no upgrade headers reach the upstream)', async () => {
    const r = await refused('/plain/echo');
    assert.equal(r.status, 426); // the upstream's HTTP answer to a GET without Upgrade
  });
});

describe('relay', () => {
  it('echoes text and binary both ways, kinds kept', async () => {
    const { c, u } = await connected('/chat/echo');
    c.ws.send('héllo');
    c.ws.send(Buffer.from([0, 1, 2, 255]));
    await until('two echoes', () => c.messages.length === 2);
    assert.deepEqual(u.messages.map((m) => m.isBinary), [false, true]);
    assert.equal(u.messages[0].data.toString(), 'héllo');
    assert.equal(c.messages[0].isBinary, false);
    assert.equal(c.messages[0].data.toString(), 'héllo');
    assert.equal(c.messages[1].isBinary, true);
    assert.deepEqual([...c.messages[1].data], [0, 1, 2, 255]);
    c.ws.close(1000);
    await c.whenClosed;
  });

  it('relays a 10 MB binary message both ways intact', async () => {
    const { c, u } = await connected('/chat/echo');
    const big = Buffer.alloc(10 * 1000 * 1000);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i, i);
    const sha = createHash('sha256').update(big).digest('hex');
    c.ws.send(big);
    await until('the echo of 10 MB', () => c.messages.length === 1, 15_000);
    assert.equal(createHash('sha256').update(u.messages[0].data).digest('hex'), sha);
    assert.equal(createHash('sha256').update(c.messages[0].data).digest('hex'), sha);
    c.ws.close();
    await c.whenClosed;
  });

  it('a fragmented message arrives whole, in both directions', async () => {
    const { c, u } = await connected('/chat/quiet');
    c.ws.send('frag-', { fin: false });
    c.ws.send('men-', { fin: false });
    c.ws.send('ted', { fin: true });
    await until('the message at the upstream', () => u.messages.length === 1);
    assert.equal(u.messages[0].data.toString(), 'frag-men-ted');
    assert.equal(u.messages[0].isBinary, false);
    u.ws.send(Buffer.from([1, 2]), { fin: false, binary: true });
    u.ws.send(Buffer.from([3]), { fin: true, binary: true });
    await until('the message at the client', () => c.messages.length === 1);
    assert.deepEqual([...c.messages[0].data], [1, 2, 3]);
    assert.equal(c.messages[0].isBinary, true);
    c.ws.close();
    await c.whenClosed;
  });

  it('relays pings both ways; each ping gets its pong with its payload', async () => {
    const { c, u } = await connected('/chat/quiet');
    c.ws.ping(Buffer.from('from-client'));
    await until('the ping at the upstream', () => u.pings.length === 1);
    assert.equal(u.pings[0].toString(), 'from-client');
    await until('the pong at the client', () => c.pongs.length === 1);
    assert.equal(c.pongs[0].toString(), 'from-client');
    u.ws.ping(Buffer.from('from-upstream'));
    await until('the ping at the client', () => c.pings.length === 1);
    assert.equal(c.pings[0].toString(), 'from-upstream');
    await until('the pong at the upstream', () => u.pongs.length === 1);
    assert.equal(u.pongs[0].toString(), 'from-upstream');
    // An unsolicited pong (a heartbeat) from the client is relayed.
    c.ws.pong(Buffer.from('beat'));
    await until('the heartbeat at the upstream', () => u.pongs.length === 2);
    assert.equal(u.pongs[1].toString(), 'beat');
    // Every pong answered one ping: nothing doubled.
    assert.equal(c.pongs.length, 1);
    c.ws.close();
    await c.whenClosed;
  });
});

describe('close', () => {
  it('a client close code and reason reach the upstream', async () => {
    const { c, u } = await connected('/chat/quiet');
    c.ws.close(4321, 'client says bye');
    assert.deepEqual(await u.whenClosed, { code: 4321, reason: 'client says bye' });
    assert.deepEqual(await c.whenClosed, { code: 4321, reason: 'client says bye' });
  });

  it('an upstream close code and reason reach the client', async () => {
    const { c, u } = await connected('/chat/quiet');
    u.ws.close(1012, 'service restart');
    assert.deepEqual(await c.whenClosed, { code: 1012, reason: 'service restart' });
  });

  it('a close without a code stays one without a code (1005) both ways', async () => {
    const a = await connected('/chat/quiet');
    a.c.ws.close();
    assert.equal((await a.u.whenClosed).code, 1005);
    const b = await connected('/chat/quiet');
    b.u.ws.close();
    assert.equal((await b.c.whenClosed).code, 1005);
  });

  it('an upstream gone without a close frame closes the client with 1001', async () => {
    const { c, u } = await connected('/chat/quiet');
    u.ws.terminate();
    assert.deepEqual(await c.whenClosed, { code: 1001, reason: 'upstream went away' });
  });

  it('a client gone without a close frame closes the upstream with 1001', async () => {
    const { c, u } = await connected('/chat/quiet');
    c.ws.terminate();
    assert.deepEqual(await u.whenClosed, { code: 1001, reason: 'client went away' });
  });

  it('a message over max_message_bytes closes with 1009, from either side', async () => {
    const a = await connected('/small/quiet');
    a.c.ws.send(Buffer.alloc(1025));
    assert.equal((await a.c.whenClosed).code, 1009);
    assert.equal((await a.u.whenClosed).code, 1001);
    assert.equal(a.u.messages.length, 0);
    const b = await connected('/small/quiet');
    b.u.ws.send(Buffer.alloc(1025));
    assert.equal((await b.c.whenClosed).code, 1009);
    assert.equal(b.c.messages.length, 0);
  });

  it('idle_timeout_s: a connection with no traffic is closed with 1001 on both sides', async () => {
    const started = Date.now();
    const { c, u } = await connected('/small/quiet');
    assert.deepEqual(await c.whenClosed, { code: 1001, reason: 'idle timeout' });
    assert.equal((await u.whenClosed).code, 1001);
    assert.ok(Date.now() - started >= 900, `closed after ${Date.now() - started} ms`);
  });
});

describe('backpressure', () => {
  it('a client that stops reading pauses the upstream: what the gateway took stays bounded, nothing is lost', async () => {
    const { c, u } = await connected('/chat/quiet');
    c.ws.pause(); // stops reading its socket: the kernel buffers fill, then the gateway's
    const block = Buffer.alloc(64 * 1024, 7);
    const blocks = 4096; // 256 MiB, queued by the upstream (the same buffer: no copy)
    for (let i = 0; i < blocks; i++) u.ws.send(block, { binary: true });
    // What the gateway relayed can be at most: its bound (max_buffered_bytes 1 MiB), a message
    // over it, and what the kernel holds between gateway and client (the send and receive
    // buffers' maxima): far below the 256 MiB the upstream wants to send.
    const kernel = Number(readFileSync('/proc/sys/net/ipv4/tcp_wmem', 'utf8').split(/\s+/)[2]) + Number(readFileSync('/proc/sys/net/ipv4/tcp_rmem', 'utf8').split(/\s+/)[2]);
    const bound = MiB + block.length + kernel;
    const relayed = async () => sampleValue((await scrapeMetrics(adminUrl)).families, 'lobby_websocket_message_bytes_total', { route: 'chat', direction: 'upstream_to_client' });
    // The pipe is full when the count stops moving while the upstream still holds most of it.
    let last = -1;
    await waitUntil('the relay to stall', async () => {
      const now = await relayed();
      const stalled = now === last && now > 0;
      last = now;
      return stalled;
    }, 10_000);
    assert.ok(last <= bound, `the gateway relayed ${last} bytes to a client that reads nothing (bound ${bound})`);
    assert.ok(u.ws.bufferedAmount > 128 * MiB, `the upstream still holds ${u.ws.bufferedAmount} bytes`);
    c.ws.resume();
    await until('every block at the client', () => c.messages.length === blocks, 60_000);
    assert.ok(c.messages.every((m) => m.data.length === block.length));
    c.messages.length = 0;
    c.ws.close();
    await c.whenClosed;
  });

  it('an upstream that stops reading: a client that keeps sending is closed with 1013, the gateway holding little', async () => {
    const { c, u } = await connected('/chat/quiet', [], { headers: { 'x-correlation-id': 'ws-flood-1' } });
    u.ws.pause();
    const block = Buffer.alloc(64 * 1024, 9);
    let closed = false;
    void c.whenClosed.then(() => { closed = true; });
    let sent = 0;
    while (!closed && sent < 1024 * MiB) {
      if (c.ws.bufferedAmount < 4 * MiB) { c.ws.send(block); sent += block.length; } else await new Promise((r) => setImmediate(r));
    }
    // The gateway closes with 1013 (its log line says so); the client reads that close frame
    // unless its own flood makes the gateway's socket reset first (unread data at close: RST).
    const seen = await c.whenClosed;
    if (seen.code !== 1006) assert.deepEqual(seen, { code: 1013, reason: 'upstream is not reading' });
    const line = await until('the log line', () => logLines().find((l) => l.correlation_id === 'ws-flood-1'));
    assert.deepEqual(line.websocket && { code: (line.websocket as { close_code: number }).close_code, by: (line.websocket as { closed_by: string }).closed_by }, { code: 1013, by: 'gateway' });
    const kernel = Number(readFileSync('/proc/sys/net/ipv4/tcp_wmem', 'utf8').split(/\s+/)[2]) + Number(readFileSync('/proc/sys/net/ipv4/tcp_rmem', 'utf8').split(/\s+/)[2]);
    const taken = sampleValue((await scrapeMetrics(adminUrl)).families, 'lobby_websocket_message_bytes_total', { route: 'chat', direction: 'client_to_upstream' });
    // Relayed before the close: the bound, a message, and the kernel's buffers toward the upstream
    // (plus what earlier tests sent on this route: small).
    assert.ok(taken <= MiB + block.length + kernel + 11 * MiB, `relayed ${taken} bytes to an upstream that reads nothing`);
    u.ws.resume();
    assert.equal((await u.whenClosed).code, 1001);
  });
});

describe('compression', () => {
  it('permessage-deflate on the client leg only when the upstream accepted it too', async () => {
    const next = deflating.connection();
    const c = client('/deflate/echo', [], { perMessageDeflate: true });
    await opened(c.ws);
    const u = await next;
    assert.match(String(u.request.headers['sec-websocket-extensions']), /permessage-deflate/);
    assert.match(c.ws.extensions, /permessage-deflate/);
    const text = 'compressible '.repeat(1000);
    c.ws.send(text);
    await until('the echo', () => c.messages.length === 1);
    assert.equal(c.messages[0].data.toString(), text);
    c.ws.close();
    await c.whenClosed;
    // The other upstream does not take it: the client does not get it either.
    const plain = await connected('/chat/echo', [], { perMessageDeflate: true });
    assert.equal(plain.c.ws.extensions, '');
    plain.c.ws.send('x');
    await until('the echo', () => plain.c.messages.length === 1);
    plain.c.ws.close();
    await plain.c.whenClosed;
  });
});

describe('what the gateway records', () => {
  it('one access-log line per connection, at its close, with counts and the close code', async () => {
    const { c } = await connected('/chat/echo', [], { headers: { 'x-correlation-id': 'ws-log-1' } });
    c.ws.send('a');
    c.ws.send('b');
    await until('two echoes', () => c.messages.length === 2);
    assert.equal(logLines().filter((l) => l.correlation_id === 'ws-log-1').length, 0, 'no line while open');
    c.ws.close(4000, 'done');
    await c.whenClosed;
    const line = await until('the line', () => logLines().find((l) => l.correlation_id === 'ws-log-1'));
    assert.equal(line.status, 101);
    assert.equal(line.route, 'chat');
    assert.deepEqual(line.websocket, { messages_in: 2, messages_out: 2, close_code: 4000, closed_by: 'client' });
    assert.equal(line.bytes_in, 2);
    assert.equal(line.bytes_out, 2);
    assert.equal(line.flags, '-');
    assert.equal(typeof line.duration_ms, 'number');
    assert.equal(logLines().filter((l) => l.correlation_id === 'ws-log-1').length, 1);
  });

  it('metrics: connections open and opened, messages and bytes each way, closes by code and closer', async () => {
    const families = () => scrapeMetrics(adminUrl).then((s) => s.families);
    const before = await families();
    const opened0 = sampleValue(before, 'lobby_websocket_connections_total', { route: 'chat' });
    const closes0 = sampleValue(before, 'lobby_websocket_closes_total', { route: 'chat', code: '4xxx', closed_by: 'upstream' });
    const { c, u } = await connected('/chat/echo');
    c.ws.send('four');
    await until('the echo', () => c.messages.length === 1);
    await waitUntil('one more open', async () => sampleValue(await families(), 'lobby_websocket_connections', { route: 'chat' }) === 1);
    u.ws.close(4500, 'x');
    await c.whenClosed;
    await waitUntil('the close counted', async () => {
      const f = await families();
      return sampleValue(f, 'lobby_websocket_closes_total', { route: 'chat', code: '4xxx', closed_by: 'upstream' }) === closes0 + 1 &&
        sampleValue(f, 'lobby_websocket_connections', { route: 'chat' }) === 0;
    });
    const f = await families();
    assert.equal(sampleValue(f, 'lobby_websocket_connections_total', { route: 'chat' }), opened0 + 1);
    assert.equal(f.get('lobby_websocket_connections')!.type, 'gauge');
    assert.ok(sampleValue(f, 'lobby_websocket_messages_total', { route: 'chat', direction: 'client_to_upstream' }) >= 1);
    assert.ok(sampleValue(f, 'lobby_requests_total', { route: 'chat', code: '1xx' }) >= 1);
    assert.ok(sampleValue(f, 'lobby_local_replies_total', { route: 'secure', code: 'unauthenticated' }) >= 1);
  });
});

describe('plain HTTP on a websocket route', () => {
  it('a request without Upgrade is proxied as HTTP', async () => {
    const res = await request(`${gw.url}/chat/anything`);
    assert.equal(res.statusCode, 426); // the upstream's own HTTP answer
    assert.equal(await res.body.text(), 'websocket only');
  });
});
