// The decisions of one authorization service, per worker: bounded in entries, least recently
// used evicted first, every entry dead after the configured TTL. Only decisions are kept
// (allowed with its upstream headers, denied with its status, headers and a small body),
// never a failure: a service that was down is asked again by the next request.
//
// Keys are SHA-256 digests of the configured attributes (filter.ts keyOf), never the
// attributes themselves: an Authorization header or a cookie is not held in clear, and a key
// costs the same 43 characters whatever the request carried.
//
// The LRU is approximate to keep a hit cheap (as src/data/auth/token-cache.ts): the Map's
// insertion order is the recency order, and an entry is moved to the young end only when it
// has drifted into the older half (one lookup for a hit on a recently used entry, a delete +
// set otherwise).

import type { GatewayErrorSpec } from '../../shared/errors.js';

export interface AuthzDecision {
  readonly allowed: boolean;
  /** Allowed: flat [name, value, ...] set on the upstream request. Denied: sent to the client
   * (without Content-Type when `body` is null: the gateway's JSON error has its own). */
  readonly headers: readonly string[];
  /** Denied: the status sent to the client (0 when allowed). */
  readonly status: number;
  /** Denied: the body relayed to the client, or null for the gateway's JSON error body. */
  readonly body: Buffer | null;
  /** Denied: what the reply is recorded as (ext_authz_denied with `status`), made with the
   * decision, so a cached denial is answered with nothing built; null when allowed. */
  readonly spec: GatewayErrorSpec | null;
}

interface Entry {
  decision: AuthzDecision;
  expiresAt: number;
  seq: number;
}

/** A denial body up to this size is cached with its decision; a larger one is not cached. */
export const MAX_CACHED_BODY_BYTES = 4096;

export class DecisionCache {
  private readonly map = new Map<string, Entry>();
  private seq = 0;

  constructor(private readonly capacity: number, private readonly ttlMs: number) {}

  get size(): number {
    return this.map.size;
  }

  get(key: string, now: number): AuthzDecision | undefined {
    const entry = this.map.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now) {
      this.map.delete(key);
      return undefined;
    }
    if (this.seq - entry.seq > this.capacity >> 1) {
      this.map.delete(key);
      entry.seq = ++this.seq;
      this.map.set(key, entry);
    }
    return entry.decision;
  }

  set(key: string, decision: AuthzDecision, now: number): void {
    if (decision.body !== null && decision.body.length > MAX_CACHED_BODY_BYTES) return;
    this.map.delete(key);
    while (this.map.size >= this.capacity) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
    this.map.set(key, { decision, expiresAt: now + this.ttlMs, seq: ++this.seq });
  }
}
