// Rate limiting end to end on one instance (no Redis): burst then the steady rate per key,
// 429 headers and values, keys isolated, limits chained (with refunds), client IP through
// trusted proxies, JWT claims as keys, report mode, two workers sharing one bucket, runtime
// changes (SIGHUP) that keep unchanged buckets, the key-count bound (LRU eviction that keeps
// other limits' clients) and /status, duplicate key headers (400), canonical client IPs.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { Pool, request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { adminClient, waitUntil, type AdminClient } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';
import { sign, type TestKey } from '../helpers/jwt.js';

const SECRET = 'rate-limit-test-secret-0123456789abcdef';
const hmac: TestKey = { alg: 'HS256', kid: 'h', signing: new TextEncoder().encode(SECRET), jwk: { kty: 'oct' } };

let up: Upstream;
let gw: Gateway;
let small: Gateway;
let admin: AdminClient;
let pool: Pool;
let configText: string;

function config(headersBurst: number, adminPort: number, upstream: string): string {
  return `
server: { host: 127.0.0.1, port: __PORT__, workers: 2, trusted_proxies: ["127.0.0.1/32"] }
admin: { host: 127.0.0.1, port: ${adminPort} }
services:
  up: { targets: ["${upstream}"], connections: 16 }
  one-socket-per-worker: { targets: ["${upstream}"], connections: 2 }
auth:
  providers:
    - { name: main, issuer: test, secret: "${SECRET}", algorithms: [HS256], claims_to_headers: { sub: X-User-Id } }
rate_limits:
  steady:  { key: "header:x-k", rate: 10, per: 1s, burst: 20 }
  headers: { key: "header:x-k", rate: 2, per: 1s, burst: ${headersBurst} }
  report:  { key: "header:x-k", rate: 1, per: 1m, burst: 2, mode: report }
  by-ip:   { key: ip, rate: 1, per: 1m, burst: 2 }
  by-user: { key: "claim:sub", rate: 1, per: 1m, burst: 2 }
  shared:  { key: "header:x-k", rate: 1, per: 1m, burst: 50 }
  custom:  { key: "header:x-k", rate: 1, per: 1m, burst: 1, status: 503 }
  outer:   { key: "header:x-k", rate: 1, per: 1m, burst: 5 }
  inner:   { key: "header:x-u", rate: 1, per: 1m, burst: 2 }
routes:
  - { name: steady, match: { prefix: /steady }, service: up, rate_limit: [steady] }
  - { name: headers, match: { prefix: /headers }, service: up, rate_limit: [headers] }
  - { name: report, match: { prefix: /report }, service: up, rate_limit: [report] }
  - { name: ip, match: { prefix: /ip }, service: up, rate_limit: [by-ip] }
  - { name: user, match: { prefix: /user }, service: up, auth: { provider: main, optional: true }, rate_limit: [by-user] }
  - { name: shared, match: { prefix: /shared }, service: one-socket-per-worker, rate_limit: [shared] }
  - { name: custom, match: { prefix: /custom }, service: up, rate_limit: [custom] }
  - { name: multi, match: { prefix: /multi }, service: up, rate_limit: [outer, inner] }
  - { name: open, match: { prefix: /open }, service: up }
`;
}

async function get(path: string, headers: Record<string, string> | string[] = {}, on: Gateway = gw) {
  // A flat [name, value, ...] list sends a header twice.
  const res = await request(`${on.url}${path}`, { headers: Array.isArray(headers) ? ['host', 'localhost', ...headers] : { host: 'localhost', ...headers } });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

async function statuses(n: number, path: string, headers: Record<string, string> = {}, on: Gateway = gw): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await get(path, headers, on)).status);
  return out;
}

