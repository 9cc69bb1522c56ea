// Passive outlier ejection (docs/resilience.md#outlier-ejection), an upstream interceptor on
// dispatch.ts's shape: it watches each response of a service's targets and, after
// `consecutive_5xx` 5xx answers (resets and broken responses count as such) or
// `consecutive_connect_failures` failed connects in a row, ejects the target for
// eject_s × times ejected (at most max_eject_s), never more than max_eject_percent of the
// service's targets at once.
//
// The counters live in the health table (src/shared/health-table.ts), shared by the
// instance's workers: Atomics.add gives exactly one worker the failure that reaches the
// threshold, and that one ejects. The control plane's sweeper (src/control/health-checker.ts)
// logs the ejection and brings the target back when its time is over.
//
// The innermost interceptor, just above the client: a retry (outermost) sends its next try
// through the picker, which already skips a target ejected here.
import type { CompiledOutlier, CompiledService } from '../../shared/compiled-config.js';
import type { UpstreamErrorCode } from '../../shared/errors.js';
import { DOWN, F, FIELDS, TICK_MS, ejectionCap, ejectionMs, type HealthTable } from '../../shared/health-table.js';
import type {
  DispatchController, DispatchFn, DispatchHandler, DispatchOptions, HeaderField, Interceptor, UpstreamError,
} from './dispatch.js';

/** One service's ejection rules over the shared table. */
export class OutlierPolicy {
  private readonly cap: number;

  constructor(
    private readonly table: HealthTable,
    private readonly serviceSlot: number,
    targets: number,
    private readonly rules: CompiledOutlier,
    private readonly workerIndex: number,
  ) {
    this.cap = ejectionCap(targets, rules.maxEjectPercent);
  }

  /** A response that is not a 5xx: both streaks end (a read before the write: the shared
   * cache line is written only when there is something to reset). */
  success(slot: number): void {
    const fields = this.table.fields;
    const i = slot * FIELDS;
    if (fields[i + F.CONSECUTIVE_5XX] !== 0) Atomics.store(fields, i + F.CONSECUTIVE_5XX, 0);
    if (fields[i + F.CONSECUTIVE_CONNECT] !== 0) Atomics.store(fields, i + F.CONSECUTIVE_CONNECT, 0);
  }

  /** One more failure of kind `field` (F.CONSECUTIVE_5XX or F.CONSECUTIVE_CONNECT). */
  failure(slot: number, field: number): void {
    const threshold = field === F.CONSECUTIVE_5XX ? this.rules.consecutive5xx : this.rules.consecutiveConnectFailures;
    if (threshold === 0) return;
    if (this.table.addField(slot, field, 1) !== threshold) return; // exactly one worker reaches it
    this.eject(slot, field);
  }

  private eject(slot: number, field: number): void {
    const table = this.table;
    // Whatever happens, the streak starts again: threshold more failures try once more.
    table.setField(slot, field, 0);
    if (table.isDown(slot, DOWN.EJECTED)) return;
    if (!table.reserveEjection(this.serviceSlot, this.cap)) return; // max_eject_percent reached
    if (table.setDown(slot, DOWN.EJECTED) & DOWN.EJECTED) { table.releaseEjection(this.serviceSlot); return; }
    const times = table.addField(slot, F.TIMES_EJECTED, 1);
    const now = table.ticks();
    table.setField(slot, F.CONSECUTIVE_5XX, 0);
    table.setField(slot, F.CONSECUTIVE_CONNECT, 0);
    table.setField(slot, F.LAST_CHANGE, now);
    table.setField(slot, F.EJECTED_BY, this.workerIndex + 1);
    table.setField(slot, F.EJECTED_UNTIL, now + Math.ceil(ejectionMs(times, this.rules.ejectS, this.rules.maxEjectS) / TICK_MS));
    // Last: the sweeper logs an ejection when it sees this count move, and reads the above.
    table.addField(slot, F.EJECTIONS_TOTAL, 1);
  }
}

/** Failures that count, by upstream error code: connects apart, the rest as a 5xx would. */
function failureField(code: UpstreamErrorCode): number {
  switch (code) {
    case 'connect_failed': case 'connect_timeout': return F.CONSECUTIVE_CONNECT;
    case 'reset': case 'bad_response': return F.CONSECUTIVE_5XX;
    default: return -1; // the gateway's own doing (aborted, queue full, pool closed, ...)
  }
}

/** Wraps the request's handler to see its outcome; every call goes on to the inner handler. */
class OutlierHandler implements DispatchHandler {
  constructor(private readonly inner: DispatchHandler, private readonly policy: OutlierPolicy, private readonly slot: number) {}

  onRequestStart(controller: DispatchController, context: unknown): void {
    this.inner.onRequestStart?.(controller, context);
  }

  onResponseStart(controller: DispatchController, statusCode: number, headers: HeaderField[], statusMessage: string): void {
    if (statusCode >= 500) this.policy.failure(this.slot, F.CONSECUTIVE_5XX);
    else this.policy.success(this.slot);
    this.inner.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: DispatchController, chunk: Buffer): void {
    this.inner.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: DispatchController, trailers: HeaderField[] | null): void {
    this.inner.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: DispatchController, err: UpstreamError): void {
    const field = failureField(err.code);
    if (field >= 0) this.policy.failure(this.slot, field);
    this.inner.onResponseError?.(controller, err);
  }
}

/** The service's outlier interceptor, or null when it has no `outlier` (or no health table). */
export function outlierInterceptor(service: CompiledService, table: HealthTable | undefined, workerIndex: number): Interceptor | null {
  if (!service.outlier || !service.health || table === undefined) return null;
  const policy = new OutlierPolicy(table, service.health.serviceSlot, service.targets.length, service.outlier, workerIndex);
  return (next: DispatchFn): DispatchFn => (options: DispatchOptions, handler: DispatchHandler) => {
    const slot = options.target.healthSlot ?? -1;
    if (slot < 0) { next(options, handler); return; }
    next(options, new OutlierHandler(handler, policy, slot));
  };
}
