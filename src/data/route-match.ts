// Route matching on a data-plane worker: reads the SharedArrayBuffer built by
// encodeRouteTable (src/shared/route-table.ts) in place, allocation-free per request.
//
// Precedence (the reference matcher in test/routing/route-table.test.ts implements the same):
//  1. Host groups: when the request has a host and some route has exactly that host, that
//     host's routes are considered first; then the host-less routes. A group is left for the
//     next one only when none of its routes matches both path and method.
//  2. Within a group, candidates are the routes whose path matches, in this order:
//       a. full-path routes (exact, template), ordered by their segment patterns read left to
//          right with static < `{param}` (i.e. a static segment beats a param at the first
//          segment where two routes differ; depth-first, static child first);
//       b. prefix routes (segment-aligned), longest prefix first;
//     routes with the same host+pattern (or the same prefix) are ordered by route index.
//     `{param}` never matches an empty segment; `/` has no segments; a trailing `/` is an
//     empty last segment (so `/a/` matches prefix `/a` but not exact `/a` or `/{id}`).
//  3. The first candidate whose method mask contains the request's method bit wins.
//  4. No winner in any group: METHOD_NOT_ALLOWED if any route's path matched, with
//     allowMask = OR of the masks of all those routes (every group considered); else NO_ROUTE.
// So a host route matching the path but not the method never blocks a host-less route that
// matches both, and a prefix GET route serves a path whose exact route is POST-only.
// A route with host '' counts as host-less.
// API versions (`match.version`) are a constraint like the method, checked first: a candidate
// whose version mask lacks the request's version bit (`versionBit`, -1 = any) is skipped as if
// its path had not matched. No winner, no 405, but some candidate skipped for its version:
// VERSION_NOT_SERVED (a 405 outranks it: a route on the path serves this version, just not
// this method).

import { checkRouteTable, E, Fnv, H, N, S } from '../shared/route-table.js';

// -3 and -4 are escaped-slashes.ts's codes.
export const NO_ROUTE = -1, METHOD_NOT_ALLOWED = -2, VERSION_NOT_SERVED = -5;

const enum Char { SLASH = 0x2f }

export class RouteMatcher {
  /** After a match: start,end offsets into the path of each template param, in paramNames order. */
  readonly params: Int32Array;
  /** Params captured by the last successful match (0 after a prefix/exact route or a miss). */
  paramCount = 0;
  /** After METHOD_NOT_ALLOWED: OR of the method masks of every route whose path matched. */
  allowMask = 0;
  /**
   * The request's API version bit for the next match (src/shared/api-version.ts), set by the
   * caller; -1 (the default, left alone when no versioning is configured) matches every route.
   */
  versionBit = -1;

  private readonly words: Int32Array;
  private readonly pool: Uint8Array;
  private readonly maxDepth: number;
  private readonly anyHostRoot: number;
  private readonly hostSlotsAt: number;
  private readonly hostSlotMask: number;

  // Per-request scratch, sized from the table so a request never allocates. Only the first
  // maxDepth + 1 segments are recorded: a deeper path cannot match any full-path route, and
  // prefix routes are at most maxDepth deep.
  private readonly segStart: Int32Array;
  private readonly segEnd: Int32Array;
  private readonly segHash: Int32Array;
  /** staticChain[d] = node reached from the group root by the first d segments, all static. */
  private readonly staticChain: Int32Array;
  private segCount = 0;
  private segDepthBit = 0;
  private pathMatched = false;
  /** Some route matched the path but not the version (VERSION_NOT_SERVED unless one serves it). */
  private versionMissed = false;
  private methodBit = 0;
  private path = '';

  constructor(table: SharedArrayBuffer) {
    const words = checkRouteTable(table);
    this.words = words;
    this.pool = new Uint8Array(table, words[H.POOL_AT], words[H.POOL_BYTES]);
    this.maxDepth = words[H.MAX_DEPTH];
    this.anyHostRoot = words[H.ANY_HOST_ROOT];
    this.hostSlotsAt = words[H.HOST_SLOTS_AT];
    this.hostSlotMask = words[H.HOST_SLOT_MASK];
    this.params = new Int32Array(2 * words[H.MAX_PARAMS]);
    const scratch = this.maxDepth + 1;
    this.segStart = new Int32Array(scratch);
    this.segEnd = new Int32Array(scratch);
    this.segHash = new Int32Array(scratch);
    this.staticChain = new Int32Array(scratch);
  }

