// Upstream health on the hot path (issue 14: with health checks configured and nothing
// failing, at most 3 % of a proxied request): the pick with and without the health byte, for
// round_robin and least_request over 3 targets, and one dispatch through the outlier
// interceptor (its handler wrapper and the success bookkeeping) against the bare dispatch.
// A plain proxied request costs about 20 µs of CPU (docs/performance.md): 3 % is 0.6 µs.
//
//   node dist/native-bench/health.bench.js
import { Bench } from 'tinybench';
import { healthyLeastRequest, healthyRoundRobin, leastRequest, roundRobin } from '../src/data/upstream/balancer.js';
import { outlierInterceptor } from '../src/data/upstream/outlier.js';
import { compose, type DispatchController, type DispatchFn, type DispatchHandler, type DispatchOptions } from '../src/data/upstream/dispatch.js';
import type { RuntimeTarget } from '../src/data/request-context.js';
import type { CompiledService } from '../src/shared/compiled-config.js';
import { HealthTable } from '../src/shared/health-table.js';
import { collectRows, printRows, runWhenMain, type BenchRow } from './bench-kit.js';

export async function run(options: { time?: number } = {}): Promise<BenchRow[]> {
  const bench = new Bench({ time: options.time ?? 300 });
  const table = HealthTable.create(16);
  const targets = [0, 1, 2].map((i) => ({ origin: `t${i}`, inFlight: 0, healthSlot: i + 1 }) as unknown as RuntimeTarget);
  const plainRr = roundRobin(), healthRr = healthyRoundRobin(table.down);
  const plainLr = leastRequest(), healthLr = healthyLeastRequest(table.down);
  const service = {
    name: 's', targets: [], outlier: { consecutive5xx: 5, consecutiveConnectFailures: 5, ejectS: 30, maxEjectS: 300, maxEjectPercent: 50 },
    health: { serviceSlot: 0, targetSlots: [1, 2, 3] },
  } as unknown as CompiledService;
  const controller = {} as DispatchController;
  // A client that answers 200 at once: what the interceptor adds is all that differs.
  const base: DispatchFn = (_options, handler) => { handler.onResponseStart?.(controller, 200, [], 'OK'); handler.onResponseEnd?.(controller, null); };
  const bare = compose(base, []);
  const withOutlier = compose(base, [outlierInterceptor(service, table, 0)!]);
  const call = { target: targets[0] } as unknown as DispatchOptions;
  let sink = 0;
  const handler: DispatchHandler = { onResponseStart: (_c, status) => { sink += status; }, onResponseEnd: () => { sink++; } };
  bench
    .add('pick: round_robin', () => { sink += plainRr(targets).inFlight; })
    .add('pick: round_robin, health byte', () => { sink += healthRr(targets)!.inFlight; })
    .add('pick: least_request', () => { sink += plainLr(targets).inFlight; })
    .add('pick: least_request, health bytes', () => { sink += healthLr(targets)!.inFlight; })
    .add('dispatch: no interceptor', () => { bare(call, handler); })
    .add('dispatch: outlier interceptor (200)', () => { withOutlier(call, handler); });
  const rows = await collectRows('health', bench);
  if (sink === -1) console.log(sink);
  return rows;
}

await runWhenMain(import.meta.url, async () => {
  printRows(await run());
});
