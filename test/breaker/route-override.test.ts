// Per-route circuit_breaker and fallback (docs/resilience.md#per-route-overrides) on a real
// gateway with 2 workers and a real upstream that fails on demand: a route's own breaker opens
// on its tries alone, shared by both workers, in place of the service's (the service's breaker
// and the service's other routes are unaffected, and the other way round); it shows in
// /status, /upstreams and /metrics, survives a reload; `fallback: false` and a route's own
// fallback cache.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { Client, request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { adminClient, breakerOnce, waitUntil, type AdminClient } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';
import { parsePrometheusText } from '../helpers/prom-text.js';

let gw: Gateway;
let admin: AdminClient;
let up: Upstream;
/** First path segments the upstream answers 500 for. */
const failing = new Set<string>();

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; text: string; code: () => string }

function answer(status: number, headers: Answer['headers'], text: string): Answer {
  return { status, headers, text, code: () => JSON.parse(text).error.code };
}

/** A request on a fresh connection (SO_REUSEPORT spreads those over both workers). */
async function get(path: string): Promise<Answer> {
  const res = await request(gw.url + path, { reset: true });
  return answer(res.statusCode, res.headers, await res.body.text());
}

/** Requests to `segment` the upstream received. */
const reached = (segment: string) => up.received.filter((r) => r.url.startsWith(`/${segment}/`)).length;

async function breakers(): Promise<any[]> {
  return (await admin.get('/status')).body.circuit_breakers;
}

const inState = (state: string) => (b: { state: string }) => b.state === state;

/** The access log lines of a route. */
function accessLines(route: string): any[] {
  return gw.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).filter((l) => l.msg === 'request' && l.route === route);
}
const flagged = (flag: string) => (l: { flags: string }) => l.flags.split(',').includes(flag);

