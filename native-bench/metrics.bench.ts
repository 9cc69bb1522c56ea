// Metrics: the recording path (the `metrics` filter's onEnd, once per request: counters only,
// counters on a route with API versioning (lobby_api_version_requests_total too), and counters +
// the route's HDR histogram) against an empty onEnd, and a scrape of 1,000 routes (2 workers'
// arrays summed, every family formatted), which must stay under 50 ms; also with every route
// serving 2 API versions.
//
//   node dist/native-bench/metrics.bench.js
import { Bench } from 'tinybench';
import { compileConfig } from '../src/control/compile.js';
import { JwksManager } from '../src/control/jwks.js';
import { MetricsStore } from '../src/control/metrics-store.js';
import { Observability, type ObservedStore } from '../src/control/observability.js';
import { RateLimitSync } from '../src/control/rate-limit-sync.js';
import type { Filter } from '../src/data/chain.js';
import { RequestContext } from '../src/data/request-context.js';
import { buildFilter } from '../src/filters/builders.js';
import { collectRows, printRows, runWhenMain, type BenchRow } from './bench-kit.js';

export interface MetricsFixture {
  store: MetricsStore;
  /** Each route's recorder, per worker. */
  recorders: Filter[][];
  observability: Observability;
}

/**
 * A compiled config of `routes` routes with metrics on, its buffers and recorders, and the real
 * endpoint code over them. `versions` > 0: a `versioning` section declaring "1".."versions",
 * every route serving all of them (match.version).
 */
export function metricsFixture(routes: number, latencyReports: boolean, workers = 2, versions = 0): MetricsFixture {
  const names = Array.from({ length: versions }, (_, i) => String(i + 1));
  const compiled = compileConfig({
    server: { workers },
    admin: { port: 9901 },
    metrics: { latency_reports: latencyReports },
    services: { a: { targets: ['http://127.0.0.1:9'] } },
    ...(versions > 0 ? { versioning: { versions: Object.fromEntries(names.map((v) => [v, {}])) } } : {}),
    routes: Array.from({ length: routes }, (_, i) => ({ name: `route-${i}`, match: { prefix: `/r${i}`, ...(versions > 0 ? { version: names } : {}) }, service: 'a' })),
  }, 'bench.yaml');
  const store = new MetricsStore();
  const buffers = store.allocate(1, compiled)!;
  store.activate(1);
  const recorders = buffers.map((metrics, workerIndex) => compiled.routes.map((r) => buildFilter(r.filters.find((f) => f.name === 'metrics')!, { workerIndex, post: () => undefined, metrics })));
  const supervisor = {
    metrics: store, ask: async () => [], rateLimits: new RateLimitSync(), jwks: new JwksManager(() => undefined), restarts: 0, workerLag: () => [], startedAt: Date.now(),
  };
  const configStore = { current: { version: 1, hash: 'bench' }, changeCounts: new Map() } as unknown as ObservedStore;
  return { store, recorders, observability: new Observability(supervisor as never, configStore) };
}

/** A finished request as the exchange leaves it: 200, bytes, upstream timings. */
export function finishedContext(): RequestContext {
  const ctx = new RequestContext({} as never, {} as never, performance.now() - 2);
  ctx.status = 200;
  ctx.bytesIn = 0;
  ctx.bytesOut = 512;
  ctx.upstreamStartTime = ctx.startTime + 0.2;
  ctx.upstreamFirstByteTime = ctx.startTime + 1.5;
  ctx.upstreamLastByteTime = ctx.startTime + 1.8;
  return ctx;
}

export async function run(options: { time?: number } = {}): Promise<BenchRow[]> {
  const counters = metricsFixture(10, false, 1);
  const withHdr = metricsFixture(10, true, 1);
  const versioned = metricsFixture(10, false, 1, 2);
  const ctx = finishedContext();
  const versionedCtx = finishedContext();
  versionedCtx.apiVersionIndex = 1;
  const empty: Filter = { name: 'empty', onRequest: () => 0, onEnd: () => undefined };
  const record = new Bench({ time: options.time ?? 300 });
  record
    .add('onEnd: empty filter', () => { empty.onEnd!(ctx); })
    .add('onEnd: counters', () => { counters.recorders[0][3].onEnd!(ctx); })
    .add('onEnd: counters, versioned route', () => { versioned.recorders[0][3].onEnd!(versionedCtx); })
    .add('onEnd: counters + HDR', () => { withHdr.recorders[0][3].onEnd!(ctx); });
  const rows = await collectRows('metrics', record);

  const scrape = metricsFixture(1000, false, 2);
  const versionedScrape = metricsFixture(1000, false, 2, 2);
  for (const fixture of [scrape, versionedScrape]) {
    for (const worker of fixture.recorders) {
      for (const r of worker) {
        for (const version of [0, 1]) { ctx.apiVersionIndex = version; ctx.status = 200; r.onEnd!(ctx); ctx.status = 503; r.onEnd!(ctx); }
      }
    }
  }
  ctx.status = 200;
  ctx.apiVersionIndex = -1;
  const scrapeBench = new Bench({ time: options.time ?? 1000 });
  scrapeBench.add('scrape: 1,000 routes, 2 workers', async () => { await scrape.observability.metricsText(); });
  scrapeBench.add('scrape: 1,000 routes x 2 versions, 2 workers', async () => { await versionedScrape.observability.metricsText(); });
  rows.push(...await collectRows('metrics', scrapeBench));
  for (const f of [counters, withHdr, versioned, scrape, versionedScrape]) f.observability.close();
  return rows;
}

await runWhenMain(import.meta.url, async () => {
  const rows = await run();
  printRows(rows);
  const ns = (name: string) => 1e9 / rows.find((r) => r.case === name)!.opsPerSec;
  console.log(`recording cost over an empty onEnd: counters ${(ns('onEnd: counters') - ns('onEnd: empty filter')).toFixed(0)} ns, ` +
    `versioned route ${(ns('onEnd: counters, versioned route') - ns('onEnd: empty filter')).toFixed(0)} ns, ` +
    `counters + HDR ${(ns('onEnd: counters + HDR') - ns('onEnd: empty filter')).toFixed(0)} ns per request; ` +
    `scrape of 1,000 routes ${(ns('scrape: 1,000 routes, 2 workers') / 1e6).toFixed(1)} ms, ` +
    `with 2 versions each ${(ns('scrape: 1,000 routes x 2 versions, 2 workers') / 1e6).toFixed(1)} ms (budget 50 ms)`);
});
