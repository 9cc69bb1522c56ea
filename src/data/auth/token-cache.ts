// Verdicts on tokens, per worker and per provider (src/data/auth/provider-state.ts): a
// repeated token costs a lookup, not a signature check. Two caches, both bounded in entries
// and in bytes (by their own accounting, `bytes`), least recently used evicted first, every
// entry dead at its expiry:
//
// TokenCache, verified tokens (`token_cache.entries`, `token_cache.max_bytes`). Keyed by the
// token's last 32 characters (its signature's), not the whole token: each request's token is
// a new string whose hash V8 must compute, and hashing ~700 characters cost about 1 µs per
// lookup where 32 cost ~0.1 µs (a digest, ~2 µs, would cost more still, on every request).
// The entry keeps its own copy of the whole token and a hit requires it to be equal, so two
// tokens sharing a suffix only make each other miss, and no token is ever accepted for
// another. Every token held here carried a valid signature: only tokens the identity
// provider issued can fill it, and max_bytes bounds what large ones cost.
//
// RefusedCache, refused tokens (a quarter of the entries and bytes), keyed by the SHA-256 of
// the token and holding no token: a flood of distinct invalid tokens, however large, costs a
// fixed REFUSED_ENTRY_BYTES per entry. A digest collision could only make a token be refused
// (nothing is ever accepted through this cache), and SHA-256 makes even that out of reach.
// The digest (~2 µs for a 700-character token, ~20 µs for 15 KB) is computed only when the
// verified-token cache missed, once per token (docs/configuration.md#authtoken_cache).
//
// DigestCache, introspection results (src/data/auth/introspection-client.ts in each worker,
// src/control/introspection.ts for the instance), keyed by refusedKey(token): an opaque token
// is a bearer credential that no signature ties to its issuer, so no copy of it is kept; the
// digest is the price of every lookup (~1 µs for a 43-character token).
//
// The LRU is approximate to keep a hit cheap: the Map's insertion order is the recency
// order, and an entry is moved to the young end only when it has drifted into the older
// half (one lookup for a hit on a recently used entry, a delete + set otherwise).
import { hash } from 'node:crypto';
import type { VerifyCode } from './jwt.js';

export interface TokenCacheEntry {
  /** The whole token (set by TokenCache.set; never by RefusedCache). */
  token?: string;
  /** Absolute expiry, ms since the epoch. */
  expiresAt: number;
  /** Identity headers to inject (flat [name, value, ...]); null for a refused token. */
  headers: string[] | null;
  scopes: string[];
  /** The token's `sub` when it is a string (the access log's subject), else absent. */
  subject?: string;
  /** Why the token was refused (negative entries), else null. */
  code: VerifyCode | null;
  /** Recency stamp (see above). */
  seq: number;
  /** Bytes accounted for the entry (set by the cache). */
  bytes?: number;
}

/** Accounted per entry besides its strings: the Map slot, the entry object and its arrays. */
export const ENTRY_OVERHEAD_BYTES = 256;
/** Accounted per string besides its characters (V8 string header). */
const STRING_OVERHEAD_BYTES = 24;
/** Characters of the token's end used as the map key. */
const KEY_LENGTH = 32;
/** A SHA-256 digest in base64url. */
const DIGEST_CHARS = 43;
/** What one refused token costs, whatever its length. */
export const REFUSED_ENTRY_BYTES = ENTRY_OVERHEAD_BYTES + STRING_OVERHEAD_BYTES + DIGEST_CHARS;

function keyOf(token: string): string {
  return token.length > 2 * KEY_LENGTH ? token.slice(token.length - KEY_LENGTH) : token;
}

/**
 * The RefusedCache key of `token`: SHA-256 over its UTF-8 (injective on the strings a valid
 * token can be; a lossy encoding such as latin1 would let U+0141 stand for "A").
 */
export function refusedKey(token: string): string {
  return hash('sha256', token, 'base64url');
}

/**
 * A flat copy of a verified token (base64url ASCII, so latin1 is exact): the token the
 * request gave may be a slice of a larger string (a Cookie header) that must not stay alive.
 */
function ownCopy(token: string): string {
  const copy = Buffer.from(token, 'latin1').toString('latin1');
  return copy === token ? copy : token;
}

