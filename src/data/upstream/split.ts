// Choosing a weighted split's member (docs/traffic-splitting.md), once per request, in
// forward(): after the route's request filters (a claim is known only after auth), before
// anything is sent. A point in [0, total) falls into one member's range of the cumulative
// weights. The point is random, or, with `sticky`, the value's hash scaled to the total: the
// same value gives the same member on every worker and instance, and since the hash is a
// fraction of the total, raising one member's weight only moves clients onto it. Hot path:
// no allocation (a cookie is the exception: its header is split to find the name).
import type { CompiledSticky } from '../../shared/compiled-config.js';
import type { RequestContext, RuntimeRoute, RuntimeSplit } from '../request-context.js';
import { segmentHash } from '../../shared/route-table.js';
import { cookieValue } from '../auth/extract.js';

const TWO_POW_32 = 4294967296;

/** The member of `split` this request goes to. */
export function chooseMember(ctx: RequestContext, split: RuntimeSplit): RuntimeRoute {
  const value = split.sticky === null ? null : stickyValue(ctx, split.sticky);
  const point = (value === null ? Math.random() : stickyFraction(value)) * split.total;
  const cumulative = split.cumulative;
  for (let i = 0; i < cumulative.length; i++) if (point < cumulative[i]) return split.members[i];
  return split.members[split.last]; // a product rounded up to the total
}

/** The request's sticky value, or null when it has none (then the choice is random). */
export function stickyValue(ctx: RequestContext, sticky: CompiledSticky): string | null {
  switch (sticky.kind) {
    case 'cookie':
      return cookieValue(ctx.headers, sticky.cookie);
    case 'claim':
      if (sticky.header === '') return ctx.subject === '' ? null : ctx.subject;
      return headerValue(ctx.headers, sticky.header);
    default:
      return headerValue(ctx.headers, sticky.header);
  }
}

/** The first value of the (lower-case) header `name`, or null when absent or empty. */
function headerValue(h: readonly string[], name: string): string | null {
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1] === '' ? null : h[i + 1];
  return null;
}

/**
 * `value`'s place in [0, 1): FNV-1a (the route table's hash) and murmur3's finalizer, whose
 * avalanche spreads FNV's clustered bits over the whole word, so near values (user-1,
 * user-2) land far apart and a weight's share of the values is its share of the range.
 */
export function stickyFraction(value: string): number {
  let h = segmentHash(value);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / TWO_POW_32;
}
