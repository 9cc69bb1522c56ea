// Metrics and live latency end to end on one real gateway (2 workers): the exposition parsed by a
// strict parser (test/helpers/prom-text.ts) and by promtool; every family counted against the
// traffic the test sent (routes, unrouted 404s, local replies, upstream failures, auth and
// rate-limit decisions, bytes, durations); counters kept across a config change; /stats/latency,
// /report, `lobby report`, /upstreams; and a real Prometheus scraping the gateway.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { MAIN_JS, startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { adminClient, waitUntil, type AdminClient } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';
import { parsePrometheusText, promtoolProblems, sampleValue, scrapeCounted, scrapeMetrics, type MetricFamily } from '../helpers/prom-text.js';

const SECRET = 'metrics-test-secret-0123456789abcdef0123';
const SLOW_MS = 60;

let fast: Upstream;
let slow: Upstream;
let gw: Gateway;
let admin: AdminClient;
let adminPort: number;
let deadPort: number;
/** Requests this file sent to the data plane (every one goes through hit()). */
let sent = 0;
/** sum(lobby_requests_total) before the first hit (the start-up probes are unrouted requests). */
let baseline = 0;

async function hit(path: string, headers: Record<string, string> = {}, body?: string): Promise<number> {
  sent++;
  const res = await request(`${gw.url}${path}`, { method: body === undefined ? 'GET' : 'POST', headers: { host: 'localhost', ...headers }, body });
  await res.body.dump();
  return res.statusCode;
}

const scrape = () => scrapeMetrics(admin.url);

const scrapeCountedHere = () => scrapeCounted(admin.url, baseline + sent);

