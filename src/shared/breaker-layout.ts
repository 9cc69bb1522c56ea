// The instance's resilience state shared by every worker (issue 14): one SharedArrayBuffer the
// control plane allocates (src/control/breaker-store.ts) and hands to workers with each
// compiled config. It holds one slot per circuit breaker (a service's, keyed by its name in
// the control plane; a route's own, keyed `route:<name>`), so a reload (a new generation)
// keeps every breaker's state, and a header with the overload guard's per-worker
// open-request counts.
//
// All fields are Int32 read and written with Atomics. Times are milliseconds on a wrapping
// Int32 clock (`((now - then) | 0)` is right for spans under 24 days) whose zero is the
// buffer's base (a Float64 at byte 0, Date-epoch ms): every thread converts its own
// performance clock to it once (workers' performance.now() origins differ).

/** The compiled `circuit_breaker` of a service or a route (docs/resilience.md#circuit-breaker). 0 = off. */
export interface CompiledBreaker {
  maxConcurrent: number;
  maxPending: number;
  consecutiveFailures: number;
  /** 0..1; 0 = no failure-rate rule. */
  failureRate: number;
  windowMs: number;
  minRequests: number;
  slowCallMs: number;
  openMs: number;
  halfOpenProbes: number;
}

/** The compiled `fallback.cache` of a service or a route (docs/resilience.md#fallback-cache). */
export interface CompiledFallback {
  ttlMs: number;
  maxBytes: number;
  maxEntryBytes: number;
  /** Lower-case request header names whose values are part of every key: the identity
   * headers auth providers inject, Authorization and Cookie (one user's answer is never
   * served to another). */
  keyHeaders: string[];
}

/** The compiled `server.overload` and `server.max_connections` (docs/resilience.md#overload-protection). */
export interface CompiledOverload {
  /** Open exchanges per instance beyond which new requests are shed (0 = no cap). */
  maxConnections: number;
  /** Share of the worker's V8 heap limit beyond which new requests are shed (0 = off). */
  heapPercent: number;
  checkMs: number;
}

/** What a generation's config carries of the shared buffer (set by the supervisor at publish). */
export interface CompiledBreakerState {
  buffer: SharedArrayBuffer;
  /** Slot of each breaker: a service's by its name, a route's own by `route:<name>`. */
  slots: Record<string, number>;
}

/**
 * The key of a route's own breaker slot (control plane) and fallback cache (each worker):
 * `:` is not allowed in a name, so it never meets a service's key (its name).
 */
export function routeOverrideKey(route: string): string {
  return `route:${route}`;
}

/**
 * The name a member of a route's weighted split goes by where a route's own breaker and
 * fallback cache are keyed (routeOverrideKey, logs): each member has its own, since each
 * measures and caches another upstream. `/` is not allowed in a name either.
 */
export function memberPolicyName(route: string, service: string): string {
  return `${route}/${service}`;
}

export const BREAKER_STATE = { CLOSED: 0, OPEN: 1, HALF_OPEN: 2 } as const;
export const BREAKER_STATE_NAMES = ['closed', 'open', 'half_open'] as const;

/** Int32 offsets inside a slot. */
export const SLOT = {
  STATE: 0,
  /** When it last opened (wrapping ms). */
  OPENED_AT: 1,
  CONSECUTIVE: 2,
  IN_FLIGHT: 3,
  PENDING: 4,
  PROBES_ADMITTED: 5,
  PROBES_OK: 6,
  /** Transitions counted, by the state entered (index = BREAKER_STATE). */
  TO_CLOSED: 7,
  TO_OPEN: 8,
  TO_HALF_OPEN: 9,
  /** Requests refused: while open (or half-open with every probe taken), over max_concurrent / max_pending. */
  REJECTED_OPEN: 10,
  REJECTED_OVERFLOW: 11,
  /** Answers from the fallback cache while open (all workers). */
  FALLBACKS: 12,
  /** The failure-rate window: WINDOW_BUCKETS × [bucket number, requests, failures]. */
  WINDOW: 16,
} as const;
export const WINDOW_BUCKETS = 10;
export const SLOT_INTS = SLOT.WINDOW + WINDOW_BUCKETS * 3 + 2; // 48: 192 bytes a service

/** Header: the Float64 base (2 ints), then each worker's open-request count (MAX_WORKERS ints). */
export const HEADER_WORKERS = 256;
export const OPEN_COUNTS = 4;
export const HEADER_INTS = OPEN_COUNTS + HEADER_WORKERS;

export function slotOffset(slot: number): number {
  return HEADER_INTS + slot * SLOT_INTS;
}

export function bufferBytes(slots: number): number {
  return (HEADER_INTS + slots * SLOT_INTS) * 4;
}

/** The buffer's clock base (Date-epoch ms). */
export function baseOf(buffer: SharedArrayBuffer): number {
  return new Float64Array(buffer, 0, 1)[0];
}
