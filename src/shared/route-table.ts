// The route table as one SharedArrayBuffer: compiled once by the control plane, then read
// in place by every data-plane worker (src/data/route-match.ts) with no copy and no parse.
//
// Routes form one segment trie per host group (one per distinct `match.host`, plus one for
// host-less routes). A trie node stands for a sequence of path segments; its edges are
// static segments (looked up in the node's own open-addressing hash table, so a node with
// 10,000 children costs the same as one with 2) and at most one `{param}` edge. Full-path
// routes (exact, template) are listed on the node where their path ends, prefix routes on
// the node where their prefix ends. Segments: `/` has none; otherwise the path after the
// leading `/` split on `/` (so a trailing slash is an empty last segment).
//
// Layout. All offsets and references are in 32-bit words of one Int32Array over the whole
// buffer, except string-pool offsets, which are bytes relative to the pool's start.
//
//   [header][node block]...[node block][host hash table][string pool]
//
//   Header (H.WORDS words)
//     H.MAGIC            0x4C425254 ('LBRT')
//     H.VERSION          TABLE_VERSION
//     H.TOTAL_BYTES      byte length of the buffer
//     H.ROUTE_COUNT      routes encoded (route index = position in the CompiledRoute[])
//     H.NODE_COUNT       trie nodes, all host groups together
//     H.NODES_AT         word offset of the first node block
//     H.MAX_PARAMS       largest param count of any route (sizes the matcher's scratch)
//     H.MAX_DEPTH        largest segment count of any route path (deeper paths can only
//                        match prefix routes)
//     H.ANY_HOST_ROOT    node ref of the host-less trie root, or -1 when every route has a host
//     H.HOST_SLOTS_AT    word offset of the host hash table (slots as below; value = root node)
//     H.HOST_SLOT_MASK   host table capacity - 1, or -1 when no route has a host
//     H.HOST_COUNT       distinct hosts
//     H.POOL_AT          byte offset of the string pool
//     H.POOL_BYTES       byte length of the string pool
//
//   Node blocks, in pre-order (static children first), each = node record, then the node's
//   static-children hash table, then its route lists: contiguous, so stepping onto a child
//   touches as few cache lines as possible. A "node ref" is the word offset of a record.
//
//   Node record (N.WORDS words)
//     N.SLOTS_AT         word offset of this node's static-children hash table
//     N.SLOT_MASK        its capacity - 1, or -1 when the node has no static children
//     N.PARAM_CHILD      node ref of the `{param}` child, or -1
//     N.FULL_AT/COUNT    route list of exact/template routes ending here, in route order
//     N.PREFIX_AT/COUNT  route list of prefix routes ending here, in route order
//     N.FULL_DEPTHS      bit d set when a full-path route ends at absolute depth d somewhere
//                        in this subtree (bit 31 = depth >= 31): lets the matcher skip
//                        subtrees that cannot hold a whole-path match for this request
//
//   Static-children hash table, and the host table (S.WORDS words per slot; capacity a power
//   of two with load <= 1/2, linear probing, so every probe sequence ends at an empty slot)
//     S.HASH             segmentHash() of the segment text (host table: of the host name)
//     S.NAME_AT          byte offset of the text in the string pool
//     S.NAME_LEN         its length in bytes
//     S.VALUE            child node ref (host table: root node ref); -1 = empty slot
//     home slot = slotIndex(hash, mask), then +1 (mod capacity) until found or empty.
//
//   Route list (E.WORDS words per entry)
//     E.ROUTE            route index
//     E.METHOD_MASK      the route's method mask (inline: the method check reads no more memory)
//     E.VERSION_MASK     the API versions the route serves (`match.version`), one bit per version
//                        declared in `versioning.versions` (bit i = versions[i]); -1 for a route
//                        without match.version, which serves every version. A request carries
//                        one version bit (RouteMatcher.versionBit), so the constraint costs one
//                        AND per candidate entry, whatever the number of routes or versions
//                        (find-my-way's constraint bitmaps, here inline in the list).
//
//   String pool: segment texts and host names, ASCII, one byte per char, deduplicated.

