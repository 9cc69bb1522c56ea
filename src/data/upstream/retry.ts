// Retries (docs/resilience.md#retries): when a try of an upstream request may be sent again,
// after how long, to which target, within which budget.
//
// The interceptor is the outermost of a service's (generation.ts serviceInterceptors): each
// try goes through the interceptors inside it (breaker, outlier bookkeeping, the client), so
// each try counts for them. It wraps no handler: a wrapper would be one more object per
// request, and handler callbacks carry no reference to their request. Instead the request's
// UpstreamCall (proxy.ts) is the RetryCall: it carries the counters, and at the three points a
// try can fail (an error, a retryable status before it is relayed, a timeout on the deadline
// ticker) asks retryDelay() here whether to send again. A backoff waits on the same ticker
// (PHASE.RETRY_WAIT): no timer per request, none per retry.
//
// Safe only: never a streamed body (it cannot be replayed), never once the response was
// handed to the exchange, never past `attempts`, the deadline or the budget; a request that
// reached the upstream only for an idempotent method the policy lists.
import type { CompiledRetry, CompiledService } from '../../shared/compiled-config.js';
import { RESPONSE_FLAG, type RequestContext, type RuntimeService, type RuntimeTarget } from '../request-context.js';
import type { DispatchFn, DispatchHandler, DispatchOptions, HeaderField, Interceptor, UpstreamError } from './dispatch.js';
import { coarseNow } from '../deadlines.js';
import { lowerEquals } from '../exchange.js';

/**
 * Why a try was retried: the index of its 4-bit counter in RequestContext.retryReasons, and of
 * its name in src/shared/metrics-layout.ts RETRY_REASONS (the metrics recorder reads them at
 * the end of the exchange: lobby_upstream_retries_total{reason}).
 */
export const RETRY_REASON = { CONNECT_FAILURE: 0, RESET: 1, TIMEOUT: 2, STATUS: 3, STALE_CONNECTION: 4 } as const;
/** RequestContext.retryReasons bit: a retry was refused by the budget. */
export const RETRY_BUDGET_EXHAUSTED = 1 << 20;

/** What the retry logic reads and writes of a request: proxy.ts UpstreamCall implements it. */
export interface RetryCall extends DispatchOptions, DispatchHandler {
  readonly ctx: RequestContext;
  /** The route's policy (null: the call only carries a deadline). */
  readonly policy: CompiledRetry | null;
  /** Set by the interceptor: the dispatch inside it (what a retry goes through), and the
   * service's budget. */
  retryNext: DispatchFn | null;
  budget: RetryBudget | null;
  /** Tries sent so far (the first included). */
  tries: number;
  /** The response was handed to the exchange: nothing can be sent again. */
  relayed: boolean;
}

/**
 * The budget (Envoy's retry budget): retries at most `budget_percent` of the requests over the
 * last WINDOW_S seconds, and at least `budget_min_retries` in that window (so a quiet service
 * can still retry). Per worker and per service, kept across reloads: each worker sees its
 * share of the traffic, so the ratio holds for the instance. Two typed arrays of per-second
 * counts, rolled on the coarse clock: a request costs a compare and two increments.
 */
export const WINDOW_S = 10;
export class RetryBudget {
  private readonly requests = new Float64Array(WINDOW_S);
  private readonly retries = new Float64Array(WINDOW_S);
  private second = 0;
  private requestSum = 0;
  private retrySum = 0;

  private roll(now: number): number {
    const s = Math.floor(now / 1000);
    if (s !== this.second) {
      const steps = Math.min(s - this.second, WINDOW_S);
      for (let i = 1; i <= steps; i++) {
        const slot = (this.second + i) % WINDOW_S;
        this.requestSum -= this.requests[slot];
        this.retrySum -= this.retries[slot];
        this.requests[slot] = 0;
        this.retries[slot] = 0;
      }
      this.second = s;
    }
    return s % WINDOW_S;
  }

  request(now: number): void {
    this.requests[this.roll(now)]++;
    this.requestSum++;
  }

  /** Takes one retry from the budget, or says there is none left. */
  take(now: number, percent: number, minRetries: number): boolean {
    const slot = this.roll(now);
    if (this.retrySum >= Math.max(minRetries, (this.requestSum * percent) / 100)) return false;
    this.retries[slot]++;
    this.retrySum++;
    return true;
  }
}

// Keyed by service name, not by generation: a reload does not hand out a fresh budget.
const budgets = new Map<string, RetryBudget>();
function budgetOf(service: string): RetryBudget {
  let budget = budgets.get(service);
  if (budget === undefined) { budget = new RetryBudget(); budgets.set(service, budget); }
  return budget;
}

/**
 * The interceptor: counts each request for the budget once, and gives the call the dispatch
 * its retries go through. Composed only for a service some route of which has a policy or a
 * deadline (CompiledService.retryUsed).
 */