before(async () => {
  up = await startUpstream('up');
  const adminPort = await freePort();
  configText = config(4, adminPort, up.origin);
  gw = await startGateway(configText);
  admin = adminClient(adminPort);
  await admin.waitReady();
  pool = new Pool(gw.url, { connections: 64, pipelining: 1 });
  small = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1, rate_limit_keys: 16 }
services: { up: { targets: ["${up.origin}"] } }
rate_limits:
  tiny:  { key: "header:x-k", rate: 1000, per: 1s, burst: 1 }
  by-ip: { key: ip, rate: 1, per: 1m, burst: 2 }
  est:   { key: "header:x-c", rate: 1, per: 1m, burst: 3 }
routes:
  - { name: keys, match: { prefix: /keys }, service: up, rate_limit: [tiny] }
  - { name: ip, match: { prefix: /ip }, service: up, rate_limit: [by-ip] }
  - { name: est, match: { prefix: /est }, service: up, rate_limit: [est] }
`);
});

after(async () => {
  await pool?.close();
  await Promise.all([gw?.stop(), small?.stop()]);
  await up?.close();
});

describe('rate limiting on one instance', () => {
  it('admits the burst, then exactly the rate, per key', async () => {
    const key = { 'x-k': `steady-${Date.now()}` };
    const burstStart = performance.now();
    const burst = await statuses(25, '/steady', key);
    const burstMs = performance.now() - burstStart;
    assert.deepEqual(burst.slice(0, 20), Array(20).fill(200));
    // The next 5 are refused, but for the tokens refilled meanwhile (one per 100 ms; the runner
    // may be busy with other test files).
    const refilled = burst.slice(20).filter((s) => s === 200).length;
    assert.ok(refilled <= Math.floor(burstMs / 100), `${refilled} more admitted within ${burstMs.toFixed(0)} ms`);
    assert.equal(burst.slice(20).filter((s) => s !== 200 && s !== 429).length, 0);
    // Hammer for 1.5 s: 10 per second come through, evenly.
    const started = performance.now();
    const admittedAt: number[] = [];
    while (performance.now() - started < 1_500) {
      const r = await get('/steady', key);
      if (r.status === 200) admittedAt.push(performance.now() - started);
      else assert.equal(r.status, 429);
    }
    const elapsed = performance.now() - started;
    const expected = (elapsed / 1000) * 10;
    assert.ok(Math.abs(admittedAt.length - expected) <= 2, `admitted ${admittedAt.length}, expected ${expected.toFixed(1)} in ${elapsed.toFixed(0)} ms`);
    // Evenly: any half second holds about 5 admissions (the client sees them with some jitter,
    // more so when other test files load the machine).
    for (let i = 0; i < admittedAt.length; i++) {
      const inHalfSecond = admittedAt.filter((t) => t >= admittedAt[i] && t < admittedAt[i] + 500).length;
      assert.ok(inHalfSecond <= 7, `${inHalfSecond} admissions within 500 ms from ${admittedAt[i].toFixed(0)} ms`);
    }
  });

  it('sends RateLimit-Policy, RateLimit and X-RateLimit-* on every response, and Retry-After on 429', async () => {
    const key = { 'x-k': `headers-${Date.now()}` };
    for (let i = 3; i >= 0; i--) {
      const r = await get('/headers', key);
      assert.equal(r.status, 200);
      assert.equal(r.headers['ratelimit-policy'], '"headers";q=4;w=2');
      assert.equal(r.headers['ratelimit'], `"headers";r=${i};t=${i === 3 ? 1 : Math.ceil((4 - i) / 2)}`);
      assert.equal(r.headers['x-ratelimit-limit'], '4');
      assert.equal(r.headers['x-ratelimit-remaining'], String(i));
      assert.equal(r.headers['x-ratelimit-reset'], String(Math.ceil((4 - i) / 2)));
    }
    const r = await get('/headers', key);
    assert.equal(r.status, 429);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.headers['ratelimit-policy'], '"headers";q=4;w=2');
    assert.equal(r.headers['ratelimit'], '"headers";r=0;t=2');
    assert.equal(r.headers['x-ratelimit-limit'], '4');
    assert.equal(r.headers['x-ratelimit-remaining'], '0');
    assert.equal(r.headers['x-ratelimit-reset'], '2');
    assert.equal(r.headers['content-type'], 'application/json');
    const body = JSON.parse(r.text);
    assert.equal(body.error.code, 'rate_limited');
    assert.equal(body.error.status, 429);
    assert.equal(body.error.correlation_id, r.headers['x-correlation-id']);
    // Another key is untouched.
    assert.equal((await get('/headers', { 'x-k': `other-${Date.now()}` })).headers['x-ratelimit-remaining'], '3');
    // Requests without the header share one anonymous bucket; an unlimited route has no headers.
    assert.equal((await get('/open')).headers['ratelimit'], undefined);
  });

  it('answers the configured status', async () => {
    const key = { 'x-k': `custom-${Date.now()}` };
    assert.equal((await get('/custom', key)).status, 200);
    const r = await get('/custom', key);
    assert.equal(r.status, 503);
    assert.equal(JSON.parse(r.text).error.code, 'rate_limited');
    assert.ok(Number(r.headers['retry-after']) >= 59);
  });

  it('needs every listed limit to admit, and refunds the earlier ones when a later one refuses', async () => {
    const k = `multi-${Date.now()}`;
    assert.deepEqual(await statuses(3, '/multi', { 'x-k': k, 'x-u': 'u1' }), [200, 200, 429]); // inner refuses the 3rd
    assert.deepEqual(await statuses(3, '/multi', { 'x-k': k, 'x-u': 'u2' }), [200, 200, 429]);
    // outer (burst 5) gave 4 tokens for good: one left.
    assert.deepEqual(await statuses(2, '/multi', { 'x-k': k, 'x-u': 'u3' }), [200, 429]);
    const r = await get('/multi', { 'x-k': k, 'x-u': 'u4' });
    assert.equal(r.status, 429);
    assert.equal(r.headers['ratelimit'], '"outer";r=0;t=300'); // outer refused before inner was asked
    assert.equal(r.headers['ratelimit-policy'], '"outer";q=5;w=300, "inner";q=2;w=120');
  });

  it('keys by the client IP, read from X-Forwarded-For only behind a trusted proxy', async () => {
    // The gateway trusts 127.0.0.1 (the test client): the forwarded address is the client.
    assert.deepEqual(await statuses(3, '/ip', { 'x-forwarded-for': '198.51.100.1' }), [200, 200, 429]);
    assert.deepEqual(await statuses(3, '/ip', { 'x-forwarded-for': '203.0.113.7, 198.51.100.2' }), [200, 200, 429]);
    assert.deepEqual(await statuses(1, '/ip', { 'x-forwarded-for': '198.51.100.3, 127.0.0.1' }), [200]);
    // The other gateway trusts nobody: the header is ignored and the socket address counts.
    assert.deepEqual(await statuses(3, '/ip', { 'x-forwarded-for': '198.51.100.9' }, small), [200, 200, 429]);
    assert.deepEqual(await statuses(1, '/ip', { 'x-forwarded-for': '198.51.100.10' }, small), [429]);
  });

  it('keys by a JWT claim', async () => {
    const alice = { authorization: `Bearer ${await sign(hmac, { iss: 'test', sub: 'alice', exp: Math.floor(Date.now() / 1000) + 600 })}` };
    const bob = { authorization: `Bearer ${await sign(hmac, { iss: 'test', sub: 'bob', exp: Math.floor(Date.now() / 1000) + 600 })}` };
    assert.deepEqual(await statuses(3, '/user', alice), [200, 200, 429]);
    assert.deepEqual(await statuses(2, '/user', bob), [200, 200]);
    // A client cannot pose as bob by sending the identity header itself: anonymous bucket.
    assert.deepEqual(await statuses(3, '/user', { 'x-user-id': 'carol' }), [200, 200, 429]);
    assert.deepEqual(await statuses(1, '/user', { 'x-user-id': 'dave' }), [429]);
  });

  it('counts but admits in report mode', async () => {
    const key = { 'x-k': `report-${Date.now()}` };
    const before = (await admin.get('/status')).body.rate_limits.limits.find((l: { name: string }) => l.name === 'report');
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await get('/report', key));
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200, 200]);
    assert.deepEqual(results.map((r) => r.headers['x-ratelimit-remaining']), ['1', '0', '0', '0', '0']);
    const after = (await admin.get('/status')).body.rate_limits.limits.find((l: { name: string }) => l.name === 'report');
    assert.equal(after.admitted - before.admitted, 2);
    assert.equal(after.reported - before.reported, 3);
    assert.equal(after.limited, 0);
    await waitUntil('the report-mode log line', () => gw.stderr().includes('rate limit exceeded (report mode: admitted)'));
  });

  it('shares one bucket between the workers', async () => {
    const key = `shared-${Date.now()}`;
    // 64 connections: the kernel spreads them over both workers' listen sockets. They are all
    // opened first, so that the burst reaches both workers from its first request (opened by
    // the burst itself, the first 50 admitted could all land on the worker that accepted first).
    await Promise.all(Array.from({ length: 64 }, async () => {
      const res = await pool.request({ path: '/open', method: 'GET', headers: { host: 'localhost' } });
      await res.body.dump();
    }));
    const codes = await Promise.all(Array.from({ length: 300 }, async () => {
      const res = await pool.request({ path: '/shared', method: 'GET', headers: { host: 'localhost', 'x-k': key } });
      await res.body.dump();
      return res.statusCode;
    }));
    assert.equal(codes.filter((c) => c === 200).length, 50);
    assert.equal(codes.filter((c) => c === 429).length, 250);
    // Each worker has exactly one upstream socket for this service: two source ports at the
    // upstream prove both workers admitted from the one bucket.
    const ports = new Set(up.received.filter((r) => r.headers['x-k'] === key).map((r) => r.remotePort));
    assert.ok(ports.size >= 2, `admitted requests came through ${ports.size} worker socket(s)`);
  });

  it('applies changed limits at runtime and keeps the buckets of the others', async () => {
    const ip = { 'x-forwarded-for': '192.0.2.200' };
    assert.deepEqual(await statuses(3, '/ip', ip), [200, 200, 429]);
    await writeFile(gw.configFile, configText.replace('rate: 2, per: 1s, burst: 4', 'rate: 2, per: 1s, burst: 8').replaceAll('__PORT__', String(gw.port)));
    gw.proc.kill('SIGHUP');
    await waitUntil('the new policy', async () => (await get('/headers', { 'x-k': 'reload' })).headers['ratelimit-policy'] === '"headers";q=8;w=4');
    assert.deepEqual(await statuses(1, '/ip', ip), [429]); // by-ip did not change: its bucket stayed
    const status = (await admin.get('/status')).body.rate_limits;
    assert.equal(status.limits.find((l: { name: string }) => l.name === 'headers').burst, 8);
    assert.ok(status.table.keys > 0);
    assert.equal(status.redis, null);
  });

  it('applies limits changed through the admin API', async () => {
    const current = (await admin.get('/config')).body.config;
    const next = { ...current, rate_limits: { ...current.rate_limits, custom: { ...current.rate_limits.custom, burst: 3, status: 429 } } };
    const put = await admin.put('/config', next);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const key = { 'x-k': `custom-admin-${Date.now()}` };
    assert.deepEqual(await statuses(4, '/custom', key), [200, 200, 200, 429]);
    assert.equal((await get('/custom', key)).headers['ratelimit-policy'], '"custom";q=3;w=180');
    // An invalid limit is refused with its key path; the running config stays.
    const bad = await admin.put('/config', { ...next, rate_limits: { ...next.rate_limits, custom: { key: 'cookie', rate: 1 } } });
    assert.equal(bad.status, 400);
    assert.ok(JSON.stringify(bad.body).includes('rate_limits.custom.key'), JSON.stringify(bad.body));
  });

  it('bounds the number of keys: a flood of 10x the table evicts its own keys, an established client of another limit keeps its bucket', async () => {
    // 16 slots. The established client uses 2 of its 3 tokens (1 a minute).
    const client = { 'x-c': `client-${Date.now()}` };
    assert.deepEqual(await statuses(2, '/est', client, small), [200, 200]);
    // 160 distinct keys of another limit, each used once: the table fills and then evicts the
    // least recently used of them (no 503).
    const flood: number[] = [];
    for (let i = 0; i < 160; i++) flood.push((await get('/keys', { 'x-k': `flood-${i}` }, small)).status);
    assert.deepEqual(flood.filter((s) => s !== 200), [], 'every flood key admitted');
    // The client's bucket survived the flood: one token left, then refused (a fresh bucket would admit 3).
    const r = await get('/est', client, small);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-ratelimit-remaining'], '0');
    const refused = await get('/est', client, small);
    assert.equal(refused.status, 429);
    assert.equal(JSON.parse(refused.text).error.code, 'rate_limited');
    // A new client of that limit finds room too.
    assert.equal((await get('/est', { 'x-c': `newcomer-${Date.now()}` }, small)).status, 200);
  });

  it('refuses a request carrying a key header twice (400 invalid_rate_limit_key), before the upstream', async () => {
    const k = `dup-${Date.now()}`;
    const before = up.received.length;
    for (const headers of [['x-k', k, 'x-k', `${k}-other`], ['x-k', k, 'x-k', k], ['x-k', '', 'x-k', k]]) {
      const r = await get('/steady', headers);
      assert.equal(r.status, 400);
      const body = JSON.parse(r.text);
      assert.equal(body.error.code, 'invalid_rate_limit_key');
      assert.match(body.error.message, /more than one x-k header/);
      assert.equal(body.error.correlation_id, r.headers['x-correlation-id']);
    }
    assert.equal(up.received.length, before, 'nothing reached the upstream');
    // The earlier limit's token is handed back when a later limit's header is doubled.
    const u = `dup-u-${Date.now()}`;
    assert.equal((await get('/multi', ['x-k', u, 'x-u', 'a', 'x-u', 'b'])).status, 400);
    assert.equal((await get('/multi', { 'x-k': u, 'x-u': 'a' })).headers['ratelimit'], '"outer";r=4;t=60, "inner";r=1;t=60');
    // One copy is fine; a route without such a limit does not care.
    assert.equal((await get('/steady', { 'x-k': k })).status, 200);
    assert.equal((await get('/open', ['x-k', 'a', 'x-k', 'b'])).status, 200);
  });

  it('keys forwarded client IPs canonically: one address, one key; junk counts against the proxy', async () => {
    // Three forms of 198.51.100.20 share its bucket (burst 2).
    const forms = ['198.51.100.20:1111', '::FFFF:198.51.100.20', '198.051.100.020'];
    const got: number[] = [];
    for (const f of forms) got.push((await get('/ip', { 'x-forwarded-for': f })).status);
    assert.deepEqual(got, [200, 200, 429]);
    const v6: number[] = [];
    for (const f of ['[2001:DB8::7]:443', '2001:db8:0:0:0:0:0:7', '2001:0db8::0007']) v6.push((await get('/ip', { 'x-forwarded-for': f })).status);
    assert.deepEqual(v6, [200, 200, 429]);
    // Junk is no key of its own: it counts against the sending proxy (127.0.0.1 here).
    const junk: number[] = [];
    for (const f of ['hello', '1.2.3', '999.1.1.1']) junk.push((await get('/ip', { 'x-forwarded-for': f })).status);
    assert.deepEqual(junk, [200, 200, 429]);
    assert.equal((await get('/ip', { 'x-forwarded-for': '198.51.100.21, bogus' })).status, 429);
  });
});