import type { CompiledRoute } from './compiled-config.js';

export const TABLE_MAGIC = 0x4c425254;
export const TABLE_VERSION = 2;

// Field offsets as const enums: tsc inlines them as literals, which the hot path needs
// (an imported `const` is a module-binding load plus a TDZ check on every use).

/** Header fields (word offsets from 0). */
export const enum H {
  MAGIC = 0, VERSION, TOTAL_BYTES, ROUTE_COUNT, NODE_COUNT, NODES_AT, MAX_PARAMS, MAX_DEPTH,
  ANY_HOST_ROOT, HOST_SLOTS_AT, HOST_SLOT_MASK, HOST_COUNT, POOL_AT, POOL_BYTES,
  WORDS = 16,
}

/** Node record fields (word offsets from the node ref). */
export const enum N {
  SLOTS_AT = 0, SLOT_MASK, PARAM_CHILD, FULL_AT, FULL_COUNT, PREFIX_AT, PREFIX_COUNT, FULL_DEPTHS,
  WORDS,
}

/** Hash-table slot fields (static children and hosts). */
export const enum S {
  HASH = 0, NAME_AT, NAME_LEN, VALUE,
  WORDS,
}

/** Route-list entry fields. */
export const enum E {
  ROUTE = 0, METHOD_MASK, VERSION_MASK,
  WORDS,
}

/** FNV-1a parameters (32-bit, signed); the matcher inlines the same loop over char codes. */
export const enum Fnv {
  OFFSET = 0x811c9dc5 | 0,
  PRIME = 0x01000193,
}

/** FNV-1a over the char codes of `text` (ASCII), as a signed 32-bit int. */
export function segmentHash(text: string): number {
  let h = Fnv.OFFSET;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), Fnv.PRIME);
  return h;
}

/** Home slot of a hash: fold the high bits in, since FNV's low bits alone cluster on short keys. */
export function slotIndex(hash: number, mask: number): number {
  return (hash ^ (hash >>> 16)) & mask;
}

/** Bit for "a full-path route ends at depth d" in N.FULL_DEPTHS (saturates at bit 31). */
export function depthBit(depth: number): number {
  return depth < 31 ? 1 << depth : 1 << 31;
}

/** Segments of a path: none for `/`, else the text after the leading `/` split on `/`. */
export function pathSegments(path: string): string[] {
  return path === '/' ? [] : path.slice(1).split('/');
}

/** A `{name}` segment of a template path. */
export function isParamSegment(segment: string): boolean {
  return segment.length >= 2 && segment.charCodeAt(0) === 0x7b && segment.charCodeAt(segment.length - 1) === 0x7d;
}

// ---- Encoder -------------------------------------------------------------------------------

class BuildNode {
  readonly statics = new Map<string, BuildNode>();
  param: BuildNode | null = null;
  readonly full: number[] = [];
  readonly prefix: number[] = [];
  fullDepths = 0;
  ref = -1;
}

function checkAscii(text: string, what: string): void {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) >= 128) throw new Error(`route table: ${what} ${JSON.stringify(text)} is not ASCII`);
  }
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p <<= 1;
  return p;
}

/**
 * Encode compiled routes into one SharedArrayBuffer (layout above). Throws on a route the
 * matcher could not honour (path without leading `/`, non-ASCII text, prefix with a trailing
 * `/`, template whose `{param}` count differs from paramNames).
 */
