// Weighted splits end to end (docs/traffic-splitting.md): a real Lobby process with two
// workers in front of two real upstreams, counted where the requests land. The random split
// holds its weights within 1 percentage point over 10,000 requests; a sticky split keeps each
// client (by header, cookie, a JWT's sub or another claim) on one service; the metrics and the
// access log name the chosen service; each member gets its own breaker from the route's
// circuit_breaker; and a weight change through the admin API under a concurrent load fails no
// request and routes every request sent after its 200 by the new weights.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Pool } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { adminClient, breakerOnce, breakerStatus, waitUntil, type AdminClient } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';
import { sampleValue, scrapeMetrics } from '../helpers/prom-text.js';
import { sign, type TestKey } from '../helpers/jwt.js';
import { stickyFraction } from '../../src/data/upstream/split.js';

const HMAC_SECRET = 'split-test-secret-of-at-least-32-bytes!!';
const ISSUER = 'split-issuer';

let v1: Upstream;
let v2: Upstream;
let bad: Upstream;
let gw: Gateway;
let admin: AdminClient;
let pool: Pool;
const key: TestKey = { alg: 'HS256', kid: 'h', signing: new TextEncoder().encode(HMAC_SECRET), jwk: { kty: 'oct' } };

before(async () => {
  v1 = await startUpstream('v1');
  v2 = await startUpstream('v2');
  bad = await startUpstream('bad', (_req, res) => { res.writeHead(503, { 'content-length': '0' }); res.end(); });
  const adminPort = await freePort();
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2 }
admin: { host: 127.0.0.1, port: ${adminPort} }
services:
  v1: { targets: ["${v1.origin}"], connections: 16 }
  v2: { targets: ["${v2.origin}"], connections: 16 }
  bad: { targets: ["${bad.origin}"] }
auth:
  providers:
    - name: jwt
      issuer: ${ISSUER}
      secret: "${HMAC_SECRET}"
      algorithms: [HS256]
      claims_to_headers: { tenant: X-Tenant-Id }
routes:
  - { name: random, match: { prefix: /random }, services: [{ name: v1, weight: 95 }, { name: v2, weight: 5 }] }
  - name: by-header
    match: { prefix: /hdr }
    services: [{ name: v1, weight: 90 }, { name: v2, weight: 10 }]
    sticky: { header: X-User-Id }
    access_log: { fields: [route, service, path, status] }
  - { name: by-cookie, match: { prefix: /cookie }, services: [{ name: v1, weight: 90 }, { name: v2, weight: 10 }], sticky: { cookie: uid } }
  - { name: by-sub, match: { prefix: /sub }, services: [{ name: v1, weight: 90 }, { name: v2, weight: 10 }], sticky: { claim: sub }, auth: { provider: jwt } }
  - { name: by-tenant, match: { prefix: /tenant }, services: [{ name: v1, weight: 90 }, { name: v2, weight: 10 }], sticky: { claim: tenant }, auth: { provider: jwt } }
  - { name: canary, match: { prefix: /canary }, services: [{ name: v1, weight: 100 }, { name: v2, weight: 0 }] }
  - name: guarded
    match: { prefix: /guarded }
    services: [{ name: v1, weight: 1 }, { name: bad, weight: 1 }]
    circuit_breaker: { consecutive_failures: 3, open_s: 60 }
`);
  admin = adminClient(adminPort);
  await admin.waitReady();
  pool = new Pool(gw.url, { connections: 16 });
});

after(async () => {
  await pool?.close();
  await gw?.stop();
  await Promise.all([v1?.close(), v2?.close(), bad?.close()]);
});

interface Answer { status: number; upstream: string }

async function get(path: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await pool.request({ method: 'GET', path, headers });
  const text = await res.body.text();
  let upstream = '?';
  try { upstream = (JSON.parse(text) as { upstream: string }).upstream; } catch { /* not the echo */ }
  return { status: res.statusCode, upstream };
}

/** Runs `n` requests, `concurrency` at a time; `make(i)` gives each one's path and headers. */
async function run(n: number, concurrency: number, make: (i: number) => [string, Record<string, string>?]): Promise<Answer[]> {
  const out: Answer[] = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < n; i = next++) out[i] = await get(...make(i));
  }));
  return out;
}

const hits = (up: Upstream, prefix: string) => up.received.filter((r) => r.url.startsWith(prefix)).length;
const now = () => Math.floor(Date.now() / 1000);

describe('weighted split', () => {
  it('10,000 random requests split within 1 percentage point of 95/5, counted at the upstreams and in the metrics', async () => {
    const n = 10_000;
    const answers = await run(n, 32, (i) => [`/random/${i}`]);
    assert.equal(answers.filter((a) => a.status !== 200).length, 0);
    const a = hits(v1, '/random/');
    const b = hits(v2, '/random/');
    assert.equal(a + b, n);
    // 1 pp of 10,000 is 4.6 standard deviations of a 5% share (sd 21.8 requests).
    assert.ok(Math.abs(b / n - 0.05) <= 0.01, `v2 got ${b} of ${n} (${(100 * b / n).toFixed(2)}%), want 5% ± 1 pp`);
    // The metrics' service label is the chosen one.
    await waitUntil('every request of the split counted', async () => {
      const f = (await scrapeMetrics(admin.url)).families;
      return sampleValue(f, 'lobby_requests_total', { route: 'random' }) === n;
    });
    const f = (await scrapeMetrics(admin.url)).families;
    assert.equal(sampleValue(f, 'lobby_requests_total', { route: 'random', service: 'v1' }), a);
    assert.equal(sampleValue(f, 'lobby_requests_total', { route: 'random', service: 'v2' }), b);
  });

  it('sticky by header: 5,000 users split within 1 pp of 90/10, each user always on one side; no header: random', async () => {
    const users = 5_000;
    const first = await run(users, 32, (i) => [`/hdr/${i}`, { 'x-user-id': `user-${i}` }]);
    const onV2 = first.filter((a) => a.upstream === 'v2').length;
    assert.ok(Math.abs(onV2 / users - 0.1) <= 0.01, `${onV2} of ${users} users on v2, want 10% ± 1 pp`);
    // The same users again, in another order (other connections, other workers): the same side.
    const again = await run(1000, 32, (i) => [`/hdr/again-${i}`, { 'x-user-id': `user-${(i * 7919) % users}` }]);
    const moved = again.filter((a, i) => a.upstream !== first[(i * 7919) % users].upstream);
    assert.equal(moved.length, 0, `${moved.length} requests of known users went to the other side`);
    // The side is the hash's, whatever the worker: the same function decides it here.
    for (let i = 0; i < 200; i++) assert.equal(first[i].upstream, stickyFraction(`user-${i}`) * 100 < 90 ? 'v1' : 'v2', `user-${i}`);
    const anonymous = await run(400, 16, (i) => [`/hdr/anon-${i}`]);
    const anonV2 = anonymous.filter((a) => a.upstream === 'v2').length;
    assert.ok(anonV2 > 0 && anonV2 < 400, `requests without the header are spread at random (${anonV2} of 400 on v2)`);
    // The access log names the service each request went to.
    await waitUntil('access-log lines of the again- requests', () => gw.stdout().split('\n').filter((l) => l.includes('/hdr/again-')).length === 1000);
    const lines = gw.stdout().split('\n').filter((l) => l.includes('"/hdr/again-')).map((l) => JSON.parse(l) as { route: string; service: string; path: string });
    for (const line of lines) {
      const i = Number(line.path.slice('/hdr/again-'.length));
      assert.equal(line.service, first[(i * 7919) % users].upstream, line.path);
      assert.equal(line.route, 'by-header');
    }
  });

  it('sticky by cookie: each uid stays on one side', async () => {
    const users = 300;
    const rounds = await Promise.all([0, 1, 2].map((round) =>
      run(users, 16, (i) => [`/cookie/${round}`, { cookie: `theme=dark; uid=u${i}; x=${round}` }])));
    for (let i = 0; i < users; i++) {
      assert.ok(rounds.every((r) => r[i].upstream === rounds[0][i].upstream), `uid u${i}: ${rounds.map((r) => r[i].upstream)}`);
      assert.equal(rounds[0][i].upstream, stickyFraction(`u${i}`) * 100 < 90 ? 'v1' : 'v2');
    }
    assert.ok(rounds[0].some((a) => a.upstream === 'v2') && rounds[0].some((a) => a.upstream === 'v1'));
  });

  it('sticky by claim: the verified token\'s sub (and a claim injected as a header) keeps a user on one side', async () => {
    const users = 150;
    const tokens = await Promise.all(Array.from({ length: users }, (_, i) =>
      sign(key, { iss: ISSUER, sub: `sub-${i}`, tenant: `tenant-${i}`, exp: now() + 600 }, { header: { kid: null } })));
    for (const [prefix, value] of [['/sub', (i: number) => `sub-${i}`], ['/tenant', (i: number) => `tenant-${i}`]] as const) {
      // A client's own X-Tenant-Id is dropped by the auth filter: it cannot pick its side.
      const rounds = await Promise.all([0, 1].map((round) =>
        run(users, 16, (i) => [`${prefix}/${round}`, { authorization: `Bearer ${tokens[i]}`, 'x-tenant-id': `spoofed-${round}-${i}` }])));
      for (let i = 0; i < users; i++) {
        assert.equal(rounds[0][i].status, 200);
        assert.equal(rounds[1][i].upstream, rounds[0][i].upstream, `${prefix} user ${i}`);
        assert.equal(rounds[0][i].upstream, stickyFraction(value(i)) * 100 < 90 ? 'v1' : 'v2', `${prefix} user ${i}`);
      }
    }
    // Refused by auth before the split chose: no upstream, service "-".
    assert.equal((await get('/sub/none')).status, 401);
    await waitUntil('the refused request counted under service "-"', async () =>
      sampleValue((await scrapeMetrics(admin.url)).families, 'lobby_requests_total', { route: 'by-sub', service: '-', code: '4xx' }) === 1);
  });

  it('the route\'s circuit_breaker is one breaker per member: the failing member\'s opens, the other\'s stays closed', async () => {
    await run(40, 4, (i) => [`/guarded/${i}`]);
    await breakerOnce(admin, 'bad', 'open', (b) => b.state === 'open' && b.transitions.open === 1, { route: 'guarded' });
    const healthy = await breakerStatus(admin, 'v1', 'guarded');
    assert.equal(healthy.state, 'closed');
    assert.equal(healthy.transitions.open, 0);
    // v1 still answers its share; bad's share is refused by its open breaker.
    const answers = await run(40, 4, (i) => [`/guarded/after-${i}`]);
    assert.ok(answers.some((a) => a.status === 200 && a.upstream === 'v1'));
    assert.ok(answers.filter((a) => a.status !== 200).every((a) => a.status === 503));
  });

  it('the admin API refuses bad weights with the key path, and a service a split or a route uses', async () => {
    const r = await admin.put('/routes/canary', { match: { prefix: '/canary' }, services: [{ name: 'v1', weight: 0 }, { name: 'v2', weight: 0 }] });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'config_invalid');
    assert.deepEqual(r.body.error.issues.map((i: { path: string; message: string }) => `${i.path}: ${i.message}`),
      [`routes[${5}].services: weights sum to 0: at least one service needs a weight above 0`]);
    const d = await admin.del('/services/v2');
    assert.equal(d.status, 409);
    assert.equal(d.body.error.code, 'service_in_use');
    assert.deepEqual(d.body.error.routes, ['random', 'by-header', 'by-cookie', 'by-sub', 'by-tenant', 'canary']);
  });

  it('a weight change through the admin API under load fails no request; every request after the 200 takes the new weights', async () => {
    const route = (w1: number, w2: number) => ({ match: { prefix: '/canary' }, services: [{ name: 'v1', weight: w1 }, { name: 'v2', weight: w2 }] });
    let stop = false;
    let changedAt = Infinity; // when the change's 200 came back: a request sent later must see it
    const failures: string[] = [];
    const late: Answer[] = [];
    let total = 0;
    const loops = Array.from({ length: 16 }, async (_, k) => {
      for (let i = 0; !stop; i++) {
        const sentAt = Date.now();
        try {
          const a = await get(`/canary/${k}/${i}`);
          total++;
          if (a.status !== 200) failures.push(`status ${a.status}`);
          else if (sentAt > changedAt) late.push(a);
        } catch (err) {
          failures.push(String(err));
        }
      }
    });
    await waitUntil('load running', () => total > 500, 10_000);
    const before = hits(v2, '/canary/');
    assert.equal(before, 0, 'weight 0: v2 got nothing');
    const r = await admin.put('/routes/canary', route(0, 100));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    changedAt = Date.now();
    await waitUntil('requests after the change', () => late.length > 1000, 15_000);
    const r2 = await admin.put('/routes/canary', route(50, 50));
    assert.equal(r2.status, 200, JSON.stringify(r2.body));
    stop = true;
    await Promise.all(loops);
    assert.deepEqual(failures, [], 'no request failed');
    // `late` holds requests sent after the first change and answered before the loops stopped;
    // the second change came after at least 1000 of them, so count only the first 1000.
    const wrong = late.slice(0, 1000).filter((a) => a.upstream !== 'v2');
    assert.equal(wrong.length, 0, `${wrong.length} requests sent after the change went to v1`);
    // 50/50 now: 2000 requests land on both sides, near half each (sd 22: 45..55% is 4.5 sd).
    const split = await run(2000, 16, (i) => [`/canary/half/${i}`]);
    const half = split.filter((a) => a.upstream === 'v2').length;
    assert.ok(half >= 900 && half <= 1100, `v2 got ${half} of 2000 after 50/50`);
  });
});
