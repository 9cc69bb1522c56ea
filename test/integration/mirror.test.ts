// Request mirroring end to end (docs/traffic-splitting.md#mirroring): a real Lobby process
// (one worker, so max_in_flight is one bound) in front of real upstreams. The mirror gets a
// copy of each request (method, rewritten path, the client's and the gateway's headers, the
// buffered body, X-Lobby-Mirror), about half of them at percent 50; a mirror that hangs, refuses
// connections, answers 500 or times out never slows or fails the client; copies beyond
// max_in_flight are dropped and counted; streamed and too-large bodies are not copied.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { Pool } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type ReceivedRequest, type Upstream } from '../helpers/upstream.js';
import { adminClient, waitUntil, type AdminClient } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';
import { sampleValue, scrapeMetrics } from '../helpers/prom-text.js';

let app: Upstream;
let shadow: Upstream;
let hang: Upstream;
let broken: Upstream;
const hung: ServerResponse[] = [];
/** Body text of each request the shadow received, by correlation id. */
const shadowBodies = new Map<string, string>();
let gw: Gateway;
let admin: AdminClient;
let pool: Pool;

before(async () => {
  app = await startUpstream('app');
  shadow = await startUpstream('shadow', (req, res, rec) => {
    let text = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => { text += c; rec.bodyBytes += c.length; });
    req.on('end', () => {
      shadowBodies.set(String(req.headers['x-correlation-id']), text);
      res.writeHead(200, { 'content-length': '2' });
      res.end('ok');
    });
  }, { consumeBody: false });
  hang = await startUpstream('hang', (_req, res) => { hung.push(res); });
  broken = await startUpstream('broken', (_req, res) => { res.writeHead(500, { 'content-length': '0' }); res.end(); });
  const refusedPort = await freePort(); // nothing listens there
  const adminPort = await freePort();
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
admin: { host: 127.0.0.1, port: ${adminPort} }
services:
  # connect_ms well above the default 1 s: a worker starved for a second on a loaded machine
  # runs its connect timer before the connect event it is late for (timers come first in a turn).
  app: { targets: ["${app.origin}"], timeouts: { connect_ms: 20000 } }
  shadow: { targets: ["${shadow.origin}"], timeouts: { connect_ms: 20000 } }
  # One connection: copies arrive in the order they were sent (the 50% test's end marker).
  shadow-serial: { targets: ["${shadow.origin}"], connections: 1, timeouts: { connect_ms: 20000 } }
  hang: { targets: ["${hang.origin}"], timeouts: { response_ms: 30000 } }
  hang-short: { targets: ["${hang.origin}"], timeouts: { response_ms: 200 } }
  refused: { targets: ["http://127.0.0.1:${refusedPort}"] }
  broken: { targets: ["${broken.origin}"] }
routes:
  - { name: m100, match: { prefix: /m100 }, service: app, strip_prefix: /m100, mirror: { service: shadow } }
  - { name: m50, match: { prefix: /m50 }, service: app, mirror: { service: shadow-serial, percent: 50, max_in_flight: 10000 } }
  - { name: marker, match: { prefix: /marker }, service: app, mirror: { service: shadow-serial } }
  - { name: keep-host, match: { prefix: /keep-host }, service: app, preserve_host: true, mirror: { service: shadow } }
  - { name: small, match: { prefix: /small }, service: app, mirror: { service: shadow, max_body_bytes: 1000 } }
  - { name: plain, match: { prefix: /plain }, service: app }
  - { name: hang, match: { prefix: /hang }, service: app, mirror: { service: hang } }
  - { name: timeout, match: { prefix: /timeout }, service: app, mirror: { service: hang-short } }
  - { name: bounded, match: { prefix: /bounded }, service: app, mirror: { service: hang, max_in_flight: 2 } }
  - { name: refused, match: { prefix: /refused }, service: app, mirror: { service: refused } }
  - { name: broken, match: { prefix: /broken }, service: app, mirror: { service: broken } }
`);
  admin = adminClient(adminPort);
  await admin.waitReady();
  pool = new Pool(gw.url, { connections: 16 });
});

after(async () => {
  await pool?.close();
  await gw?.stop();
  for (const res of hung) res.destroy();
  await Promise.all([app?.close(), shadow?.close(), hang?.close(), broken?.close()]);
});

interface Sent { status: number; correlationId: string; ms: number }

async function send(path: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer | Readable } = {}): Promise<Sent> {
  const started = performance.now();
  const res = await pool.request({ method: (opts.method ?? 'GET') as 'GET', path, headers: opts.headers, body: opts.body });
  await res.body.dump();
  return { status: res.statusCode, correlationId: String(res.headers['x-correlation-id']), ms: performance.now() - started };
}

async function sendMany(n: number, concurrency: number, path: (i: number) => string): Promise<Sent[]> {
  const out: Sent[] = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < n; i = next++) out[i] = await send(path(i));
  }));
  return out;
}

const at = (up: Upstream, prefix: string): ReceivedRequest[] => up.received.filter((r) => r.url.startsWith(prefix));

async function mirrorCount(route: string, result: string): Promise<number> {
  return sampleValue((await scrapeMetrics(admin.url)).families, 'lobby_mirror_requests_total', { route, result });
}

describe('mirror', () => {
  it('percent 100: the mirror gets a copy of every request, as the upstream got it, marked X-Lobby-Mirror', async () => {
    const body = JSON.stringify({ order: 42, note: 'copied' });
    const sent = [
      await send('/m100/items?x=1', { headers: { 'x-custom': 'abc', 'x-lobby-mirror': 'spoofed', 'x-forwarded-for': '203.0.113.9' } }),
      await send('/m100/items', { method: 'POST', headers: { 'content-type': 'application/json' }, body }),
      ...await sendMany(48, 8, (i) => `/m100/n/${i}`),
    ];
    assert.deepEqual(sent.filter((s) => s.status !== 200).map((s) => s.status), [], 'every request answered 200');
    await waitUntil('a copy of each request at the mirror', () => at(shadow, '/items').length + at(shadow, '/n/').length === 50);
    const [getOrig, postOrig] = [at(app, '/items?x=1')[0], at(app, '/items').find((r) => r.method === 'POST')!];
    const [getCopy, postCopy] = [at(shadow, '/items?x=1')[0], at(shadow, '/items').find((r) => r.method === 'POST')!];
    // The client's own X-Lobby-Mirror never reaches an upstream; the copy carries the gateway's.
    assert.equal(getOrig.headers['x-lobby-mirror'], undefined);
    assert.equal(getCopy.headers['x-lobby-mirror'], 'm100');
    assert.equal(getCopy.method, 'GET');
    assert.equal(getCopy.url, '/items?x=1', 'the path after strip_prefix, the query kept');
    assert.equal(getCopy.headers['x-custom'], 'abc');
    for (const h of ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-correlation-id']) {
      assert.equal(getCopy.headers[h], getOrig.headers[h], h);
    }
    assert.equal(getCopy.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(getCopy.headers['x-correlation-id'], sent[0].correlationId);
    assert.equal(getCopy.headers.host, `127.0.0.1:${shadow.port}`, "the mirror target's Host");
    assert.equal(postCopy.headers['content-type'], 'application/json');
    assert.equal(postCopy.headers['content-length'], String(Buffer.byteLength(body)));
    assert.equal(shadowBodies.get(sent[1].correlationId), body);
    assert.equal(postOrig.bodyBytes, Buffer.byteLength(body));
    await waitUntil('50 copies counted sent', async () => (await mirrorCount('m100', 'sent')) === 50);
    // preserve_host: the copy keeps the client's Host, like the request itself.
    const kept = await send('/keep-host/a', { headers: { host: 'api.example.test' } });
    await waitUntil('the keep-host copy', () => shadowBodies.has(kept.correlationId));
    assert.equal(at(shadow, '/keep-host/a')[0].headers.host, 'api.example.test');
  });

  it('percent 50: about half of 2,000 requests are copied', async () => {
    const n = 2000;
    const sent = await sendMany(n, 16, (i) => `/m50/${i}`);
    assert.ok(sent.every((s) => s.status === 200));
    // The marker's copy goes through the same single connection after every m50 copy.
    const marker = await send('/marker/end');
    await waitUntil('the marker copy (every m50 copy arrived before it)', () => shadowBodies.has(marker.correlationId), 20_000);
    const copies = at(shadow, '/m50/').length;
    // sd 22 copies: 900..1100 is 4.5 sd either side.
    assert.ok(copies >= 900 && copies <= 1100, `${copies} of ${n} copied at percent 50`);
    assert.equal(at(app, '/m50/').length, n, 'every request reached its upstream');
  });

  it('a mirror that hangs never slows the client; one that refuses, answers 500 or times out never fails it', async () => {
    const hanging = await sendMany(20, 1, (i) => `/hang/${i}`);
    // The copies are held open (response_ms 30 s) while each client answer came at once.
    await waitUntil('20 hanging copies', () => at(hang, '/hang/').length === 20);
    assert.ok(hanging.every((s) => s.status === 200));
    const slowest = Math.max(...hanging.map((s) => s.ms));
    // Well under the copies' 30 s hold, with room for a loaded machine: not held by the mirror.
    assert.ok(slowest < 10_000, `slowest client answer ${slowest.toFixed(1)} ms with a mirror that does not answer`);

    const refused = await sendMany(20, 4, (i) => `/refused/${i}`);
    const broke = await sendMany(20, 4, (i) => `/broken/${i}`);
    assert.ok([...refused, ...broke].every((s) => s.status === 200));
    await waitUntil('20 refused copies counted failed', async () => (await mirrorCount('refused', 'failed')) === 20);
    await waitUntil('20 copies answered 500, counted sent', async () => (await mirrorCount('broken', 'sent')) === 20);

    // Timeouts apply: response_ms 200 ends each hanging copy, counted failed, the client unaffected.
    const timed = await sendMany(5, 5, (i) => `/timeout/${i}`);
    assert.ok(timed.every((s) => s.status === 200 && s.ms < 10_000));
    await waitUntil('5 copies timed out', async () => (await mirrorCount('timeout', 'failed')) === 5);
    assert.equal(await mirrorCount('hang', 'failed'), 0, 'the long-timeout copies are still open');
  });

  it('copies beyond max_in_flight are dropped and counted', async () => {
    const sent = await sendMany(10, 1, (i) => `/bounded/${i}`);
    assert.ok(sent.every((s) => s.status === 200));
    await waitUntil('8 copies dropped', async () => (await mirrorCount('bounded', 'dropped')) === 8);
    await waitUntil('2 copies held by the hanging mirror', () => at(hang, '/bounded/').length === 2);
    // Every decision was made before its client's answer: nothing else was sent.
    assert.equal(at(hang, '/bounded/').length, 2);
    assert.deepEqual(at(hang, '/bounded/').map((r) => r.url), ['/bounded/0', '/bounded/1']);
  });

  it('a mirror service cannot be deleted while a route mirrors to it', async () => {
    const d = await admin.del('/services/shadow');
    assert.equal(d.status, 409);
    assert.deepEqual(d.body.error.routes, ['m100', 'keep-host', 'small']);
  });

  it('a streamed body, or one over max_body_bytes, is not copied (counted skipped_body); a small one is', async () => {
    const small = await send('/small/ok', { method: 'POST', body: 'x'.repeat(500) });
    const large = await send('/small/large', { method: 'POST', body: 'x'.repeat(2000) });
    const streamed = await send('/m100/stream', { method: 'POST', body: Buffer.alloc(100 * 1024, 0x61) });
    const chunked = await send('/m100/chunked', { method: 'POST', body: Readable.from([Buffer.from('a'), Buffer.from('b')]) });
    assert.ok([small, large, streamed, chunked].every((s) => s.status === 200));
    await waitUntil('the small copy', () => shadowBodies.has(small.correlationId));
    assert.equal(shadowBodies.get(small.correlationId), 'x'.repeat(500));
    await waitUntil('the large body skipped', async () => (await mirrorCount('small', 'skipped_body')) === 1);
    await waitUntil('the streamed bodies skipped', async () => (await mirrorCount('m100', 'skipped_body')) === 2);
    assert.equal(at(app, '/stream')[0].bodyBytes, 100 * 1024, 'the request itself got its body');
    assert.equal(at(shadow, '/stream').length + at(shadow, '/chunked').length + at(shadow, '/small/large').length, 0);
  });
});
