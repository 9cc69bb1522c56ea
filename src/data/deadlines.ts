// Sub-second request deadlines without a timer per request, and the list of open requests.
// undici's own timeouts tick at about 1 s, too coarse for `connect_ms: 250`. Instead every
// open request (accepted and not yet ended) sits in one intrusive doubly-linked list; a
// single interval (TICK_MS) advances a coarse clock and expires the requests whose deadline
// passed. Adding/removing is O(1) with no allocation; a tick is O(open requests). The same
// list is what a drain waits for and what it ends at its deadline.
import { performance } from 'node:perf_hooks';
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

/** Starts the ticker; `expired` is called for each request whose deadline passed. */
export function startDeadlines(expired: (ctx: RequestContext) => void): void {
  onExpired = expired;
  if (ticker) return;
  lastTick = performance.now();
  ticker = setInterval(tick, TICK_MS);
}

export function stopDeadlines(): void {
  if (ticker) clearInterval(ticker);
  ticker = null;
}

/** Requests accepted and not yet ended, in this worker (what a drain waits for). */
export function openCount(): number {
  return count;
}

export function trackOpen(ctx: RequestContext): void {
  ctx.prevOpen = null;
  ctx.nextOpen = head;
  if (head) head.prevOpen = ctx;
  head = ctx;
  count++;
}

export function untrackOpen(ctx: RequestContext): void {
  const prev = ctx.prevOpen;
  const next = ctx.nextOpen;
  if (prev === null && head !== ctx) return; // not in the list
  if (prev) prev.nextOpen = next; else head = next;
  if (next) next.prevOpen = prev;
  ctx.prevOpen = ctx.nextOpen = null;
  count--;
}

/** Calls fn for every open request (a drain ends them all at its deadline). */
export function forEachOpen(fn: (ctx: RequestContext) => void): void {
  let ctx = head;
  while (ctx) {
    const next = ctx.nextOpen;
    fn(ctx);
    ctx = next;
  }
}

/**
 * A timer that fires more than this late (ms) means the thread was stalled: descheduled on a
 * loaded machine, or one long turn. libuv runs due timers before the turn's I/O, so an expiry
 * right then would charge to the upstream a response (or a connect) that arrived during the
 * stall and waits in this very turn's poll phase. Such expiries wait one turn instead
 * (setImmediate runs after the poll phase): what arrived is handled first.
 */
export const STALL_MS = 50;

/** Whether a timer armed at `armedAt` (performance.now()) for `delayMs` fired stall-late. */
export function firedLate(armedAt: number, delayMs: number): boolean {
  return performance.now() - armedAt > delayMs + STALL_MS;
}

let lastTick = performance.now();
let expiryDeferred = false;

function tick(): void {
  const armedAt = lastTick;
  // The coarse clock first, stall or not: deadlines set in this turn's I/O (a connect, say)
  // count from now, not from before the stall.
  lastTick = now();
  if (firedLate(armedAt, TICK_MS)) {
    if (!expiryDeferred) { expiryDeferred = true; setImmediate(expireDue); }
    return;
  }
  expireDue();
}

function expireDue(): void {
  expiryDeferred = false;
  const t = now();
  let ctx = head;
  while (ctx) {
    const next = ctx.nextOpen;
    // The phase's deadline, or the whole exchange's (src/data/upstream/deadline.ts).
    if ((ctx.deadline !== 0 && t >= ctx.deadline) || (ctx.exchangeDeadline !== 0 && t >= ctx.exchangeDeadline)) onExpired(ctx);
    ctx = next;
  }
}