before(async () => {
  fast = await startUpstream('fast');
  slow = await startUpstream('slow', (_req, res) => { setTimeout(() => res.end('slow'), SLOW_MS); });
  adminPort = await freePort();
  deadPort = await freePort(); // nothing listens there: connect failures
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2 }
admin: { host: 127.0.0.1, port: ${adminPort} }
metrics: { status_codes: class }
services:
  fast: { targets: ["${fast.origin}"] }
  slow: { targets: ["${slow.origin}"] }
  dead: { targets: ["http://127.0.0.1:${deadPort}"], timeouts: { connect_ms: 2000 } }
auth:
  providers:
    - { name: main, issuer: test, secret: "${SECRET}", algorithms: [HS256] }
rate_limits:
  tiny: { key: ip, rate: 1, per: 1h, burst: 2 }
routes:
  - { name: fast, match: { prefix: /fast }, service: fast }
  - { name: slow, match: { prefix: /slow }, service: slow }
  - { name: dead, match: { prefix: /dead }, service: dead }
  - { name: secure, match: { prefix: /secure }, service: fast, auth: { provider: main } }
  - { name: limited, match: { prefix: /limited }, service: fast, rate_limit: [tiny] }
`);
  admin = adminClient(adminPort);
  await admin.waitReady();
  baseline = sampleValue((await scrape()).families, 'lobby_requests_total');
});

after(async () => {
  await gw?.stop();
  await fast?.close();
  await slow?.close();
});

describe('GET /metrics', () => {
  it('counts every request by route, service and status class, with bytes and durations; promtool accepts the exposition', async () => {
    for (let i = 0; i < 20; i++) assert.equal(await hit('/fast/a'), 200);
    for (let i = 0; i < 5; i++) assert.equal(await hit('/fast/upload', { 'content-type': 'text/plain' }, 'x'.repeat(100)), 200);
    for (let i = 0; i < 10; i++) assert.equal(await hit('/slow'), 200);
    const { text, families } = await scrapeCountedHere();
    assert.equal(sampleValue(families, 'lobby_requests_total', { route: 'fast', service: 'fast', code: '2xx' }), 25);
    assert.equal(sampleValue(families, 'lobby_requests_total', { route: 'slow', service: 'slow', code: '2xx' }), 10);
    assert.equal(sampleValue(families, 'lobby_request_bytes_total', { route: 'fast' }), 500);
    assert.ok(sampleValue(families, 'lobby_response_bytes_total', { route: 'fast' }) > 25 * 50);
    assert.equal(sampleValue(families, 'lobby_request_duration_seconds_count', { route: 'slow' }), 10);
    // Every slow request took at least SLOW_MS: none in a bucket below it, all by 10 s.
    assert.equal(sampleValue(families, 'lobby_request_duration_seconds_bucket', { route: 'slow', le: '0.05' }), 0);
    assert.equal(sampleValue(families, 'lobby_request_duration_seconds_bucket', { route: 'slow', le: '10' }), 10);
    assert.ok(sampleValue(families, 'lobby_request_duration_seconds_sum', { route: 'slow' }) >= 10 * SLOW_MS / 1000);
    assert.equal(sampleValue(families, 'lobby_upstream_duration_seconds_count', { service: 'slow' }), 10);
    assert.equal(families.get('lobby_request_duration_seconds')?.type, 'histogram');
    assert.equal(families.get('lobby_requests_total')?.type, 'counter');
    // The Node process metrics, from prom-client.
    assert.ok(families.has('process_cpu_user_seconds_total'));
    assert.ok(families.has('nodejs_heap_size_used_bytes'));
    // Per-worker event-loop lag: one series per worker and statistic.
    assert.equal(families.get('lobby_worker_event_loop_lag_seconds')?.samples.length, 6);
    const info = families.get('lobby_config_info')!.samples;
    assert.equal(info.length, 1);
    assert.equal(info[0].labels.version, '1');
    assert.equal(sampleValue(families, 'lobby_worker_restarts_total'), 0);
    // Prometheus' own parser and linter: nothing to say about Lobby's metrics (prom-client's
    // nodejs_active_*_total gauges draw a naming lint that is not ours).
    const problems = promtoolProblems(text).filter((p) => !/^nodejs_active_\w+_total non-counter/.test(p));
    assert.deepEqual(problems, []);
  });

  it('counts unrouted requests, local replies by code, upstream failures by kind, auth and rate-limit decisions', async () => {
    assert.equal(await hit('/nowhere'), 404);
    assert.equal(await hit('/nowhere/else'), 404);
    assert.equal(await hit('/dead'), 502);
    assert.equal(await hit('/secure'), 401);
    assert.equal(await hit('/secure', { authorization: 'Bearer not.a.token' }), 401);
    for (let i = 0; i < 2; i++) assert.equal(await hit('/limited'), 200);
    assert.equal(await hit('/limited'), 429);
    const { families } = await scrapeCountedHere();
    assert.equal(sampleValue(families, 'lobby_requests_total', { route: '-', service: '-', code: '4xx' }) >= 2, true);
    assert.equal(sampleValue(families, 'lobby_local_replies_total', { route: '-', code: 'route_not_found' }) >= 2, true);
    assert.equal(sampleValue(families, 'lobby_requests_total', { route: 'dead', code: '5xx' }), 1);
    assert.equal(sampleValue(families, 'lobby_local_replies_total', { route: 'dead', code: 'upstream_unavailable' }), 1);
    assert.equal(sampleValue(families, 'lobby_upstream_errors_total', { service: 'dead', kind: 'connect_failure' }), 1);
    assert.equal(sampleValue(families, 'lobby_upstream_target_errors_total', { service: 'dead', target: `http://127.0.0.1:${deadPort}` }), 1);
    assert.equal(sampleValue(families, 'lobby_auth_decisions_total', { provider: 'main', result: 'unauthenticated' }), 1);
    assert.equal(sampleValue(families, 'lobby_auth_decisions_total', { provider: 'main', result: 'invalid_token' }), 1);
    assert.equal(sampleValue(families, 'lobby_local_replies_total', { route: 'secure', code: 'unauthenticated' }), 1);
    assert.equal(sampleValue(families, 'lobby_ratelimit_decisions_total', { limit: 'tiny', decision: 'admitted' }), 2);
    assert.equal(sampleValue(families, 'lobby_ratelimit_decisions_total', { limit: 'tiny', decision: 'limited' }), 1);
    assert.equal(sampleValue(families, 'lobby_local_replies_total', { route: 'limited', code: 'rate_limited' }), 1);
    assert.equal(sampleValue(families, 'lobby_upstream_active_requests', { service: 'fast' }), 0);
    assert.ok(sampleValue(families, 'lobby_upstream_connections', { service: 'fast' }) >= 1);
  });

  it('keeps counting across a config change: counters never go back, the new route is counted, reloads are counted', async () => {
    const before = sampleValue((await scrapeCountedHere()).families, 'lobby_requests_total', { route: 'fast' });
    const put = await admin.put('/routes/extra', { match: { prefix: '/extra' }, service: 'fast' });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    assert.equal(await hit('/extra'), 200);
    assert.equal(await hit('/fast/again'), 200);
    const { families } = await scrapeCountedHere();
    assert.equal(sampleValue(families, 'lobby_requests_total', { route: 'fast' }), before + 1);
    assert.equal(sampleValue(families, 'lobby_requests_total', { route: 'extra', service: 'fast', code: '2xx' }), 1);
    assert.equal(sampleValue(families, 'lobby_config_reloads_total', { source: 'admin', result: 'ok' }), 1);
    assert.equal(families.get('lobby_config_info')!.samples[0].labels.version, '2');
  });
});

