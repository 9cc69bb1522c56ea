// The circuit breaker of a service (docs/resilience.md#circuit-breaker), an upstream
// interceptor (dispatch.ts): every try of a request passes it (retries outside it count each).
// A route with its own `circuit_breaker` gets its own breaker in its own dispatch chain, in
// place of the service's (routePolicy, generation.ts).
//
// Its state lives in the instance's shared buffer (src/shared/breaker-layout.ts), one slot
// per breaker, so every worker sees the same state and counts: closed → open when
// `consecutive_failures` tries failed in a row or `failure_rate` of at least `min_requests`
// tries within `window_s` failed; open → half-open after `open_s`; half-open admits
// `half_open_probes` tries, and closes when all of them succeed, opens again on a failure.
// Transitions are compare-and-swaps: the worker that wins one logs it and counts it, so each
// is logged once per instance. `max_concurrent` / `max_pending` bound the tries in flight /
// waiting for a connection, over all workers (Envoy's circuit breaker thresholds).
//
// A failure is a connect failure, timeout, reset or broken response, a 5xx, or a try slower
// than `slow_call_ms` to its response head. Neutral (not counted): the client leaving, a stale
// keep-alive connection (sent again), the gateway's own refusals.
//
// The same interceptor captures the service's successful GET responses into its fallback
// cache (fallback-cache.ts), and while the breaker is open answers from it.
//
// Hot path, closed and nothing failing: one object per try, Atomics.load of the state at
// admission and of the consecutive count at the end (plus an add and a sub per limit set).
import { performance } from 'node:perf_hooks';
import { log } from '../../shared/log.js';
import {
  BREAKER_STATE, BREAKER_STATE_NAMES, SLOT, WINDOW_BUCKETS, baseOf, slotOffset, type CompiledBreaker,
} from '../../shared/breaker-layout.js';
import type { CompiledRoute, CompiledService } from '../../shared/compiled-config.js';
import type { UpstreamErrorCode } from '../../shared/errors.js';
import { coarseNow } from '../deadlines.js';
import { RESPONSE_FLAG, type RequestContext } from '../request-context.js';
import {
  upstreamError, type DispatchController, type DispatchFn, type DispatchHandler, type DispatchOptions, type HeaderField, type Interceptor,
  type UpstreamError,
} from './dispatch.js';
import { cacheableVary, copyHeaders, fallbackCacheFor, routeFallbackCache, type FallbackCache } from './fallback-cache.js';

const { CLOSED, OPEN, HALF_OPEN } = BREAKER_STATE;

/** Outcomes of an UpstreamError for the breaker. */
function isFailure(code: UpstreamErrorCode): boolean {
  switch (code) {
    case 'connect_timeout': case 'connect_failed': case 'reset': case 'bad_response': return true;
    default: return false; // stale_connection, queue_full, pool_closed, invalid_request, aborted, circuit_open, overflow
  }
}

/** One breaker (a service's, or a route's own): a view on its slot of the shared buffer. */
export class Breaker {
  private readonly s: Int32Array;
  private readonly at: number;
  /** This thread's performance clock → the buffer's wrapping ms clock. */
  private readonly offset: number;
  private readonly bucketMs: number;
  /** What it guards, for messages: `service <name>` or `route <name> (service <name>)`. */
  readonly label: string;

  /** `name`: the service's; `route`: the route whose own breaker this is, null for the service's. */
  constructor(readonly name: string, readonly config: CompiledBreaker, buffer: SharedArrayBuffer, slot: number, readonly route: string | null = null) {
    this.s = new Int32Array(buffer);
    this.at = slotOffset(slot);
    this.offset = performance.timeOrigin - baseOf(buffer);
    this.bucketMs = Math.max(1, Math.ceil(config.windowMs / WINDOW_BUCKETS));
    this.label = route === null ? `service ${name}` : `route ${route} (service ${name})`;
  }

  now(): number {
    return (coarseNow + this.offset) | 0;
  }