function stringsBytes(list: readonly string[] | null): number {
  let n = 0;
  if (list !== null) for (let i = 0; i < list.length; i++) n += STRING_OVERHEAD_BYTES + list[i].length;
  return n;
}

class LruCache {
  private readonly map = new Map<string, TokenCacheEntry>();
  private seq = 0;
  private readonly promoteAfter: number;
  /** Bytes accounted for the entries held (at most maxBytes). */
  bytes = 0;

  constructor(readonly capacity: number, readonly maxBytes: number) {
    this.promoteAfter = Math.max(1, capacity >> 1);
  }

  get size(): number {
    return this.map.size;
  }

  /** The live entry under `key` whose token is `token` (undefined for refused entries). */
  protected lookup(key: string, token: string | undefined, nowMs: number): TokenCacheEntry | undefined {
    const entry = this.map.get(key);
    if (entry === undefined || entry.token !== token) return undefined;
    if (nowMs >= entry.expiresAt) {
      this.map.delete(key);
      this.bytes -= entry.bytes!;
      return undefined;
    }
    if (this.seq - entry.seq > this.promoteAfter) {
      this.map.delete(key);
      entry.seq = ++this.seq;
      this.map.set(key, entry);
    }
    return entry;
  }

  protected store(key: string, entry: TokenCacheEntry, bytes: number): void {
    if (this.capacity <= 0 || bytes > this.maxBytes) return;
    const old = this.map.get(key);
    if (old !== undefined) {
      this.map.delete(key);
      this.bytes -= old.bytes!;
    }
    entry.bytes = bytes;
    entry.seq = ++this.seq;
    this.map.set(key, entry);
    this.bytes += bytes;
    while (this.map.size > this.capacity || this.bytes > this.maxBytes) {
      // Oldest first: Map iterates in insertion order.
      const oldest = this.map.entries().next();
      if (oldest.done) break;
      this.map.delete(oldest.value[0]);
      this.bytes -= oldest.value[1].bytes!;
    }
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }
}

/** Verified tokens: compared whole, bounded in entries and bytes. */
export class TokenCache extends LruCache {
  constructor(capacity: number, maxBytes = Infinity) {
    super(capacity, maxBytes);
  }

  /** Hot path: the live entry for `token`, or undefined (an expired one is dropped). */
  get(token: string, nowMs: number): TokenCacheEntry | undefined {
    return this.lookup(keyOf(token), token, nowMs);
  }

  set(token: string, entry: TokenCacheEntry): void {
    if (this.capacity <= 0) return;
    const own = ownCopy(token);
    entry.token = own;
    const bytes = ENTRY_OVERHEAD_BYTES + STRING_OVERHEAD_BYTES + own.length + stringsBytes(entry.headers) + stringsBytes(entry.scopes) +
      (entry.subject !== undefined ? STRING_OVERHEAD_BYTES + entry.subject.length : 0);
    this.store(keyOf(own), entry, bytes);
  }
}

/** Refused tokens, by digest (refusedKey): no token kept, a fixed size per entry. */
export class RefusedCache extends LruCache {
  constructor(capacity: number, maxBytes = Infinity) {
    super(capacity, maxBytes);
  }

  get(key: string, nowMs: number): TokenCacheEntry | undefined {
    return this.lookup(key, undefined, nowMs);
  }

  set(key: string, entry: TokenCacheEntry): void {
    this.store(key, entry, REFUSED_ENTRY_BYTES);
  }
}

/** Introspection results (positive and negative), by digest (refusedKey): no token kept. */
export class DigestCache extends LruCache {
  constructor(capacity: number, maxBytes = Infinity) {
    super(capacity, maxBytes);
  }

  get(key: string, nowMs: number): TokenCacheEntry | undefined {
    return this.lookup(key, undefined, nowMs);
  }

  set(key: string, entry: TokenCacheEntry): void {
    const bytes = REFUSED_ENTRY_BYTES + stringsBytes(entry.headers) + stringsBytes(entry.scopes) +
      (entry.subject !== undefined ? STRING_OVERHEAD_BYTES + entry.subject.length : 0);
    this.store(key, entry, bytes);
  }
}
