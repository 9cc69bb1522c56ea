// Overload protection (docs/resilience.md#overload-protection, Envoy's overload manager): new
// requests get 503 `gateway_overloaded` (and their connection closed) while the instance has
// more than `server.max_connections` exchanges open, or this worker's V8 heap is above
// `server.overload.heap_percent` of its limit, instead of the process running out of memory.
//
// Nothing is measured per request. A timer every `check_ms` publishes this worker's count of
// open exchanges into the instance's shared buffer (src/shared/breaker-layout.ts), sums the
// other workers' and reads the heap; a request adds its own worker's live count to the
// others' (refreshed each check) and compares. This uWebSockets.js build has no hook on a new
// connection (no filter(); docs/index.d.ts), so the cap counts open exchanges (a request in
// progress holds its connection), not idle keep-alive connections: those are bounded by uWS's
// idle timeout.
import { getHeapStatistics } from 'node:v8';
import type { CompiledConfig } from '../shared/compiled-config.js';
import { OPEN_COUNTS } from '../shared/breaker-layout.js';
import { openCount } from './deadlines.js';

/** Overload protection is configured (the request path's one comparison when it is not). */
export let overloadOn = false;

let maxConnections = 0;
let heapPercent = 0;
let othersOpen = 0;
let heapHigh = false;
let counts: Int32Array | null = null;
let self = 0;
let workers = 1;
let timer: NodeJS.Timeout | null = null;

/** Applies a generation's `server.overload` / `server.max_connections` (when it becomes current). */
export function configureOverload(config: CompiledConfig, workerIndex: number): void {
  const o = config.server.overload ?? null;
  const buffer = config.breakerState?.buffer ?? null;
  if (timer !== null) { clearInterval(timer); timer = null; }
  if (counts !== null) Atomics.store(counts, OPEN_COUNTS + self, 0);
  heapHigh = false;
  othersOpen = 0;
  if (o === null || buffer === null) { overloadOn = false; counts = null; return; }
  counts = new Int32Array(buffer);
  self = workerIndex;
  workers = config.server.workers;
  maxConnections = o.maxConnections;
  heapPercent = o.heapPercent;
  overloadOn = true;
  checkOverload();
  timer = setInterval(checkOverload, o.checkMs);
  timer.unref();
}

/** The periodic check (exported for tests of the data plane without a timer). */
export function checkOverload(): void {
  if (counts !== null) {
    Atomics.store(counts, OPEN_COUNTS + self, openCount());
    let others = 0;
    for (let w = 0; w < workers; w++) if (w !== self) others += Atomics.load(counts, OPEN_COUNTS + w);
    othersOpen = others;
  }
  if (heapPercent > 0) {
    const h = getHeapStatistics();
    heapHigh = h.used_heap_size > h.heap_size_limit * (heapPercent / 100);
  }
}

/** A new request should be refused (called only when overloadOn). */
export function shouldShed(): boolean {
  return heapHigh || (maxConnections > 0 && openCount() + othersOpen > maxConnections);
}