  state(): number {
    return Atomics.load(this.s, this.at + SLOT.STATE);
  }

  /** Seconds until an open breaker lets probes through (at least 1), for Retry-After. */
  retryAfterS(): number {
    const left = this.config.openMs - ((this.now() - Atomics.load(this.s, this.at + SLOT.OPENED_AT)) | 0);
    return Math.max(1, Math.ceil(left / 1000));
  }

  /**
   * Admission of a try: 0 = closed, 1 = a half-open probe, or a refusal (-1 open, -2 overflow).
   * An admitted try must end with finish() exactly once.
   */
  admit(): number {
    const s = this.s, at = this.at;
    let probe = 0;
    let state = Atomics.load(s, at + SLOT.STATE);
    if (state !== CLOSED) {
      if (state === OPEN) {
        if (((this.now() - Atomics.load(s, at + SLOT.OPENED_AT)) | 0) < this.config.openMs) return this.refuse(SLOT.REJECTED_OPEN, -1);
        // The first worker to see open_s pass moves it to half-open (and resets the probes).
        if (Atomics.compareExchange(s, at + SLOT.STATE, OPEN, HALF_OPEN) === OPEN) {
          Atomics.store(s, at + SLOT.PROBES_ADMITTED, 0);
          Atomics.store(s, at + SLOT.PROBES_OK, 0);
          this.transitioned(HALF_OPEN);
        }
        state = Atomics.load(s, at + SLOT.STATE);
        if (state === OPEN) return this.refuse(SLOT.REJECTED_OPEN, -1);
      }
      if (state === HALF_OPEN) {
        if (Atomics.add(s, at + SLOT.PROBES_ADMITTED, 1) >= this.config.halfOpenProbes) {
          Atomics.sub(s, at + SLOT.PROBES_ADMITTED, 1);
          return this.refuse(SLOT.REJECTED_OPEN, -1);
        }
        probe = 1;
      }
    }
    const c = this.config;
    if (c.maxConcurrent > 0 && Atomics.add(s, at + SLOT.IN_FLIGHT, 1) >= c.maxConcurrent) {
      Atomics.sub(s, at + SLOT.IN_FLIGHT, 1);
      if (probe === 1) Atomics.sub(s, at + SLOT.PROBES_ADMITTED, 1);
      return this.refuse(SLOT.REJECTED_OVERFLOW, -2);
    }
    if (c.maxPending > 0 && Atomics.add(s, at + SLOT.PENDING, 1) >= c.maxPending) {
      Atomics.sub(s, at + SLOT.PENDING, 1);
      if (c.maxConcurrent > 0) Atomics.sub(s, at + SLOT.IN_FLIGHT, 1);
      if (probe === 1) Atomics.sub(s, at + SLOT.PROBES_ADMITTED, 1);
      return this.refuse(SLOT.REJECTED_OVERFLOW, -2);
    }
    return probe;
  }

  private refuse(counter: number, result: number): number {
    Atomics.add(this.s, this.at + counter, 1);
    return result;
  }

  /** The try got its connection (no longer pending). */
  connected(): void {
    if (this.config.maxPending > 0) Atomics.sub(this.s, this.at + SLOT.PENDING, 1);
  }

