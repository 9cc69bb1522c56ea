// The per-route filter chain. A filter owns one concern; `build` runs once per route per
// generation in each worker, `onRequest` once per request and returns a verdict:
//   NEXT  — go on with the next filter;
//   REPLY — the filter answered the request itself (e.g. 401, 429); stop;
//   WAIT  — the filter started async work and will call resumeChain(ctx) (or answer) later.
// An index loop with a stored resume point, not next() closures: no allocation per step.
// When every filter said NEXT, the request is forwarded (upstream/proxy.ts forward): a
// direct call, no completion callback held in module state. The chain is entered, and
// resumed, through one try/catch: a throw in a filter is a bug, answered 500 and logged once.
import { NEXT, REPLY, type Filter, type RequestContext } from './request-context.js';
import { GW_ERR, type GatewayErrorSpec } from '../shared/errors.js';
import type { FromWorker } from '../shared/messages.js';
import { bodyUnreadOf, sendLocalReply } from './exchange.js';
import { logRequestFault } from './faults.js';
import { forward } from './upstream/proxy.js';

export { NEXT, REPLY, WAIT, FILTER_PHASES } from './request-context.js';
export type { Verdict, Filter, ResponseHead, FilterPhase } from './request-context.js';
export { logRequestFault } from './faults.js';

/**
 * A filter's local reply (401, 429, 503 …): stops the request's upstream side and answers
 * `spec` as JSON with `extraHeaders`. Returns REPLY for the filter to return.
 */
export function localReply(ctx: RequestContext, spec: GatewayErrorSpec, extraHeaders: readonly string[] | null = null): typeof REPLY {
  sendLocalReply(ctx, spec, bodyUnreadOf(ctx.body), extraHeaders);
  return REPLY;
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

/**
 * Runs the route's filters from ctx.nextFilter, inside the one fault handler; forwards the
 * request when every filter said NEXT. Entry (server.ts) and resume (a WAIT that finished)
 * both come here. Hot path: an empty chain costs one comparison and a try block.
 */
export function runChain(ctx: RequestContext): void {
  try {
    const filters = ctx.route!.filters;
    for (let i = ctx.nextFilter; i < filters.length; i++) {
      const verdict = filters[i].onRequest(ctx);
      if (verdict === NEXT) continue;
      ctx.nextFilter = i + 1;
      return;
    }
    ctx.nextFilter = filters.length;
    if (!ctx.ended) forward(ctx);
  } catch (err) {
    logRequestFault(ctx, err);
    sendLocalReply(ctx, GW_ERR.internal_error, true);
  }
}

/** Continues the chain after a filter that returned WAIT finished its async work. */
export function resumeChain(ctx: RequestContext): void {
  if (ctx.ended) return;
  runChain(ctx);
}