before(async () => {
  up = await startUpstream('shop', (req, res) => {
    const segment = req.url!.split('/')[1];
    if (failing.has(segment)) { res.writeHead(500, { 'content-type': 'text/plain' }); res.end('down'); return; }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(req.url!.includes('big') ? 'x'.repeat(2000) : `ok ${req.url}`);
  });
  const adminPort = await freePort();
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2, drain_timeout_ms: 500 }
admin: { host: 127.0.0.1, port: ${adminPort} }
metrics: {}
access_log: { path: stdout }
services:
  shop: { targets: ["${up.origin}"], circuit_breaker: { consecutive_failures: 3, open_s: 60 } }
  cat: { targets: ["${up.origin}"], circuit_breaker: { consecutive_failures: 2, open_s: 60 }, fallback: {} }
routes:
  - { name: shop-pay, match: { prefix: /pay }, service: shop, circuit_breaker: { consecutive_failures: 2 } }
  - { name: shop-search, match: { prefix: /search }, service: shop, circuit_breaker: { consecutive_failures: 2 } }
  - { name: shop-nobreak, match: { prefix: /nobreak }, service: shop, circuit_breaker: false }
  - { name: shop-list, match: { prefix: /list }, service: shop }
  - { name: cat, match: { prefix: /cat }, service: cat }
  - { name: cat-fresh, match: { prefix: /fresh }, service: cat, fallback: false }
  - { name: cat-own, match: { prefix: /own }, service: cat, fallback: { cache: { max_entry_bytes: 1KB } } }
`);
  admin = adminClient(adminPort);
});

after(async () => {
  await gw?.stop();
  await up?.close();
});

describe('per-route circuit breaker', () => {
  it('a route with its own breaker opens on its failures alone, on both workers; the service breaker and its other routes are unaffected', async () => {
    failing.add('pay');
    for (let i = 0; i < 2; i++) assert.equal((await get(`/pay/fail-${i}`)).status, 500, 'failures pass through while closed');
    await breakerOnce(admin, 'shop', 'open', inState('open'), { route: 'shop-pay' });
    const service = await breakerOnce(admin, 'shop', 'closed, with no failure counted', (b) => b.state === 'closed');
    assert.equal(service.consecutive_failures, 0, "the route's tries do not count for the service's breaker");
    assert.equal(service.transitions.open, 0);
    // The service's other route still reaches the upstream.
    const listed = reached('list');
    for (let i = 0; i < 4; i++) assert.equal((await get(`/list/${i}`)).status, 200);
    assert.equal(reached('list'), listed + 4);
    // Refused on both workers (fresh connections land on either), nothing sent upstream.
    const paid = reached('pay');
    await waitUntil('refusals logged by both workers', async () => {
      const r = await get('/pay/again');
      assert.equal(r.status, 503, r.text);
      assert.equal(r.code(), 'upstream_circuit_open');
      assert.ok(Number(r.headers['retry-after']) >= 1, `Retry-After: ${r.headers['retry-after']}`);
      return new Set(accessLines('shop-pay').filter(flagged('CO')).map((l) => l.worker)).size === 2;
    }, 15_000);
    assert.equal(reached('pay'), paid, 'an open route breaker sends nothing upstream, on either worker');
    // One transition, logged once per instance, naming the route.
    const b = await breakerOnce(admin, 'shop', 'its refusals counted', (x) => x.rejected.open >= 2, { route: 'shop-pay' });
    assert.deepEqual(b.transitions, { closed: 0, open: 1, half_open: 0 });
    await waitUntil('the log line', () => gw.stderr().includes('"route":"shop-pay"'), 5_000);
    const lines = gw.stderr().split('\n').filter((l) => l.includes('circuit breaker opened'));
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0], /"service":"shop","route":"shop-pay"/);
  });

  it("the service's breaker opens on its routes' failures; routes with their own breaker or circuit_breaker: false still reach the upstream", async () => {
    failing.add('list');
    for (let i = 0; i < 3; i++) assert.equal((await get(`/list/fail-${i}`)).status, 500);
    await breakerOnce(admin, 'shop', 'open', inState('open'));
    const r = await get('/list/x');
    assert.equal(r.status, 503, r.text);
    assert.equal(r.code(), 'upstream_circuit_open');
    const searched = reached('search');
    const unguarded = reached('nobreak');
    for (let i = 0; i < 3; i++) {
      assert.equal((await get(`/search/${i}`)).status, 200, 'its own breaker replaces the open service breaker');
      assert.equal((await get(`/nobreak/${i}`)).status, 200, 'no breaker at all on this route');
    }
    assert.equal(reached('search'), searched + 3);
    assert.equal(reached('nobreak'), unguarded + 3);
    // circuit_breaker: false: failures pass through and open nothing.
    failing.add('nobreak');
    for (let i = 0; i < 4; i++) assert.equal((await get(`/nobreak/fail-${i}`)).status, 500);
    assert.equal(reached('nobreak'), unguarded + 7);
    assert.equal((await breakers()).filter((b) => b.service === 'shop').length, 3, 'the service and its two routes with their own breaker');
  });

  it('shows in /upstreams and /metrics, labelled by service and route', async () => {
    const upstreams = await admin.get('/upstreams');
    const shop = upstreams.body.services.find((s: { name: string }) => s.name === 'shop');
    assert.equal(shop.circuit_breaker.state, 'open');
    assert.equal(shop.circuit_breaker.route, null);
    assert.deepEqual(shop.route_circuit_breakers.map((b: any) => [b.route, b.state]), [['shop-pay', 'open'], ['shop-search', 'closed']]);
    const cat = upstreams.body.services.find((s: { name: string }) => s.name === 'cat');
    assert.equal(cat.route_circuit_breakers, undefined, 'none of its routes has its own breaker');
    const samples = [...parsePrometheusText((await admin.get('/metrics')).body).values()].flatMap((f) => f.samples);
    const value = (name: string, labels: Record<string, string | undefined>) =>
      samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    assert.equal(value('lobby_breaker_state', { service: 'shop', route: 'shop-pay' }), 1);
    assert.equal(value('lobby_breaker_state', { service: 'shop', route: 'shop-search' }), 0);
    assert.equal(value('lobby_breaker_state', { service: 'shop', route: undefined }), 1, "the service's own series has no route label");
    assert.equal(value('lobby_breaker_transitions_total', { service: 'shop', route: 'shop-pay', to: 'open' }), 1);
    assert.ok((value('lobby_breaker_rejected_total', { service: 'shop', route: 'shop-pay', reason: 'open' }) ?? 0) >= 2);
    assert.equal(samples.filter((s) => s.name === 'lobby_breaker_state').length, 4, 'one series per configured breaker: shop, cat and two routes');
  });

  it("a reload keeps a route breaker's state (its slot is keyed by the route's name)", async () => {
    const before = await admin.get('/status');
    const file = await readFile(gw.configFile, 'utf8');
    await writeFile(gw.configFile, file + '  - { name: extra, match: { prefix: /extra }, service: shop }\n');
    const r = await admin.post('/reload');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await waitUntil('the new generation', async () => (await admin.get('/status')).body.generation > before.body.generation, 10_000);
    const pay = await breakerOnce(admin, 'shop', 'still open', inState('open'), { route: 'shop-pay' });
    assert.equal(pay.transitions.open, 1);
    const refused = pay.rejected.open;
    const paid = reached('pay');
    const again = await get('/pay/after-reload');
    assert.equal(again.status, 503, again.text);
    assert.equal(reached('pay'), paid);
    await breakerOnce(admin, 'shop', 'the refusal counted in the same slot', (b) => b.rejected.open > refused, { route: 'shop-pay' });
    assert.equal((await get('/search/after-reload')).status, 200);
  });
});

describe('per-route fallback', () => {
  // The cache is per worker: each sequence runs on one keep-alive connection (one worker).
  let client: Client;
  const get1 = async (path: string): Promise<Answer> => {
    const res = await client.request({ path, method: 'GET' });
    return answer(res.statusCode, res.headers, await res.body.text());
  };
  before(() => { client = new Client(gw.url, { pipelining: 1 }); });
  after(async () => { await client?.close(); });

  it("fallback: false answers 503 while the service's cache answers its other routes; a route's own cache keeps its own bounds", async () => {
    const primed: Record<string, string> = {};
    for (const path of ['/cat/a', '/fresh/a', '/cat/big', '/own/big', '/own/a']) {
      const r = await get1(path);
      assert.equal(r.status, 200, r.text);
      primed[path] = r.text;
    }
    for (const s of ['cat', 'fresh', 'own']) failing.add(s);
    for (let i = 0; i < 2; i++) assert.equal((await get1(`/cat/fail-${i}`)).status, 500);
    await breakerOnce(admin, 'cat', 'open', inState('open'));
    const hit = (r: Answer, path: string) => {
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      assert.equal(r.text, primed[path]);
      assert.equal(r.headers['cache-status'], 'lobby; hit; detail=stale-if-error');
    };
    const miss = (r: Answer, path: string) => {
      assert.equal(r.status, 503, `${path}: ${r.text}`);
      assert.equal(r.code(), 'upstream_circuit_open');
      assert.equal(r.headers['cache-status'], undefined);
    };
    hit(await get1('/cat/a'), '/cat/a');
    hit(await get1('/cat/big'), '/cat/big');
    miss(await get1('/fresh/a'), '/fresh/a');
    hit(await get1('/own/a'), '/own/a');
    miss(await get1('/own/big'), '/own/big'); // 2000 bytes: over the route's max_entry_bytes (1KB)
    await waitUntil('the access log lines', () => accessLines('cat-fresh').some(flagged('CO'))
      && accessLines('cat-own').some(flagged('SF')), 5_000);
  });
});