  /** The try's end: `outcome` 1 success, -1 failure, 0 neutral. `pending`: it never got a connection. */
  finish(probe: number, outcome: number, pending: boolean): void {
    const s = this.s, at = this.at, c = this.config;
    if (c.maxConcurrent > 0) Atomics.sub(s, at + SLOT.IN_FLIGHT, 1);
    if (pending) this.connected();
    if (probe === 1) {
      if (outcome === 0) { Atomics.sub(s, at + SLOT.PROBES_ADMITTED, 1); return; }
      if (outcome < 0) { this.open(HALF_OPEN); return; }
      if (Atomics.add(s, at + SLOT.PROBES_OK, 1) + 1 >= c.halfOpenProbes
        && Atomics.compareExchange(s, at + SLOT.STATE, HALF_OPEN, CLOSED) === HALF_OPEN) {
        Atomics.store(s, at + SLOT.CONSECUTIVE, 0);
        this.transitioned(CLOSED);
      }
      return;
    }
    if (outcome === 0) return;
    if (c.failureRate > 0) this.count(outcome < 0);
    if (outcome > 0) {
      if (c.consecutiveFailures > 0 && Atomics.load(s, at + SLOT.CONSECUTIVE) !== 0) Atomics.store(s, at + SLOT.CONSECUTIVE, 0);
      return;
    }
    // A try admitted while closed that fails after the breaker left closed counts no more.
    if (Atomics.load(s, at + SLOT.STATE) !== CLOSED) return;
    if (c.consecutiveFailures > 0 && Atomics.add(s, at + SLOT.CONSECUTIVE, 1) + 1 >= c.consecutiveFailures) { this.open(CLOSED); return; }
    if (c.failureRate > 0 && this.rateExceeded()) this.open(CLOSED);
  }

  /** Counts a try in the current bucket of the failure-rate window. */
  private count(failed: boolean): void {
    const s = this.s;
    const bucket = Math.floor(this.now() / this.bucketMs) | 0;
    const at = this.at + SLOT.WINDOW + (((bucket % WINDOW_BUCKETS) + WINDOW_BUCKETS) % WINDOW_BUCKETS) * 3;
    const seen = Atomics.load(s, at);
    // The first try of a new bucket clears it (a concurrent try of the same turn may be lost: a count, never a state).
    if (seen !== bucket && Atomics.compareExchange(s, at, seen, bucket) === seen) {
      Atomics.store(s, at + 1, 0);
      Atomics.store(s, at + 2, 0);
    }
    Atomics.add(s, at + 1, 1);
    if (failed) Atomics.add(s, at + 2, 1);
  }

  private rateExceeded(): boolean {
    const s = this.s, c = this.config;
    const current = Math.floor(this.now() / this.bucketMs) | 0;
    let total = 0, failed = 0;
    for (let b = 0; b < WINDOW_BUCKETS; b++) {
      const at = this.at + SLOT.WINDOW + b * 3;
      const age = (current - Atomics.load(s, at)) | 0;
      if (age < 0 || age >= WINDOW_BUCKETS) continue;
      total += Atomics.load(s, at + 1);
      failed += Atomics.load(s, at + 2);
    }
    return total >= c.minRequests && failed >= total * c.failureRate;
  }

  /** closed/half-open → open (the winner of the swap logs it). */
  private open(from: number): void {
    const s = this.s, at = this.at;
    if (Atomics.load(s, at + SLOT.STATE) !== from) return; // another try opened it already
    Atomics.store(s, at + SLOT.OPENED_AT, this.now());
    if (Atomics.compareExchange(s, at + SLOT.STATE, from, OPEN) === from) {
      for (let b = 0; b < WINDOW_BUCKETS; b++) Atomics.store(s, at + SLOT.WINDOW + b * 3, -1);
      Atomics.store(s, at + SLOT.CONSECUTIVE, 0);
      this.transitioned(OPEN);
    }
  }

  private transitioned(to: number): void {
    Atomics.add(this.s, this.at + SLOT.TO_CLOSED + to, 1);
    const fields = this.route === null
      ? { service: this.name, state: BREAKER_STATE_NAMES[to], open_s: this.config.openMs / 1000 }
      : { service: this.name, route: this.route, state: BREAKER_STATE_NAMES[to], open_s: this.config.openMs / 1000 };
    if (to === OPEN) log.warn('circuit breaker opened', fields);
    else log.info(to === CLOSED ? 'circuit breaker closed' : 'circuit breaker half-open', fields);
  }

  /** A fallback answer served while open (counted for metrics). */
  countFallback(): void {
    Atomics.add(this.s, this.at + SLOT.FALLBACKS, 1);
  }
}

