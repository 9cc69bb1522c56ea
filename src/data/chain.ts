// The per-route filter chain. A filter owns one concern; `build` runs once per route per
// generation in each worker, `onRequest` once per request and returns a verdict:
//   NEXT  — go on with the next filter;
//   REPLY — the filter answered the request itself (e.g. 401, 429); stop;
//   WAIT  — the filter started async work and will call resumeChain(ctx) (or answer) later.
// An index loop with a stored resume point, not next() closures: no allocation per step.
import type { RequestContext } from './request-context.js';
import type { GatewayErrorSpec } from '../shared/errors.js';
import type { FromWorker } from '../shared/messages.js';
import { log } from '../shared/log.js';

export const NEXT = 0;
export const REPLY = 1;
export const WAIT = 2;
export type Verdict = typeof NEXT | typeof REPLY | typeof WAIT;

/**
 * The response head as a filter's onResponse sees it: the status, and header edits. `set`
 * replaces every header of that name the upstream sent (so an upstream's own `RateLimit` or
 * `Access-Control-Allow-Origin` never goes out twice); `append` adds one more (for list
 * headers such as `Vary`); `remove` drops every copy. Names are matched case-insensitively.
 */
export interface ResponseHead {
  readonly status: number;
  set(name: string, value: string): void;
  append(name: string, value: string): void;
  remove(name: string): void;
}

/**
 * A built filter. onRequest runs once per request in chain order; onResponse (optional)
 * once per response in reverse chain order, for an upstream response and a local reply
 * alike, before the status line is written; onEnd (optional) exactly once when the exchange
 * ends, however it ends (response sent, client gone, upstream failure, drain).
 */
export interface Filter {
  readonly name: string;
  onRequest(ctx: RequestContext): Verdict;
  onResponse?(ctx: RequestContext, head: ResponseHead): void;
  onEnd?(ctx: RequestContext): void;
}

/**
 * Where a filter sits in a route's chain; the chain is ordered by phase, then by the
 * registry's order within a phase. edge: before anything else (CORS preflight, IP rules);
 * authn: who the client is (JWT, API keys); authz: what it may do; policy: rate limits,
 * WAF; transform: request/response rewriting just before the upstream.
 */
export const FILTER_PHASES = ['edge', 'authn', 'authz', 'policy', 'transform'] as const;
export type FilterPhase = (typeof FILTER_PHASES)[number];

/**
 * A filter's local reply (401, 429, 503 …): stops the request's upstream side and answers
 * `spec` as JSON with `extraHeaders`. Returns REPLY for the filter to return.
 */
export function localReply(ctx: RequestContext, spec: GatewayErrorSpec, extraHeaders: readonly string[] | null = null): typeof REPLY {
  ctx.call!.failBeforeResponse(spec, extraHeaders); // set before the chain runs
  return REPLY;
}

/** Logs a bug met while handling a request, with the correlation id its client was told. */
export function logRequestFault(ctx: RequestContext | null, err: unknown): void {
  log.error('request handler fault', {
    correlation_id: ctx?.correlationId || undefined,
    route: ctx?.route?.name,
    error: String((err as Error)?.stack ?? err),
  });
}

/** What a filter's build() gets from its worker. */
export interface WorkerEnv {
  readonly workerIndex: number;
  /** Sends a message to the control plane. */
  post(msg: FromWorker): void;
  /** The instance's rate-limit bucket table (src/shared/bucket-table.ts), shared by every
   * worker; absent outside a supervisor (tests, benches), where the filter makes its own. */
  readonly rateLimitTable?: SharedArrayBuffer;
}

/**
 * A filter module exports one factory. compile() runs in the control plane (validate,
 * normalise, precompute; throw a message naming what is wrong) and returns plain,
 * structured-cloneable data; build() runs in each worker once per route per generation.
 */
export interface FilterFactory<C> {
  readonly name: string;
  build(config: C, env: WorkerEnv): Filter;
}

let forwardAfterChain: (ctx: RequestContext) => void = () => {};

/** Set once by the server: what happens when every filter said NEXT. */
export function setChainCompletion(done: (ctx: RequestContext) => void): void {
  forwardAfterChain = done;
}

/** Continues the chain after a filter that returned WAIT finished its async work. */
export function resumeChain(ctx: RequestContext): void {
  runChain(ctx);
}

/**
 * Runs the route's filters from ctx.nextFilter; forwards the request (the completion set by
 * setChainCompletion) when every filter said NEXT.
 * Hot path: an empty chain costs one comparison.
 */
export function runChain(ctx: RequestContext): void {
  const filters = ctx.route!.filters;
  for (let i = ctx.nextFilter; i < filters.length; i++) {
    const verdict = filters[i].onRequest(ctx);
    if (verdict === NEXT) continue;
    ctx.nextFilter = i + 1;
    return;
  }
  ctx.nextFilter = filters.length;
  forwardAfterChain(ctx);
}
