// The access log's per-request cost: the filter's onEnd for a proxied request with every field
// (the default), writing to a real file, against an empty onEnd. Each call is a batch of 256
// requests followed by one event-loop turn, so sonic-boom's writes complete as they would
// under load and their cost is counted too.
//
//   node dist/native-bench/access-log.bench.js
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bench } from 'tinybench';
import type { Filter } from '../src/data/chain.js';
import { buildAccessLog } from '../src/filters/access-log/filter.js';
import { ACCESS_LOG_FIELDS } from '../src/filters/access-log/fields.js';
import { collectRows, printRows, runWhenMain, type BenchRow } from './bench-kit.js';
import { finishedContext } from './metrics.bench.js';

const BATCH = 256;
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function run(options: { time?: number } = {}): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'lobby-bench-log-'));
  try {
    const filter = buildAccessLog({ path: join(dir, 'access.log'), sample: 1, onlyErrors: false, fields: [...ACCESS_LOG_FIELDS] }, { workerIndex: 0 } as never);
    const empty: Filter = { name: 'empty', onRequest: () => 0, onEnd: () => undefined };
    const ctx = finishedContext();
    Object.assign(ctx, {
      method: 'GET', path: '/api/users/12345/orders', correlationId: '0f6a2b1c-9d3e-4f5a-8b7c-6d5e4f3a2b1c', clientIp: '10.1.2.3',
      dispatchTime: ctx.startTime + 0.05,
      route: { name: 'orders', service: { name: 'orders-svc' } }, target: { origin: 'http://10.0.0.7:8080' },
    });
    const bench = new Bench({ time: options.time ?? 500 });
    bench
      .add('onEnd: empty filter', async () => { for (let i = 0; i < BATCH; i++) empty.onEnd!(ctx); await turn(); })
      .add('onEnd: access log, every field', async () => { for (let i = 0; i < BATCH; i++) filter.onEnd!(ctx); await turn(); });
    return await collectRows('access-log', bench, BATCH);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await runWhenMain(import.meta.url, async () => {
  const rows = await run();
  printRows(rows);
  const ns = (name: string) => 1e9 / rows.find((r) => r.case === name)!.opsPerSec;
  console.log(`access-log line over an empty onEnd: ${(ns('onEnd: access log, every field') - ns('onEnd: empty filter')).toFixed(0)} ns per request`);
});