/** What the interceptor reads of the dispatch options: the exchange's context (proxy.ts UpstreamCall). */
interface WithContext { readonly ctx?: RequestContext }

/** One try through the breaker: the handler the client sees and the controller the caller sees. */
class GuardedTry implements DispatchHandler, DispatchController {
  private controller: DispatchController | null = null;
  private done = false;
  private pending: boolean;
  private outcome = 0;
  private readonly startedAt = coarseNow;
  // Capture for the fallback cache (primary !== null only for a GET of a service with one).
  private vary: string[] | null = null;
  private headers: string[] | null = null;
  private status = 0;
  private statusText = '';
  private chunks: Buffer[] | null = null;
  private captured = 0;

  constructor(
    private readonly breaker: Breaker | null,
    private readonly probe: number,
    private readonly handler: DispatchHandler,
    private readonly cache: FallbackCache | null,
    private readonly ctx: RequestContext | null,
    private readonly primary: string | null,
  ) {
    this.pending = breaker !== null && breaker.config.maxPending > 0;
  }

  get aborted(): boolean { return this.controller?.aborted ?? this.done; }
  get paused(): boolean { return this.controller?.paused ?? false; }
  pause(): void { this.controller?.pause(); }
  resume(): void { this.controller?.resume(); }

  abort(reason: Error): void {
    // The caller ended the try (client gone, reply sent, a deadline): a failure only when the
    // exchange's deadline passed (the upstream was too slow) or the caller says why with a
    // failure code (e.g. a policy's per-try timeout), and not once it answered.
    const ctx = this.ctx;
    if (this.outcome === 0) {
      const code = (reason as Partial<UpstreamError>).code;
      if (code !== undefined ? isFailure(code) : ctx !== null && !ctx.aborted && ctx.deadline !== 0 && coarseNow >= ctx.deadline) this.outcome = -1;
    }
    this.end(this.outcome);
    this.controller?.abort(reason);
  }

  private end(outcome: number): void {
    if (this.done) return;
    this.done = true;
    this.breaker?.finish(this.probe, outcome, this.pending);
    this.pending = false;
  }

  onRequestStart(controller: DispatchController, context: unknown): void {
    this.controller = controller;
    if (this.pending) { this.pending = false; this.breaker!.connected(); }
    this.handler.onRequestStart?.(this, context);
  }

  onResponseStart(controller: DispatchController, statusCode: number, headers: HeaderField[], statusMessage: string): void {
    const breaker = this.breaker;
    if (breaker !== null) {
      const slow = breaker.config.slowCallMs;
      this.outcome = statusCode >= 500 || (slow > 0 && coarseNow - this.startedAt > slow) ? -1 : 1;
    }
    const vary = this.primary !== null ? cacheableVary(statusCode, headers) : null;
    this.handler.onResponseStart?.(this, statusCode, headers, statusMessage);
    if (vary !== null && this.ctx !== null && !this.ctx.ended) {
      // `headers` now holds what is relayed (the handler compacted it in place); copied
      // before the response filters edit it (they run when the head is written).
      this.vary = vary;
      this.headers = copyHeaders(headers);
      this.status = statusCode;
      this.statusText = statusMessage;
      this.chunks = [];
    }
  }

  onResponseData(controller: DispatchController, chunk: Buffer): void {
    const chunks = this.chunks;
    if (chunks !== null) {
      this.captured += chunk.length;
      if (this.captured > this.cache!.config.maxEntryBytes) this.chunks = null;
      else chunks.push(Buffer.from(chunk)); // a copy: a client may reuse its read buffer
    }
    this.handler.onResponseData?.(this, chunk);
  }

