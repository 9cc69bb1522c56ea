// The last-good fallback cache (docs/resilience.md#fallback-cache) on a real gateway with 2
// workers: while a service's breaker is open, a GET whose last 2xx answer is cached gets it
// back marked stale-if-error; everything else gets 503 upstream_circuit_open. The cache is
// per worker, so each sequence runs on one keep-alive connection (one worker).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { adminClient, breakerOnce, waitUntil, type AdminClient } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';
import { sign, type TestKey } from '../helpers/jwt.js';

const SECRET = 'fallback-test-secret-of-at-least-32-bytes';
const hmac: TestKey = { alg: 'HS256', kid: 'h', signing: new TextEncoder().encode(SECRET), jwk: { kty: 'oct' } } as TestKey;
let gw: Gateway;
let admin: AdminClient;
let up: Upstream;
let client: Client;
const failing = new Set<string>();
let served = 0;

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; text: string }

async function get(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const res = await client.request({ path, method: method as 'GET', headers: { host: 'localhost', ...headers } });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function openBreaker(service: string): Promise<void> {
  failing.add(service);
  for (let i = 0; i < 2; i++) assert.equal((await get(`/${service}/fail-${i}`)).status, 500);
  // Counted just after the client got the last byte: waited for.
  await breakerOnce(admin, service, 'open', (b) => b.state === 'open');
}

function assertHit(r: Answer, body: string): void {
  assert.equal(r.status, 200, r.text);
  assert.equal(r.text, body);
  assert.equal(r.headers['cache-status'], 'lobby; hit; detail=stale-if-error');
  assert.match(String(r.headers.age), /^\d+$/);
}

function assertMiss(r: Answer): void {
  assert.equal(r.status, 503, r.text);
  assert.equal(JSON.parse(r.text).error.code, 'upstream_circuit_open');
  assert.equal(r.headers['cache-status'], undefined);
}

before(async () => {
  up = await startUpstream('fb', (req, res) => {
    const url = new URL(req.url!, 'http://x');
    const service = url.pathname.split('/')[1];
    if (failing.has(service)) { res.writeHead(500); res.end('down'); return; }
    served++;
    const p = url.pathname;
    const headers: Record<string, string> = { 'content-type': 'text/plain' };
    let body = `${p}${url.search} #${served}`;
    if (p.endsWith('/nostore')) headers['cache-control'] = 'no-store';
    if (p.endsWith('/private')) headers['cache-control'] = 'max-age=60, private';
    if (p.endsWith('/cookie')) headers['set-cookie'] = 'a=1';
    if (p.endsWith('/vary')) { headers.vary = 'X-Lang'; body += ` ${req.headers['x-lang']}`; }
    if (p.endsWith('/star')) headers.vary = '*';
    if (p.includes('/user')) body += ` user=${req.headers['x-user-id']} auth=${req.headers.authorization ?? '-'}`;
    if (p.includes('/big')) body = 'x'.repeat(5000);
    if (p.startsWith('/lru/')) body = p.padEnd(1000, '.');
    res.writeHead(200, headers);
    res.end(body);
  });
  const adminPort = await freePort();
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2, drain_timeout_ms: 500 }
admin: { host: 127.0.0.1, port: ${adminPort} }
metrics: {}
access_log: { path: stdout }
auth:
  providers:
    - { name: h, issuer: test, secret: "${SECRET}", algorithms: [HS256], forward_token: false, claims_to_headers: { sub: X-User-Id } }
services:
  fb: { targets: ["${up.origin}"], circuit_breaker: { consecutive_failures: 2, open_s: 60 }, fallback: { cache: { max_entry_bytes: 4KB } } }
  lru: { targets: ["${up.origin}"], circuit_breaker: { consecutive_failures: 2, open_s: 60 }, fallback: { cache: { max_bytes: 3500 } } }
  ttl: { targets: ["${up.origin}"], circuit_breaker: { consecutive_failures: 2, open_s: 60 }, fallback: { cache: { ttl_s: 3 } } }
routes:
  - { name: fb-user, match: { prefix: /fb/user }, service: fb, auth: { provider: h } }
  - { name: fb, match: { prefix: /fb }, service: fb }
  - { name: lru, match: { prefix: /lru }, service: lru }
  - { name: ttl, match: { prefix: /ttl }, service: ttl }
`);
  admin = adminClient(adminPort);
  client = new Client(gw.url, { pipelining: 1 });
});

after(async () => {
  await client?.close();
  await gw?.stop();
  await up?.close();
});

describe('fallback cache', () => {
  const primed: Record<string, string> = {};
  let tokenA1 = '', tokenA2 = '', tokenB = '';

  it('primes while closed: answers pass through unmarked', async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const noKid = { header: { kid: null } };
    tokenA1 = await sign(hmac, { iss: 'test', sub: 'alice', n: 1, exp }, noKid);
    tokenA2 = await sign(hmac, { iss: 'test', sub: 'alice', n: 2, exp }, noKid);
    tokenB = await sign(hmac, { iss: 'test', sub: 'bob', exp }, noKid);
    for (const [key, path, headers] of [
      ['a', '/fb/a?q=1', {}], ['nostore', '/fb/nostore', {}], ['private', '/fb/private', {}], ['cookie', '/fb/cookie', {}],
      ['vary-en', '/fb/vary', { 'x-lang': 'en' }], ['star', '/fb/star', {}], ['big', '/fb/big', {}],
      ['alice', '/fb/user/me', { authorization: `Bearer ${tokenA1}` }], ['basic', '/fb/basic', { authorization: 'Basic YTpi' }],
    ] as const) {
      const r = await get(path, headers);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers['cache-status'], undefined);
      primed[key] = r.text;
    }
    assert.equal((await get('/fb/post', {}, 'POST')).status, 200);
    assert.match(primed.alice, /user=alice auth=-/, 'forward_token: false: only the injected identity reaches the service');
  });

  it('while open: the last good answer of the same request, marked stale-if-error, with the SF flag', async () => {
    await openBreaker('fb');
    const before = served;
    assertHit(await get('/fb/a?q=1'), primed.a);
    assertHit(await get('/fb/a?q=1'), primed.a);
    assert.equal(served, before, 'answered without the upstream');
    await waitUntil('the access log line', () => gw.stdout().includes('"flags":"CO,SF"'), 5_000);
  });

  it('misses: another query, path or method', async () => {
    assertMiss(await get('/fb/a?q=2'));
    assertMiss(await get('/fb/a'));
    assertMiss(await get('/fb/post', {}, 'POST'));
    assertMiss(await get('/fb/never'));
  });

  it('never kept: no-store, private, Set-Cookie, Vary: *, a body over max_entry_bytes', async () => {
    for (const p of ['/fb/nostore', '/fb/private', '/fb/cookie', '/fb/star', '/fb/big']) assertMiss(await get(p));
  });

  it('Vary: the value of the named request header is part of the key', async () => {
    assertHit(await get('/fb/vary', { 'x-lang': 'en' }), primed['vary-en']);
    assertMiss(await get('/fb/vary', { 'x-lang': 'fr' }));
    assertMiss(await get('/fb/vary'));
  });

  it('identity isolation: keyed by the injected identity header and by Authorization', async () => {
    // Another token of the same user (same X-User-Id): the same identity's answer.
    assertHit(await get('/fb/user/me', { authorization: `Bearer ${tokenA2}` }), primed.alice);
    const bob = await get('/fb/user/me', { authorization: `Bearer ${tokenB}` });
    assertMiss(bob);
    assert.ok(!bob.text.includes('alice'));
    assertHit(await get('/fb/basic', { authorization: 'Basic YTpi' }), primed.basic);
    assertMiss(await get('/fb/basic', { authorization: 'Basic Yjpj' }));
    assertMiss(await get('/fb/basic'));
  });

  it('max_bytes bounds the cache, least recently used first', async () => {
    // ~1.1 KB an entry, 3500 bytes: three fit. /lru/1 is used again before /lru/4 comes in.
    for (const n of [1, 2, 3]) assert.equal((await get(`/lru/${n}`)).status, 200);
    await get('/lru/1');
    assert.equal((await get('/lru/4')).status, 200);
    await openBreaker('lru');
    assertMiss(await get('/lru/2'));
    for (const n of [1, 3, 4]) assert.equal((await get(`/lru/${n}`)).headers['cache-status'], 'lobby; hit; detail=stale-if-error', `/lru/${n}`);
  });

  it('ttl_s: an entry older than it is not served', async () => {
    assert.equal((await get('/ttl/x')).status, 200);
    await openBreaker('ttl');
    assert.equal((await get('/ttl/x')).status, 200);
    await waitUntil('the entry to expire', async () => (await get('/ttl/x')).status === 503, 10_000);
  });

  it('counts fallbacks served in /status and /metrics', async () => {
    const status = await admin.get('/status');
    assert.ok(status.body.circuit_breakers.find((b: { service: string }) => b.service === 'fb').fallbacks_served >= 5);
    const metrics = await admin.get('/metrics');
    assert.match(metrics.body, /lobby_fallback_served_total\{service="fb"\} \d+/);
  });
});