describe('live latency', () => {
  it('GET /stats/latency merges the workers: per route count and ordered percentiles', async () => {
    const r = await admin.get('/stats/latency');
    assert.equal(r.status, 200);
    const slowRow = r.body.routes.find((row: { route: string }) => row.route === 'slow');
    assert.equal(slowRow.count, 10);
    assert.ok(slowRow.p50_ms >= SLOW_MS * 0.99, JSON.stringify(slowRow));
    assert.ok(slowRow.p50_ms <= slowRow.p90_ms && slowRow.p90_ms <= slowRow.p99_ms && slowRow.p99_ms <= slowRow.p999_ms && slowRow.p999_ms <= slowRow.max_ms * 1.01);
    const fastRow = r.body.routes.find((row: { route: string }) => row.route === 'fast');
    assert.ok(fastRow.count >= 25);
  });

  it('GET /report is a self-contained HTML page with a percentile curve per route; lobby report saves it', async () => {
    const res = await request(`${admin.url}/report`);
    const html = await res.body.text();
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.match(html, /<polyline [^>]*data-series="slow"/);
    assert.match(html, /<polyline [^>]*data-series="fast"/);
    assert.doesNotMatch(html, /<script src|<link /);
    const dir = await mkdtemp(join(tmpdir(), 'lobby-report-'));
    try {
      const out = join(dir, 'report.html');
      const cli = spawnSync(process.execPath, [MAIN_JS, 'report', '--admin', admin.url, '--out', out], { encoding: 'utf8' });
      assert.equal(cli.status, 0, cli.stderr);
      assert.match(await readFile(out, 'utf8'), /data-series="slow"/);
      const bad = spawnSync(process.execPath, [MAIN_JS, 'report', '--admin', admin.url], { encoding: 'utf8' });
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /report needs --admin URL and --out FILE/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('GET /upstreams', () => {
  it("lists each service's targets with in-flight requests, pooled connections and recent errors", async () => {
    assert.equal(await hit('/fast/warm'), 200); // idle keep-alive connections close after 4 s
    await scrapeCountedHere(); // its try released too
    const r = await admin.get('/upstreams');
    assert.equal(r.status, 200);
    const byName = new Map(r.body.services.map((s: { name: string }) => [s.name, s]));
    const fastTarget = (byName.get('fast') as { targets: Record<string, number>[] }).targets[0];
    assert.equal(fastTarget.target, fast.origin);
    assert.equal(fastTarget.in_flight, 0);
    assert.ok(fastTarget.connections >= 1, JSON.stringify(fastTarget));
    const deadTarget = (byName.get('dead') as { targets: Record<string, number>[] }).targets[0];
    assert.equal(deadTarget.errors_total, 1);
    assert.equal(deadTarget.recent_errors, 1);
    assert.equal(deadTarget.connections, 0);
  });
});

/** The bucket bounds (lower, upper] holding quantile `q` of a histogram summed over the series matching `labels`. */
function bucketOfQuantile(families: Map<string, MetricFamily>, name: string, labels: Record<string, string>, q: number): [number, number] {
  const byLe = new Map<number, number>();
  for (const s of families.get(name)!.samples) {
    if (s.name !== `${name}_bucket` || !Object.entries(labels).every(([k, v]) => s.labels[k] === v)) continue;
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  const bounds = [...byLe.keys()].sort((a, b) => a - b);
  const rank = q * byLe.get(Infinity)!;
  let low = 0;
  for (const le of bounds) {
    if (byLe.get(le)! >= rank) return [low, le];
    low = le;
  }
  throw new Error(`${name}: no bucket holds rank ${rank}`);
}

describe('a real Prometheus scraping Lobby', () => {
  let prom: ChildProcess | null = null;
  let dir = '';
  after(async () => {
    if (prom && prom.exitCode === null) {
      const exited = new Promise((r) => prom!.once('exit', r));
      prom.kill('SIGTERM');
      const timer = setTimeout(() => prom?.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('sees sum(lobby_requests_total) and a histogram_quantile that match the traffic sent', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lobby-prometheus-'));
    const port = await freePort();
    await writeFile(join(dir, 'prometheus.yml'), `
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: lobby
    static_configs: [{ targets: ["127.0.0.1:${adminPort}"] }]
`);
    let log = '';
    prom = spawn('/usr/bin/prometheus', [
      `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    prom.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
    const query = async (q: string): Promise<number | null> => {
      try {
        const res = await request(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`);
        const body = await res.body.json() as { status: string; data?: { result: { value: [number, string] }[] } };
        const v = body.data?.result[0]?.value[1];
        return v === undefined ? null : Number(v);
      } catch {
        return null;
      }
    };
    const expected = baseline + sent;
    let total: number | null = null;
    await waitUntil(`Prometheus to scrape ${expected} requests (log: ${log})`, async () => {
      total = await query('sum(lobby_requests_total)');
      return total === expected;
    }, 60_000).catch((err) => { throw new Error(`${(err as Error).message}; last answer ${total}; prometheus log: ${log}`); });
    // Prometheus' quantiles interpolate inside the bucket that holds the rank; which bucket
    // that is comes from the same counters, scraped here (on a loaded machine a 60 ms call may
    // land in a higher bucket, so the bucket is read, not assumed). Every slow request took at
    // least SLOW_MS: never below 0.05.
    const { families } = await scrapeCountedHere();
    for (const [q, name, labels] of [
      [0.5, 'lobby_request_duration_seconds', { route: 'slow' }],
      [0.99, 'lobby_upstream_duration_seconds', { service: 'slow' }],
    ] as const) {
      const [low, high] = bucketOfQuantile(families, name, labels, q);
      const [key, value] = Object.entries(labels)[0];
      const got = await query(`histogram_quantile(${q}, sum by (le) (${name}_bucket{${key}="${value}"}))`);
      assert.ok(got !== null && got >= low && got <= high && got > 0.05, `${name} q${q}: ${got}, expected within (${low}, ${high}]`);
    }
  });
});
