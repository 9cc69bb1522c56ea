// The exchange deadline (docs/resilience.md#deadlines): `deadline_ms` from routing to the end
// of the exchange, filters waiting and retries included. No timer of its own: the context's
// `exchangeDeadline` is one more compare in the deadline ticker's pass (deadlines.ts), and
// proxy.ts expireRequest answers 504 `deadline_exceeded` when it passes. What is left goes
// upstream in a header (default X-Request-Deadline-Ms), written into the request's headers
// before the head is encoded (request-head.ts checks it like every other header), and
// rewritten for each retry.
import { performance } from 'node:perf_hooks';
import type { RequestContext } from '../request-context.js';
import { lowerEquals } from '../exchange.js';

/** Whole ms left before the exchange deadline, never negative. */
export function remainingMs(ctx: RequestContext): number {
  const left = Math.floor(ctx.exchangeDeadline - performance.now());
  return left > 0 ? left : 0;
}

/**
 * Adds the deadline header to the upstream headers (the client's own copy is dropped first:
 * only the gateway's value goes upstream) and returns the index of its value, for a retry to
 * rewrite; -1 when the route sends none.
 */
export function pushDeadlineHeader(ctx: RequestContext, headers: string[], name: string): number {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (lowerEquals(headers[i], name)) headers.splice(i, 2);
  }
  headers.push(name, String(remainingMs(ctx)));
  return headers.length - 1;
}