export function retryInterceptor(service: CompiledService): Interceptor {
  const budget = budgetOf(service.name);
  return (next) => (options, handler) => {
    const call = options as RetryCall;
    if (call.retryNext === null) {
      call.retryNext = next;
      call.budget = budget;
      budget.request(coarseNow);
    }
    next(options, handler);
  };
}

/** The policy's condition for an upstream error, or -1 when it does not retry that error. */
export function reasonOfError(policy: CompiledRetry, code: UpstreamError['code']): number {
  switch (code) {
    case 'connect_failed': case 'connect_timeout': return policy.onConnectFailure ? RETRY_REASON.CONNECT_FAILURE : -1;
    case 'reset': case 'stale_connection': return policy.onReset ? RETRY_REASON.RESET : -1;
    default: return -1;
  }
}

/**
 * Whether the try that just failed for `reason` is sent again, and after how many ms (-1: no,
 * the failure goes to the client). `retryAfterMs` is the response's Retry-After (-1: none).
 * Sets the URX flag when `attempts` is what refused, and the budget bit when the budget did.
 */
export function retryDelay(call: RetryCall, reason: number, retryAfterMs: number): number {
  const policy = call.policy;
  const ctx = call.ctx;
  if (policy === null || ctx.ended || call.relayed) return -1;
  const body = call.body;
  if (body !== null && !Buffer.isBuffer(body)) return -1; // streamed: it cannot be replayed
  // Reached the upstream (anything but a connect failure): only a method safe to repeat.
  if (reason !== RETRY_REASON.CONNECT_FAILURE && (!call.idempotent || (policy.methodMask & ctx.methodBit) === 0)) return -1;
  if (call.tries >= policy.attempts) {
    ctx.responseFlags |= RESPONSE_FLAG.UPSTREAM_RETRY_LIMIT_EXCEEDED;
    return -1;
  }
  // Full jitter (AWS's "exponential backoff and jitter"): uniform in [0, min(max, base·2^n)];
  // the upstream's Retry-After instead when it sent one, bounded by max.
  const max = policy.backoffMaxMs;
  const delay = retryAfterMs >= 0
    ? Math.min(retryAfterMs, max)
    : Math.random() * Math.min(max, policy.backoffBaseMs * 2 ** (call.tries - 1));
  // A retry that could not finish before the deadline is not worth sending.
  if (ctx.exchangeDeadline !== 0 && coarseNow + delay >= ctx.exchangeDeadline) return -1;
  if (call.budget !== null && !call.budget.take(coarseNow, policy.budgetPercent, policy.budgetMinRetries)) {
    ctx.retryReasons |= RETRY_BUDGET_EXHAUSTED;
    return -1;
  }
  countRetry(ctx, reason);
  return delay;
}

/** One more resend of `reason` on the context (the access log's `retries`, the metrics). */
export function countRetry(ctx: RequestContext, reason: number): void {
  ctx.retries++;
  const shift = reason * 4;
  // 4 bits a reason: attempts is at most 10, so a counter never overflows into the next.
  if (((ctx.retryReasons >> shift) & 0xf) < 0xf) ctx.retryReasons += 1 << shift;
}

/**
 * The target of a retry: another one when the service has one that is up. The service's own
 * picker chooses first (the previous target counting as very busy meanwhile, or least_request
 * would prefer it: requests to a failing target end fast); if it still gives the previous one,
 * the next target in the list that is up. None up but the previous: it again.
 */
export function pickRetryTarget(service: RuntimeService, previous: RuntimeTarget): RuntimeTarget {
  const targets = service.targets;
  if (targets.length === 1) return previous;
  previous.inFlight += AVOID;
  let chosen: RuntimeTarget | null = null;
  for (let i = 0; i < 2 && chosen === null; i++) {
    const t = service.pick(targets);
    if (t !== null && t !== previous) chosen = t;
  }
  previous.inFlight -= AVOID;
  if (chosen !== null) return chosen;
  const at = targets.indexOf(previous);
  for (let i = 1; i < targets.length; i++) {
    const t = targets[(at + i) % targets.length];
    if (service.isUp(t)) return t;
  }
  return previous;
}

/** Added to the previous target's in-flight count while a retry's target is picked. */
const AVOID = 1 << 24;

/**
 * Retry-After (RFC 9110 10.2.3) of a response, in ms: delay-seconds or an HTTP-date; -1 when
 * absent or unreadable. Read only for a status being retried.
 */
export function retryAfterMs(headers: readonly HeaderField[]): number {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (!lowerEquals(name, 'retry-after')) continue;
    const value = headers[i + 1].toString('latin1').trim();
    if (/^\d{1,9}$/.test(value)) return Number(value) * 1000;
    const date = Date.parse(value);
    return Number.isNaN(date) ? -1 : Math.max(0, date - Date.now());
  }
  return -1;
}