export function encodeRouteTable(routes: readonly CompiledRoute[]): SharedArrayBuffer {
  // 1. Build the tries.
  let anyHostRoot: BuildNode | null = null;
  const hostRoots = new Map<string, BuildNode>();
  let maxParams = 0;
  let maxDepth = 0;

  for (let index = 0; index < routes.length; index++) {
    const route = routes[index];
    const { kind, path, host, methodMask } = route.match;
    const where = `route ${JSON.stringify(route.name)} (#${index})`;
    if (typeof path !== 'string' || path.charCodeAt(0) !== 0x2f) {
      throw new Error(`route table: ${where}: path ${JSON.stringify(path)} must start with "/"`);
    }
    if (kind !== 'exact' && kind !== 'prefix' && kind !== 'template') {
      throw new Error(`route table: ${where}: unknown match kind ${JSON.stringify(kind)}`);
    }
    if (kind === 'prefix' && path.length > 1 && path.endsWith('/')) {
      throw new Error(`route table: ${where}: prefix ${JSON.stringify(path)} must not end with "/"`);
    }
    if ((methodMask | 0) !== methodMask) throw new Error(`route table: ${where}: method mask is not an int32`);
    const versionMask = route.match.versionMask ?? -1;
    if ((versionMask | 0) !== versionMask || versionMask === 0) {
      throw new Error(`route table: ${where}: version mask must be a non-zero int32`);
    }
    checkAscii(path, `${where}: path`);

    let root: BuildNode;
    if (host === null || host === '') {
      root = anyHostRoot ??= new BuildNode();
    } else {
      checkAscii(host, `${where}: host`);
      if (host !== host.toLowerCase()) throw new Error(`route table: ${where}: host ${JSON.stringify(host)} must be lower-case`);
      root = hostRoots.get(host) ?? new BuildNode();
      hostRoots.set(host, root);
    }

    const segments = pathSegments(path);
    let node = root;
    let params = 0;
    for (const segment of segments) {
      if (kind === 'template' && isParamSegment(segment)) {
        node = node.param ??= new BuildNode();
        params++;
      } else {
        let child = node.statics.get(segment);
        if (!child) node.statics.set(segment, (child = new BuildNode()));
        node = child;
      }
    }
    if (kind === 'template' && params !== route.paramNames.length) {
      throw new Error(`route table: ${where}: ${params} {param} segments but ${route.paramNames.length} paramNames`);
    }
    if (kind === 'prefix') {
      node.prefix.push(index);
    } else {
      node.full.push(index);
    }
    maxParams = Math.max(maxParams, params);
    maxDepth = Math.max(maxDepth, segments.length);
  }

  // 2. Number the nodes (pre-order, static children first: a static walk reads ascending
  //    addresses) and propagate the full-path depth bits up each trie.
  const nodes: BuildNode[] = [];
  const visit = (node: BuildNode, depth: number): number => {
    nodes.push(node);
    let depths = node.full.length > 0 ? depthBit(depth) : 0;
    for (const child of node.statics.values()) depths |= visit(child, depth + 1);
    if (node.param) depths |= visit(node.param, depth + 1);
    node.fullDepths = depths;
    return depths;
  };
  if (anyHostRoot) visit(anyHostRoot, 0);
  for (const root of hostRoots.values()) visit(root, 0);

  // 3. String pool (deduplicated).
  const poolOffsets = new Map<string, number>();
  let poolBytes = 0;
  const intern = (text: string): number => {
    let at = poolOffsets.get(text);
    if (at === undefined) {
      at = poolBytes;
      poolOffsets.set(text, at);
      poolBytes += text.length;
    }
    return at;
  };
  for (const node of nodes) for (const segment of node.statics.keys()) intern(segment);
  for (const host of hostRoots.keys()) intern(host);

  // 4. Word offsets. Each node's record, slot table and route lists form one contiguous
  //    block, so the step onto a child touches as few cache lines as possible.
  const slotCapacity = (node: BuildNode): number => (node.statics.size === 0 ? 0 : nextPowerOfTwo(node.statics.size * 2));
  let cursor = H.WORDS;
  for (const node of nodes) {
    node.ref = cursor;
    cursor += N.WORDS + slotCapacity(node) * S.WORDS + (node.full.length + node.prefix.length) * E.WORDS;
  }
  const hostCapacity = hostRoots.size === 0 ? 0 : nextPowerOfTwo(hostRoots.size * 2);
  const hostSlotsAt = cursor;
  cursor += hostCapacity * S.WORDS;
  const poolAt = cursor * 4;
  const totalBytes = poolAt + ((poolBytes + 3) & ~3);

  // 5. Write.
  const sab = new SharedArrayBuffer(totalBytes);
  const words = new Int32Array(sab);
  const pool = new Uint8Array(sab, poolAt, poolBytes);
  for (const [text, at] of poolOffsets) for (let i = 0; i < text.length; i++) pool[at + i] = text.charCodeAt(i);

  const writeSlots = (at: number, capacity: number, entries: Iterable<[string, BuildNode]>): void => {
    const mask = capacity - 1;
    for (let s = 0; s < capacity; s++) words[at + s * S.WORDS + S.VALUE] = -1;
    for (const [text, target] of entries) {
      const hash = segmentHash(text);
      let slot = slotIndex(hash, mask);
      while (words[at + slot * S.WORDS + S.VALUE] !== -1) slot = (slot + 1) & mask;
      const base = at + slot * S.WORDS;
      words[base + S.HASH] = hash;
      words[base + S.NAME_AT] = poolOffsets.get(text)!;
      words[base + S.NAME_LEN] = text.length;
      words[base + S.VALUE] = target.ref;
    }
  };

  const writeList = (at: number, routeIndexes: number[]): number => {
    for (const index of routeIndexes) {
      words[at + E.ROUTE] = index;
      words[at + E.METHOD_MASK] = routes[index].match.methodMask;
      words[at + E.VERSION_MASK] = routes[index].match.versionMask ?? -1;
      at += E.WORDS;
    }
    return at;
  };

  for (const node of nodes) {
    const base = node.ref;
    const capacity = slotCapacity(node);
    const slotsAt = base + N.WORDS;
    writeSlots(slotsAt, capacity, node.statics);
    const fullAt = slotsAt + capacity * S.WORDS;
    const prefixAt = writeList(fullAt, node.full);
    writeList(prefixAt, node.prefix);
    words[base + N.SLOTS_AT] = slotsAt;
    words[base + N.SLOT_MASK] = capacity - 1;
    words[base + N.PARAM_CHILD] = node.param ? node.param.ref : -1;
    words[base + N.FULL_AT] = fullAt;
    words[base + N.FULL_COUNT] = node.full.length;
    words[base + N.PREFIX_AT] = prefixAt;
    words[base + N.PREFIX_COUNT] = node.prefix.length;
    words[base + N.FULL_DEPTHS] = node.fullDepths;
  }
  if (hostCapacity > 0) writeSlots(hostSlotsAt, hostCapacity, hostRoots);

  words[H.MAGIC] = TABLE_MAGIC;
  words[H.VERSION] = TABLE_VERSION;
  words[H.TOTAL_BYTES] = totalBytes;
  words[H.ROUTE_COUNT] = routes.length;
  words[H.NODE_COUNT] = nodes.length;
  words[H.NODES_AT] = H.WORDS;
  words[H.MAX_PARAMS] = maxParams;
  words[H.MAX_DEPTH] = maxDepth;
  words[H.ANY_HOST_ROOT] = anyHostRoot ? anyHostRoot.ref : -1;
  words[H.HOST_SLOTS_AT] = hostSlotsAt;
  words[H.HOST_SLOT_MASK] = hostCapacity - 1;
  words[H.HOST_COUNT] = hostRoots.size;
  words[H.POOL_AT] = poolAt;
  words[H.POOL_BYTES] = poolBytes;
  return sab;
}

/** Check the header of a route table buffer; throws when it is not one this code can read. */
export function checkRouteTable(sab: SharedArrayBuffer): Int32Array {
  if (sab.byteLength < H.WORDS * 4) throw new Error('route table: buffer too small');
  const words = new Int32Array(sab);
  if (words[H.MAGIC] !== TABLE_MAGIC) throw new Error('route table: bad magic');
  if (words[H.VERSION] !== TABLE_VERSION) throw new Error(`route table: version ${words[H.VERSION]}, expected ${TABLE_VERSION}`);
  if (words[H.TOTAL_BYTES] !== sab.byteLength) throw new Error('route table: size mismatch');
  return words;
}

/** Node count and byte size of an encoded table, for diagnostics. */
export function describeRouteTable(sab: SharedArrayBuffer): { nodes: number; bytes: number } {
  const words = checkRouteTable(sab);
  return { nodes: words[H.NODE_COUNT], bytes: words[H.TOTAL_BYTES] };
}