  /**
   * Route index for a request, or NO_ROUTE / METHOD_NOT_ALLOWED (see the precedence above).
   * `host`: lower-case, no port, '' when absent. `path`: output of normalizePath.
   * After a route: `params`/`paramCount`; after METHOD_NOT_ALLOWED: `allowMask`.
   * Only routes whose version mask has `versionBit` take part (VERSION_NOT_SERVED, above).
   */
  // Hot path: runs on every request. Invariant: allocates nothing (no substrings, arrays or
  // objects; only this matcher's preallocated typed arrays and number fields are written)
  // and only reads the shared table; cost depends on the path, not on the route count.
  match(methodBit: number, host: string, path: string): number {
    this.paramCount = 0;
    this.allowMask = 0;
    this.pathMatched = false;
    this.versionMissed = false;
    this.methodBit = methodBit;
    this.path = path;
    this.scanSegments(path);

    if (host.length !== 0 && this.hostSlotMask >= 0) {
      const hostRoot = this.findHostRoot(host);
      if (hostRoot >= 0) {
        const route = this.matchInGroup(hostRoot);
        if (route >= 0) return route;
      }
    }
    if (this.anyHostRoot >= 0) {
      const route = this.matchInGroup(this.anyHostRoot);
      if (route >= 0) return route;
    }
    this.paramCount = 0;
    return this.pathMatched ? METHOD_NOT_ALLOWED : this.versionMissed ? VERSION_NOT_SERVED : NO_ROUTE;
  }

  /** Record start, end and FNV-1a hash of the path's segments (up to maxDepth + 1 of them). */
  private scanSegments(path: string): void {
    const segStart = this.segStart, segEnd = this.segEnd, segHash = this.segHash;
    const limit = this.maxDepth + 1;
    const len = path.length;
    let count = 0;
    if (len > 1) {
      let start = 1;
      let h = Fnv.OFFSET;
      for (let i = 1; i < len; i++) {
        const c = path.charCodeAt(i);
        if (c !== Char.SLASH) {
          h = Math.imul(h ^ c, Fnv.PRIME);
          continue;
        }
        segStart[count] = start;
        segEnd[count] = i;
        segHash[count] = h;
        if (++count === limit) break;
        start = i + 1;
        h = Fnv.OFFSET;
      }
      if (count < limit) {
        // The end of the path closes the last segment.
        segStart[count] = start;
        segEnd[count] = len;
        segHash[count] = h;
        count++;
      }
    }
    this.segCount = count;
    this.segDepthBit = count < 31 ? 1 << count : 1 << 31; // = depthBit(count), inlined
  }

  /** Best route admitting the method in one host group's trie, or -1. */
  private matchInGroup(root: number): number {
    const words = this.words;
    const chain = this.staticChain;
    const segCount = this.segCount;

    // Walk static edges as far as they go. Prefix candidates lie on this chain, and it is
    // the first branch the depth-first full-path search takes, so each edge is looked up once.
    chain[0] = root;
    let chainDepth = 0;
    const walkLimit = segCount < this.maxDepth ? segCount : this.maxDepth;
    while (chainDepth < walkLimit) {
      const child = this.staticChild(chain[chainDepth], chainDepth);
      if (child < 0) break;
      chain[++chainDepth] = child;
    }

    // Full-path candidates in depth-first order, static child first. Along the chain that
    // order is: the chain's end (if it consumed every segment), then the param branch of
    // each chain node from the deepest up; only those param branches need recursion.
    if (segCount <= this.maxDepth && (words[root + N.FULL_DEPTHS] & this.segDepthBit) !== 0) {
      let d = chainDepth;
      if (chainDepth === segCount) {
        const route = this.fullRouteAt(chain[segCount], 0);
        if (route >= 0) return route;
        d--;
      }
      for (; d >= 0; d--) {
        const route = this.matchParamChild(chain[d], d, 0);
        if (route >= 0) return route;
      }
    }

    // Prefix candidates, longest first.
    const methodBit = this.methodBit;
    const versionBit = this.versionBit;
    for (let d = chainDepth; d >= 0; d--) {
      const node = chain[d];
      let entry = words[node + N.PREFIX_AT];
      const end = entry + words[node + N.PREFIX_COUNT] * E.WORDS;
      for (; entry < end; entry += E.WORDS) {
        if ((words[entry + E.VERSION_MASK] & versionBit) === 0) { this.versionMissed = true; continue; }
        const mask = words[entry + E.METHOD_MASK];
        this.pathMatched = true;
        this.allowMask |= mask;
        if ((mask & methodBit) !== 0) {
          this.paramCount = 0;
          return words[entry + E.ROUTE];
        }
      }
    }
    return -1;
  }