  onResponseEnd(controller: DispatchController, trailers: HeaderField[] | null): void {
    this.end(this.outcome === 0 ? 1 : this.outcome);
    const chunks = this.chunks;
    if (chunks !== null) {
      this.chunks = null;
      this.cache!.store(this.primary!, this.ctx!, this.vary!, this.status, this.statusText, this.headers!,
        chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    }
    this.handler.onResponseEnd?.(this, trailers);
  }

  onResponseError(controller: DispatchController, err: UpstreamError): void {
    this.chunks = null;
    this.end(isFailure(err.code) ? -1 : 0);
    this.handler.onResponseError?.(this, err);
  }
}

/** A controller for a try refused before it reached a client (nothing to abort). */
const REFUSED: DispatchController = { abort() {}, pause() {}, resume() {}, aborted: true, paused: false };

/** The error of a refused try; the Retry-After header goes with it (proxy.ts sends it). */
function refusal(breaker: Breaker, result: number): UpstreamError {
  if (result === -2) return upstreamError('overflow', `${breaker.label}: circuit_breaker max_concurrent or max_pending reached`);
  const err = upstreamError('circuit_open', `${breaker.label}: circuit breaker open`) as UpstreamError & { headers?: readonly string[] };
  err.headers = ['retry-after', String(breaker.retryAfterS())];
  return err;
}

/** The service's breaker: a view on its slot (by name, so every generation shares the state). */
export function breakerOf(service: CompiledService): Breaker | null {
  const config = service.circuitBreaker ?? null;
  const shared = service.breakerShared;
  if (config === null || shared === undefined) return null;
  return new Breaker(service.name, config, shared.buffer, shared.slot);
}

/** What a dispatch chain's breaker interceptor guards its tries with; either may be null. */
export interface BreakerPolicy {
  readonly breaker: Breaker | null;
  readonly cache: FallbackCache | null;
}

/** A service's own breaker and fallback cache (what its routes get unless they override them). */
export function servicePolicy(service: CompiledService): BreakerPolicy {
  return { breaker: breakerOf(service), cache: fallbackCacheFor(service) };
}

/**
 * A route's breaker and fallback cache (docs/resilience.md#per-route-overrides): each of its
 * overrides in place of the service's (a route's own breaker replaces the service's for its
 * tries, it does not stack with it), false for none, and the service's where it has none.
 */
export function routePolicy(
  route: Pick<CompiledRoute, 'name' | 'circuitBreaker' | 'fallback' | 'breakerSlot'>, service: CompiledService, buffer: SharedArrayBuffer | null,
): BreakerPolicy {
  const own = route.circuitBreaker;
  const slot = route.breakerSlot;
  const breaker = own === undefined ? breakerOf(service)
    : own === false || slot === undefined || buffer === null ? null
    : new Breaker(service.name, own, buffer, slot, route.name);
  const cache = route.fallback === undefined ? fallbackCacheFor(service)
    : route.fallback === false ? null
    : routeFallbackCache(route.name, service.name, route.fallback);
  return { breaker, cache };
}

/**
 * The interceptor of a chain with a circuit breaker or a fallback cache (none without
 * either: serviceInterceptors adds nothing, the plain path pays nothing).
 */
export function breakerInterceptor(policy: BreakerPolicy): Interceptor | null {
  const { breaker, cache } = policy;
  if (breaker === null && cache === null) return null;
  return (next: DispatchFn): DispatchFn => (options: DispatchOptions, handler: DispatchHandler) => {
    const ctx = (options as WithContext).ctx ?? null;
    let probe = 0;
    if (breaker !== null) {
      probe = breaker.admit();
      if (probe < 0) {
        if (probe === -1 && ctx !== null) {
          ctx.responseFlags |= RESPONSE_FLAG.CIRCUIT_OPEN;
          if (cache !== null && cache.replay(ctx, handler)) { breaker.countFallback(); return; }
        }
        handler.onResponseError?.(REFUSED, refusal(breaker, probe));
        return;
      }
    }
    const primary = cache !== null && ctx !== null ? cache.primaryKey(ctx) : null;
    next(options, new GuardedTry(breaker, probe, handler, cache, ctx, primary));
  };
}
