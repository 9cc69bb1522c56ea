// The per-route filter chain. A filter owns one concern; `build` runs once per route per
// generation in each worker, `onRequest` once per request and returns a verdict:
//   NEXT  — go on with the next filter;
//   REPLY — the filter answered the request itself (e.g. 401, 429); stop;
//   WAIT  — the filter started async work and will call resumeChain(ctx) (or answer) later.
// An index loop with a stored resume point, not next() closures: no allocation per step.
import type { RequestContext } from './request-context.js';

export const NEXT = 0;
export const REPLY = 1;
export const WAIT = 2;
export type Verdict = typeof NEXT | typeof REPLY | typeof WAIT;

export interface Filter {
  readonly name: string;
  onRequest(ctx: RequestContext): Verdict;
}

/**
 * Runs the route's filters from ctx.nextFilter; calls `done(ctx)` when every filter said NEXT.
 * Hot path: an empty chain costs one comparison.
 */
export function runChain(ctx: RequestContext, filters: readonly Filter[], done: (ctx: RequestContext) => void): void {
  for (let i = ctx.nextFilter; i < filters.length; i++) {
    const verdict = filters[i].onRequest(ctx);
    if (verdict === NEXT) continue;
    ctx.nextFilter = i + 1;
    return;
  }
  ctx.nextFilter = filters.length;
  done(ctx);
}
