// Verified tokens, per worker and per provider: a repeated token costs one Map lookup, not
// a signature check. Bounded (capacity entries) with least-recently-used eviction, and each
// entry dies at the token's `exp` (plus the provider's clock skew), or earlier by the
// configured cap. Refused tokens are kept too, briefly (negative entries), so a client
// replaying a bad token does not cost a pool task each time.
//
// Keyed by the token's last 32 characters (its signature's), not the whole token: each
// request's token is a new string whose hash V8 must compute, and hashing ~700 characters cost
// about 1 µs per lookup where 32 cost ~0.1 µs. The entry keeps the whole token and a hit
// requires it to be equal, so two tokens sharing a suffix only make each other miss.
//
// The LRU is approximate to keep a hit cheap: the Map's insertion order is the recency
// order, and an entry is moved to the young end only when it has drifted into the older
// half (one lookup for a hit on a recently used entry, a delete + set otherwise). Eviction
// takes the oldest entry first.
import type { VerifyCode } from './jwt.js';

export interface TokenCacheEntry {
  /** The whole token (set by TokenCache.set). */
  token?: string;
  /** Absolute expiry, ms since the epoch. */
  expiresAt: number;
  /** Identity headers to inject (flat [name, value, ...]); null for a refused token. */
  headers: string[] | null;
  scopes: string[];
  /** Why the token was refused (negative entries), else null. */
  code: VerifyCode | null;
  /** Recency stamp (see above). */
  seq: number;
}

/** Characters of the token's end used as the map key. */
const KEY_LENGTH = 32;

function keyOf(token: string): string {
  return token.length > 2 * KEY_LENGTH ? token.slice(token.length - KEY_LENGTH) : token;
}

export class TokenCache {
  private readonly map = new Map<string, TokenCacheEntry>();
  private seq = 0;
  private readonly promoteAfter: number;

  constructor(readonly capacity: number) {
    this.promoteAfter = Math.max(1, capacity >> 1);
  }

  get size(): number {
    return this.map.size;
  }

  /** Hot path: the live entry for `token`, or undefined (an expired one is dropped). */
  get(token: string, nowMs: number): TokenCacheEntry | undefined {
    const key = keyOf(token);
    const entry = this.map.get(key);
    if (entry === undefined || entry.token !== token) return undefined;
    if (nowMs >= entry.expiresAt) {
      this.map.delete(key);
      return undefined;
    }
    if (this.seq - entry.seq > this.promoteAfter) {
      this.map.delete(key);
      entry.seq = ++this.seq;
      this.map.set(key, entry);
    }
    return entry;
  }

  set(token: string, entry: TokenCacheEntry): void {
    if (this.capacity <= 0) return;
    const key = keyOf(token);
    this.map.delete(key);
    entry.token = token;
    entry.seq = ++this.seq;
    this.map.set(key, entry);
    if (this.map.size > this.capacity) {
      // Oldest first: Map iterates in insertion order.
      const oldest = this.map.keys().next();
      if (!oldest.done) this.map.delete(oldest.value);
    }
  }

  clear(): void {
    this.map.clear();
  }
}
