// The circuit breaker's cost per try (issue 14: the proxy path with a breaker within 1.03x, and
// a plain proxied request costs about 20 µs of CPU, docs/performance.md, so 3 % is ~0.6 µs):
// one try through the service's dispatch without the breaker, with a consecutive-failures
// breaker, and with every rule on (failure rate, slow calls, max_concurrent, max_pending),
// over a base dispatch that answers at once (the cost of the client is not the breaker's).
// Also a GET captured into a fallback cache (a service with `fallback`).
//
//   node dist/native-bench/breaker.bench.js
import { Bench } from 'tinybench';
import { compose, type DispatchFn, type DispatchHandler, type DispatchOptions, type DispatchController } from '../src/data/upstream/dispatch.js';
import { breakerInterceptor, servicePolicy } from '../src/data/upstream/breaker.js';
import { RequestContext } from '../src/data/request-context.js';
import type { CompiledService } from '../src/shared/compiled-config.js';
import { bufferBytes, type CompiledBreaker } from '../src/shared/breaker-layout.js';
import { collectRows, printRows, ratio, runWhenMain, type BenchRow } from './bench-kit.js';

const CONTROLLER: DispatchController = { abort() {}, pause() {}, resume() {}, aborted: false, paused: false };
const BODY = Buffer.from('{"ok":true}');

/** Answers every request at once: start, a 200 head, one chunk, the end. */
const answer: DispatchFn = (_options, handler) => {
  handler.onRequestStart?.(CONTROLLER, null);
  handler.onResponseStart?.(CONTROLLER, 200, ['content-type', 'application/json'], 'OK');
  handler.onResponseData?.(CONTROLLER, BODY);
  handler.onResponseEnd?.(CONTROLLER, null);
};

function service(name: string, breaker: Partial<CompiledBreaker> | null, fallback = false): CompiledService {
  const buffer = new SharedArrayBuffer(bufferBytes(4));
  new Float64Array(buffer, 0, 1)[0] = Date.now();
  return {
    name, targets: [], tls: null, balance: 'round_robin', timeouts: { connectMs: 1000, responseMs: 1000, idleMs: 1000 }, connectionsPerTarget: 1, pipelining: 1,
    ...(breaker ? {
      circuitBreaker: { maxConcurrent: 0, maxPending: 0, consecutiveFailures: 0, failureRate: 0, windowMs: 10_000, minRequests: 20, slowCallMs: 0, openMs: 10_000, halfOpenProbes: 3, ...breaker },
      breakerShared: { buffer, slot: 0 },
    } : {}),
    ...(fallback ? { fallback: { ttlMs: 300_000, maxBytes: 1 << 20, maxEntryBytes: 1 << 16, keyHeaders: ['authorization', 'cookie'] } } : {}),
  };
}

function dispatchOf(svc: CompiledService): DispatchFn {
  const i = breakerInterceptor(servicePolicy(svc));
  return compose(answer, i === null ? [] : [i]);
}

export async function run(options: { time?: number } = {}): Promise<BenchRow[]> {
  const bench = new Bench({ time: options.time ?? 300 });
  const ctx = new RequestContext({} as never, {} as never, 0);
  ctx.method = 'GET';
  ctx.host = 'bench';
  ctx.upstreamPath = '/items/1';
  ctx.headers.push('accept', '*/*');
  const options_ = { ctx, method: 'GET', path: '/items/1', headers: [], body: null, head: null, idempotent: true } as unknown as DispatchOptions;
  let sink = 0;
  const handler: DispatchHandler = {
    onResponseStart(_c, status) { sink += status; },
    onResponseEnd() { sink++; },
  };
  const cases: [string, DispatchFn][] = [
    ['plain', dispatchOf(service('plain', null))],
    ['consecutive', dispatchOf(service('consecutive', { consecutiveFailures: 5 }))],
    ['all rules', dispatchOf(service('all', { consecutiveFailures: 5, failureRate: 0.5, slowCallMs: 2000, maxConcurrent: 1 << 20, maxPending: 1 << 20 }))],
    ['fallback capture', dispatchOf(service('capture', { consecutiveFailures: 5 }, true))],
  ];
  for (const [name, dispatch] of cases) bench.add(name, () => { for (let i = 0; i < 100; i++) dispatch(options_, handler); });
  const rows = await collectRows('breaker', bench, 100);
  if (sink === 0) throw new Error('no answers');
  return rows;
}

await runWhenMain(import.meta.url, async () => {
  const rows = await run();
  printRows(rows);
  const plain = rows.find((r) => r.case === 'plain')!.opsPerSec;
  for (const r of rows) if (r.case !== 'plain') console.log(`${r.case}: +${((1e9 / r.opsPerSec - 1e9 / plain)).toFixed(0)} ns a try (${ratio(rows, 'plain', r.case)}x plain ops/s)`);
});
