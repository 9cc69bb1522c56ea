// Load on Lobby instances that share rate limits through Redis, and the check of the
// over-admission bound of docs/rate-limiting.md. Used with one redis-server
// (test/integration/rate-limit-redis.test.ts), Sentinel and Cluster (redis-*.test.ts).
import assert from 'node:assert/strict';
import autocannon from 'autocannon';
import { Pool } from 'undici';
import type { Gateway } from './gateway.js';
import type { AdminClient } from './admin.js';

export interface LoadResult {
  elapsedMs: number;
  ok: number;
  limited: number;
  /** Statuses other than 200 and 429, with their counts. */
  other: [number, number][];
  /** Error codes of non-200 answers, with their counts. */
  codes: Map<string, number>;
  /** Requests that got no HTTP answer (connection refused, reset, timeout). */
  errors: number;
  errorMessages: string[];
}

/** Closed-loop load with `connections` connections until `done()`; counts answers by status. */
export async function loadUntil(gw: Gateway, path: string, headers: Record<string, string>, done: () => boolean, connections = 4): Promise<LoadResult> {
  const pool = new Pool(gw.url, { connections });
  const counts = new Map<number, number>();
  const codes = new Map<string, number>();
  const errorMessages: string[] = [];
  let errors = 0;
  const started = Date.now();
  await Promise.all(Array.from({ length: connections }, async () => {
    while (!done()) {
      try {
        const res = await pool.request({ path, method: 'GET', headers: { host: 'localhost', ...headers } });
        const text = await res.body.text();
        counts.set(res.statusCode, (counts.get(res.statusCode) ?? 0) + 1);
        if (res.statusCode !== 200) {
          const code = (JSON.parse(text) as { error: { code: string } }).error.code;
          codes.set(code, (codes.get(code) ?? 0) + 1);
        }
      } catch (error) {
        errors++;
        if (errorMessages.length < 5) errorMessages.push(String(error));
      }
    }
  }));
  // The real window: the last requests finish after `done`, later still on a loaded machine.
  const elapsedMs = Date.now() - started;
  await pool.close();
  return { elapsedMs, ok: counts.get(200) ?? 0, limited: counts.get(429) ?? 0, other: [...counts].filter(([s]) => s !== 200 && s !== 429), codes, errors, errorMessages };
}

/** loadUntil for `ms` milliseconds. */
export function load(gw: Gateway, path: string, headers: Record<string, string>, ms: number, connections = 4): Promise<LoadResult> {
  const until = Date.now() + ms;
  return loadUntil(gw, path, headers, () => Date.now() >= until, connections);
}

export interface BoundCheck {
  /** Rate (tokens per second) and burst of the limit on `path`. */
  rate: number;
  burst: number;
  /** redis.rate_limit_sync_ms of the instances. */
  intervalMs: number;
  /** Headers of every request (the limit's key). */
  headers: Record<string, string>;
}

/**
 * Three (or more) instances under autocannon on one key of a shared limit: all together they
 * admit at most B + R·W + (2 − 1/N)·R·(T + d) (docs/rate-limiting.md, d ≤ 50 ms here), at most
 * 5 % over the limit B + R·W and at least 90 % of it (the scheme must not get there by
 * under-admitting). The load runs until it has offered 4 × the limit of the time so far, and at
 * least 5 s (so the 5 % check is meaningful), so a slow machine lengthens the run instead of
 * leaving the limit unexercised. Returns the report line.
 */
export async function checkSharedLimitBound(instances: { gw: Gateway; admin: AdminClient }[], path: string, check: BoundCheck): Promise<string> {
  const { rate: R, burst: B, headers } = check;
  const EXCESS = 4;
  const MIN_SECONDS = 5;
  const started = performance.now();
  let offered = 0;
  let firstResponseAt = 0;
  const done: Promise<autocannon.Result>[] = [];
  const cannons = instances.map((i) => {
    let cannon!: autocannon.Instance;
    done.push(new Promise((resolve, reject) => {
      cannon = autocannon({ url: `${i.gw.url}${path}`, connections: 16, duration: 120, headers }, (err, result) => (err ? reject(err) : resolve(result)));
    }));
    cannon.on('response', () => { if (firstResponseAt === 0) firstResponseAt = performance.now(); offered++; });
    return cannon;
  });
  const deadline = started + 60_000;
  for (;;) {
    const elapsed = (performance.now() - started) / 1000;
    if (elapsed >= MIN_SECONDS && offered >= EXCESS * (B + R * elapsed)) break;
    if (performance.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const stoppedAt = performance.now();
  for (const c of cannons) c.stop();
  const results = await Promise.all(done);
  const seconds = (performance.now() - started) / 1000;
  const admitted = results.reduce((n, r) => n + r['2xx'], 0);
  const total = results.reduce((n, r) => n + r.requests.total, 0);
  for (const r of results) {
    assert.equal(r.errors, 0);
    assert.equal(r.non2xx + r['2xx'], r.requests.total);
  }
  const N = instances.length;
  const nominal = B + R * seconds;
  const bound = nominal + (2 - 1 / N) * R * ((check.intervalMs + 50) / 1000);
  const over = (admitted - nominal) / nominal;
  const statuses = await Promise.all(instances.map(async (i) => (await i.admin.get('/status')).body.rate_limits));
  const report = `admitted ${admitted} of ${total} in ${seconds.toFixed(2)} s; limit ${nominal.toFixed(0)}; bound ${bound.toFixed(0)}; over ${(over * 100).toFixed(2)} %; ` +
    `per instance ${results.map((r) => r['2xx']).join('/')}; redis rounds ${statuses.map((s) => s.redis.rounds).join('/')}, ` +
    `failed ${statuses.map((s) => s.redis.failed_rounds).join('/')}, instances ${statuses[0].redis.instances}`;
  // Stopped at EXCESS × the limit; the few requests in flight at the stop cannot bring it below 3×.
  assert.ok(total >= 3 * nominal, `the load must exceed the limit (${report})`);
  assert.ok(admitted <= bound, report);
  assert.ok(over <= 0.05, report);
  // The lower bound counts only the time load flowed (first response to the stop): on a loaded
  // machine, starting the autocannons and winding them down takes a good part of a second.
  const flowing = B + R * ((stoppedAt - firstResponseAt) / 1000);
  assert.ok(admitted >= 0.9 * flowing, `far below the limit of the time load flowed (${flowing.toFixed(0)}): ${report}`);
  // Each instance got a fair part (the shares follow the load).
  for (const r of results) assert.ok(r['2xx'] > admitted / (2 * N), report);
  return report;
}
