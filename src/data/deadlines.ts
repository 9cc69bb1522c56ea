// Sub-second request deadlines without a timer per request.
// undici's own timeouts tick at about 1 s, too coarse for `connect_ms: 250`. Instead every
// in-flight request sits in one intrusive doubly-linked list; a single interval (TICK_MS)
// advances a coarse clock and expires the requests whose deadline passed. Adding/removing
// is O(1) with no allocation; a tick is O(requests in flight).
import type { RequestContext } from './request-context.js';

export const TICK_MS = 10;

let head: RequestContext | null = null;
let count = 0;
let ticker: NodeJS.Timeout | null = null;
let onExpired: (ctx: RequestContext) => void = () => {};

/** Coarse monotonic clock in ms, refreshed every tick (and by now()). */
export let coarseNow = performance.now();

export function now(): number {
  coarseNow = performance.now();
  return coarseNow;
}

export function startDeadlines(expired: (ctx: RequestContext) => void): void {
  onExpired = expired;
  if (ticker) return;
  ticker = setInterval(tick, TICK_MS);
}

export function stopDeadlines(): void {
  if (ticker) clearInterval(ticker);
  ticker = null;
}

export function inFlightCount(): number {
  return count;
}

export function trackInFlight(ctx: RequestContext): void {
  ctx.prevInFlight = null;
  ctx.nextInFlight = head;
  if (head) head.prevInFlight = ctx;
  head = ctx;
  count++;
}

export function untrackInFlight(ctx: RequestContext): void {
  const prev = ctx.prevInFlight;
  const next = ctx.nextInFlight;
  if (prev === null && head !== ctx) return; // not in the list
  if (prev) prev.nextInFlight = next; else head = next;
  if (next) next.prevInFlight = prev;
  ctx.prevInFlight = ctx.nextInFlight = null;
  count--;
}

/** Calls fn for every in-flight request (drain uses it to stop them all). */
export function forEachInFlight(fn: (ctx: RequestContext) => void): void {
  let ctx = head;
  while (ctx) {
    const next = ctx.nextInFlight;
    fn(ctx);
    ctx = next;
  }
}

function tick(): void {
  const t = now();
  let ctx = head;
  while (ctx) {
    const next = ctx.nextInFlight;
    if (ctx.deadline !== 0 && t >= ctx.deadline) onExpired(ctx);
    ctx = next;
  }
}
