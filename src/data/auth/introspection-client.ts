// Per worker, per introspection provider (RFC 7662): the worker's own cache of introspection
// results and the requests waiting for the control plane's answer.
//
//   token ─► digest ─► cache hit (positive or negative, until the control plane's expiresAt) ─► apply
//                  └─► miss ─► same digest already asked? join it ──────────────┐
//                          └─► post `introspect` to the control plane ─► WAIT ──┴─► `introspected` ─► cache ─► settle
//
// The control plane (src/control/introspection.ts) owns the instance-wide cache and the one
// HTTP call per token; this cache only saves the message on a repeated token (a hit posts
// nothing: that is the hot path). Both are keyed by the token's SHA-256 (refusedKey), never the
// token. An entry carries the absolute expiry the control plane computed, so a revoked token
// stops working here exactly when it stops working there.
// At most `max_queue` distinct tokens per worker wait for an answer; one more is answered 503.
// An answer later than the call's timeout plus a margin (`waitMs`) answers its requests as
// unavailable (the late answer still fills the cache).
import type { CompiledAuthRuntime, IntrospectionOutcome, IntrospectionProviderRef } from '../../shared/auth-config.js';
import type { FromWorker, ToWorker } from '../../shared/messages.js';
import { GW_ERR, type GatewayErrorSpec } from '../../shared/errors.js';
import type { RequestContext } from '../request-context.js';
import { DigestCache, type TokenCacheEntry } from './token-cache.js';
import type { VerificationClient } from './provider-state.js';

interface Waiter {
  ctx: RequestContext;
  client: VerificationClient;
}

interface Pending {
  state: IntrospectionState;
  id: number;
  digest: string;
  waiters: Waiter[];
  /** performance.now() after which the waiters are answered unavailable. */
  deadline: number;
  done: boolean;
}

/** Asked and not answered yet, by message id (all providers of this worker). */
const pendingById = new Map<number, Pending>();
let nextId = 1;
const TIMEOUT_TICK_MS = 50;
let ticker: NodeJS.Timeout | null = null;

export class IntrospectionState {
  readonly cache: DigestCache;
  private readonly inflight = new Map<string, Pending>();

  constructor(
    readonly ref: IntrospectionProviderRef,
    readonly runtime: CompiledAuthRuntime,
    private readonly post: (msg: FromWorker) => void,
  ) {
    this.cache = new DigestCache(runtime.cacheEntries, runtime.cacheMaxBytes);
  }

  /**
   * A token the cache does not know: joins the request for the same digest, or asks the
   * control plane. Returns null (the client is called back: the caller returns WAIT), or the
   * refusal to answer now (too many tokens waiting).
   */
  introspect(token: string, digest: string, ctx: RequestContext, client: VerificationClient): GatewayErrorSpec | null {
    const joined = this.inflight.get(digest);
    if (joined !== undefined) {
      joined.waiters.push({ ctx, client });
      return null;
    }
    if (pendingById.size >= this.runtime.maxQueue) return GW_ERR.auth_overloaded;
    const id = nextId++;
    const p: Pending = { state: this, id, digest, waiters: [{ ctx, client }], deadline: performance.now() + this.ref.waitMs, done: false };
    this.inflight.set(digest, p);
    pendingById.set(id, p);
    if (ticker === null) {
      ticker = setInterval(checkTimeouts, TIMEOUT_TICK_MS);
      ticker.unref();
    }
    this.post({ type: 'introspect', id, provider: this.ref.name, token });
    return null;
  }

  answer(p: Pending, outcome: IntrospectionOutcome): void {
    let entry: TokenCacheEntry | null = null;
    if (outcome.outcome === 'active') {
      entry = { expiresAt: outcome.expiresAt, headers: outcome.headers, scopes: outcome.scopes, subject: outcome.subject, code: null, seq: 0 };
    } else if (outcome.outcome === 'refused') {
      entry = { expiresAt: outcome.expiresAt, headers: null, scopes: [], code: outcome.code, seq: 0 };
    }
    if (entry !== null && entry.expiresAt > Date.now()) this.cache.set(p.digest, entry);
    if (p.done) return;
    this.finish(p);
    for (const w of p.waiters) {
      if (entry === null) w.client.unavailable(w.ctx, GW_ERR.auth_unavailable);
      else w.client.settle(w.ctx, entry);
    }
  }

  timeout(p: Pending): void {
    if (p.done) return;
    this.finish(p);
    for (const w of p.waiters) w.client.unavailable(w.ctx, GW_ERR.auth_unavailable);
  }

  private finish(p: Pending): void {
    p.done = true;
    if (this.inflight.get(p.digest) === p) this.inflight.delete(p.digest);
  }

  retire(): void {
    this.cache.clear();
  }
}

function checkTimeouts(): void {
  const now = performance.now();
  for (const p of pendingById.values()) {
    if (p.done || p.deadline > now) continue;
    // Kept in pendingById: a late answer still fills the cache (then it is forgotten).
    p.state.timeout(p);
  }
  // Forget timed-out requests whose answer never came (bounded: max_queue counts them).
  for (const [id, p] of pendingById) if (p.done && now - p.deadline > 30_000) pendingById.delete(id);
  if (pendingById.size === 0 && ticker !== null) {
    clearInterval(ticker);
    ticker = null;
  }
}

/** An `introspected` message from the control plane. */
export function receiveIntrospection(msg: Extract<ToWorker, { type: 'introspected' }>): void {
  const p = pendingById.get(msg.id);
  if (p === undefined) return;
  pendingById.delete(msg.id);
  p.state.answer(p, msg);
}

// ---------------------------------------------------------------------------------------
// One state per provider name per worker, replaced when the provider's settings change.

const states = new Map<string, IntrospectionState>();
const RETIRE_GRACE_MS = 60_000;

export function introspectionState(ref: IntrospectionProviderRef, runtime: CompiledAuthRuntime, post: (msg: FromWorker) => void): IntrospectionState {
  const key = ref.fingerprint + '|' + JSON.stringify(runtime);
  const current = states.get(ref.name);
  if (current !== undefined && current.ref.fingerprint + '|' + JSON.stringify(current.runtime) === key) return current;
  const next = new IntrospectionState(ref, runtime, post);
  states.set(ref.name, next);
  if (current !== undefined) setTimeout(() => current.retire(), RETIRE_GRACE_MS).unref();
  return next;
}