  /** First full-path route at `node` admitting the method, or -1 (records what matched). */
  private fullRouteAt(node: number, paramDepth: number): number {
    const words = this.words;
    const methodBit = this.methodBit;
    const versionBit = this.versionBit;
    let entry = words[node + N.FULL_AT];
    const end = entry + words[node + N.FULL_COUNT] * E.WORDS;
    for (; entry < end; entry += E.WORDS) {
      if ((words[entry + E.VERSION_MASK] & versionBit) === 0) { this.versionMissed = true; continue; }
      const mask = words[entry + E.METHOD_MASK];
      this.pathMatched = true;
      this.allowMask |= mask;
      if ((mask & methodBit) !== 0) {
        this.paramCount = paramDepth;
        return words[entry + E.ROUTE];
      }
    }
    return -1;
  }

  /**
   * Depth-first search under `node`'s `{param}` child, which takes segment `depth` as param
   * number `paramDepth`. Skips subtrees with no full-path route at the path's depth.
   */
  private matchParamChild(node: number, depth: number, paramDepth: number): number {
    const paramChild = this.words[node + N.PARAM_CHILD];
    if (paramChild < 0 || (this.words[paramChild + N.FULL_DEPTHS] & this.segDepthBit) === 0) return -1;
    const start = this.segStart[depth];
    const end = this.segEnd[depth];
    if (end === start) return -1; // a param never matches an empty segment
    // Written on the way down; a failed branch is overwritten by the next one tried.
    this.params[2 * paramDepth] = start;
    this.params[2 * paramDepth + 1] = end;
    return this.matchBelow(paramChild, depth + 1, paramDepth + 1);
  }

  /**
   * Depth-first search for a full-path route under `node` (off the static chain), which
   * matched the first `depth` segments with `paramDepth` params captured. Recursion depth
   * is bounded by maxDepth.
   */
  private matchBelow(node: number, depth: number, paramDepth: number): number {
    if (depth === this.segCount) return this.fullRouteAt(node, paramDepth);
    const staticChild = this.staticChild(node, depth);
    if (staticChild >= 0 && (this.words[staticChild + N.FULL_DEPTHS] & this.segDepthBit) !== 0) {
      const route = this.matchBelow(staticChild, depth + 1, paramDepth);
      if (route >= 0) return route;
    }
    return this.matchParamChild(node, depth, paramDepth);
  }

  /** Static child of `node` for segment `depth` of the path, or -1 (one hash probe sequence). */
  private staticChild(node: number, depth: number): number {
    const words = this.words;
    const mask = words[node + N.SLOT_MASK];
    if (mask < 0) return -1;
    const slotsAt = words[node + N.SLOTS_AT];
    const hash = this.segHash[depth];
    const start = this.segStart[depth];
    const length = this.segEnd[depth] - start;
    let slot = (hash ^ (hash >>> 16)) & mask; // = slotIndex(hash, mask), inlined
    for (;;) {
      const at = slotsAt + slot * S.WORDS;
      const child = words[at + S.VALUE];
      if (child < 0) return -1;
      if (words[at + S.HASH] === hash && words[at + S.NAME_LEN] === length &&
          this.poolEquals(words[at + S.NAME_AT], this.path, start, length)) {
        return child;
      }
      slot = (slot + 1) & mask;
    }
  }

  /** Root node of a host's trie, or -1 when no route names this host. */
  private findHostRoot(host: string): number {
    const words = this.words;
    const mask = this.hostSlotMask;
    const length = host.length;
    let hash = Fnv.OFFSET;
    for (let i = 0; i < length; i++) hash = Math.imul(hash ^ host.charCodeAt(i), Fnv.PRIME);
    let slot = (hash ^ (hash >>> 16)) & mask;
    for (;;) {
      const at = this.hostSlotsAt + slot * S.WORDS;
      const root = words[at + S.VALUE];
      if (root < 0) return -1;
      if (words[at + S.HASH] === hash && words[at + S.NAME_LEN] === length &&
          this.poolEquals(words[at + S.NAME_AT], host, 0, length)) {
        return root;
      }
      slot = (slot + 1) & mask;
    }
  }

  private poolEquals(poolAt: number, text: string, start: number, length: number): boolean {
    const pool = this.pool;
    for (let i = 0; i < length; i++) {
      if (pool[poolAt + i] !== text.charCodeAt(start + i)) return false;
    }
    return true;
  }
}
