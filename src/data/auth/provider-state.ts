// Per worker, per provider: the verified-token cache and the verification of tokens not
// seen before. Shared by every route (and generation) that uses the same provider settings.
//
//   token ─► cache hit ─────────────────────────────────────────────► apply (scopes, headers)
//        └─► miss ─► same token already in flight? join it ─┐
//                └─► refused before (by digest)? ──────────┼──────────► apply (401)
//                └─► pool (or inline) ─► result ────────────┴─► cache ─► apply / resume chain
//                                      └─► unknown kid ─► refetch asked (unless cooling down) ─► park
//                                                         until the new key set arrives ─► retry
// Pool work is batched: the tokens that missed during one event-loop turn go to the pool
// together (a task carries up to MAX_BATCH tokens, spread over the threads), so piscina's
// per-task cost (tens of µs of CPU, docs/performance.md) is paid once per batch, not per token.
// At most `max_queue` tokens per worker wait in (or for) the pool; one more is answered 503
// at once. A verification slower than `task_timeout_ms` answers its requests 503 (its result
// is still cached when it comes).
import type { Piscina } from 'piscina';
import type { AuthJwtFilterConfig, CompiledAuthProvider, CompiledAuthRuntime } from '../../shared/auth-config.js';
import type { FromWorker } from '../../shared/messages.js';
import { GW_ERR, type GatewayErrorSpec } from '../../shared/errors.js';
import { log } from '../../shared/log.js';
import type { RequestContext } from '../request-context.js';
import type { VerifyCode, VerifyResult } from './jwt.js';
import { RefusedCache, refusedKey, TokenCache, type TokenCacheEntry } from './token-cache.js';
import { KeyBundle, verifyPool, type VerifyTask } from './verify-pool.js';
import { abandonRefetch, keySetOf, requestRefetch, subscribeKeys, type KeySet } from './keys-store.js';

/** What a waiting request is handed back to: the route's auth filter. */
export interface VerificationClient {
  /** The token's verdict (a positive or negative cache entry). */
  settle(ctx: RequestContext, entry: TokenCacheEntry): void;
  /** No verdict: 503 (overloaded, timeout, keys unavailable). */
  unavailable(ctx: RequestContext, spec: GatewayErrorSpec): void;
}

interface Waiter {
  ctx: RequestContext;
  client: VerificationClient;
}

/** A token being verified, with every request waiting for it. */
interface Pending {
  state: ProviderState;
  token: string;
  /** refusedKey(token), computed once ('' when refusals are not cached). */
  digest: string;
  waiters: Waiter[];
  /** performance.now() deadline of the pool task; 0 while not in a task. */
  deadline: number;
  /** Answered or timed out: a late result only fills the cache. */
  done: boolean;
  /** Counted in tokensInPool (sent to the pool, no result yet). */
  inPool: boolean;
  /** Already waited for a refetched key set once: a second key problem is refused. */
  parkedOnce: boolean;
}

/** Tokens per pool task, at most (a batch of slow ES384 checks must not hold results too long). */
export const MAX_BATCH = 16;
/** Tokens of this worker sent to the pool and not answered yet (bounded by max_queue). */
let tokensInPool = 0;

function newPending(state: ProviderState, token: string, digest: string, waiters: Waiter[], parkedOnce = false): Pending {
  return { state, token, digest, waiters, deadline: 0, done: false, inPool: false, parkedOnce };
}

/** Results that say nothing about the token itself (not cached). */
function isKeyProblem(code: VerifyCode): boolean {
  return code === 'unknown_kid' || code === 'no_keys';
}

/** Refusals cached as negative entries (a later identical request is refused by lookup). */
function isCacheableRefusal(code: VerifyCode): boolean {
  return code !== 'not_yet_valid' && !isKeyProblem(code);
}

/** Waiting for a refetched key set longer than the fetch itself may take means the answer was lost. */
const PARK_MARGIN_MS = 2_000;
/** Requests parked per provider per worker while a refetch is under way; more are refused. */
const MAX_PARKED = 1024;

export class ProviderState {
  /** Verified tokens. */
  readonly cache: TokenCache;
  /** Refused tokens (by digest), apart (and smaller), so a stream of bad tokens cannot evict good ones. */
  readonly refused: RefusedCache;
  private readonly inflight = new Map<string, Pending>();
  private bundle: KeyBundle | null = null;
  private keysVersion = 0;
  private parked: Pending[] = [];
  private parkedCount = 0;
  private parkTimer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private pool: Piscina<VerifyTask, VerifyResult[]> | null = null;
  private batch: Pending[] = [];
  private flushScheduled = false;
  private readonly flushBound = () => this.flush();
  private readonly skewMs: number;

  constructor(
    readonly provider: CompiledAuthProvider,
    readonly runtime: CompiledAuthRuntime,
    private readonly post: (msg: FromWorker) => void,
  ) {
    this.cache = new TokenCache(runtime.cacheEntries, runtime.cacheMaxBytes);
    this.refused = new RefusedCache(runtime.negativeTtlS > 0 ? runtime.cacheEntries >> 2 : 0, runtime.cacheMaxBytes / 4);
    this.skewMs = provider.spec.clockSkewS * 1000;
    if (provider.jwks === null) {
      this.bundle = new KeyBundle(provider.spec, provider.keys);
    } else {
      const uri = provider.jwks.uri;
      this.useKeySet(keySetOf(uri));
      this.unsubscribe = subscribeKeys(uri, (set) => this.onKeys(set));
    }
    if (runtime.mode === 'pool') this.pool = verifyPool(runtime);
  }

  /** Stops following key updates (the provider's settings changed; this state is retired). */
  retire(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.cache.clear();
    this.refused.clear();
  }

  /**
   * Verifies a token that missed the verified-token cache. Returns the cache entry when the
   * verdict is known at once (refused before, or inline mode), else null: the client is
   * called back later (settle or unavailable) and the caller returns WAIT.
   */
  verify(token: string, ctx: RequestContext, client: VerificationClient): TokenCacheEntry | GatewayErrorSpec | null {
    const joined = this.inflight.get(token);
    if (joined !== undefined) {
      joined.waiters.push({ ctx, client });
      return null;
    }
    let digest = '';
    if (this.refused.capacity > 0) {
      digest = refusedKey(token);
      const refused = this.refused.get(digest, Date.now());
      if (refused !== undefined) return refused;
    }
    let keyProblem: VerifyCode = 'no_keys';
    if (this.pool === null && this.bundle !== null) {
      const result = this.bundle.verifier.verify(token, Date.now());
      if (result.ok || !isKeyProblem(result.code)) return this.record(token, digest, result, this.keysVersion);
      keyProblem = result.code;
    } else if (this.pool !== null && tokensInPool >= this.runtime.maxQueue) {
      return GW_ERR.auth_overloaded;
    }
    const p = newPending(this, token, digest, [{ ctx, client }]);
    this.inflight.set(token, p);
    // Inline: only a key problem gets here; it may wait for a refetch (or is refused at once).
    if (this.pool === null) this.onKeyProblem(p, keyProblem, this.keysVersion);
    else this.dispatch(p);
    return null;
  }

  private dispatch(p: Pending): void {
    const bundle = this.bundle;
    if (bundle === null) { this.onKeyProblem(p, 'no_keys', this.keysVersion); return; }
    const version = this.keysVersion;
    if (this.pool === null) { this.complete(p, bundle.verifier.verify(p.token, Date.now()), version); return; }
    p.deadline = performance.now() + this.runtime.taskTimeoutMs;
    p.inPool = true;
    tokensInPool++;
    trackTimeout(p);
    this.batch.push(p);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /** Sends this turn's tokens to the pool: as few tasks as the threads allow, each ≤ MAX_BATCH. */
  private flush(): void {
    this.flushScheduled = false;
    const batch = this.batch;
    this.batch = [];
    const bundle = this.bundle;
    const version = this.keysVersion;
    const pool = this.pool!;
    const size = Math.min(MAX_BATCH, Math.ceil(batch.length / this.runtime.threads));
    for (let i = 0; i < batch.length; i += size) {
      const chunk = batch.slice(i, i + size);
      if (bundle === null) { for (const p of chunk) this.complete(p, { ok: false, code: 'no_keys' }, version); continue; }
      pool.run({ tokens: chunk.map((p) => p.token), bundle: bundle.id, data: bundle.data }).then(
        (results) => { for (let j = 0; j < chunk.length; j++) this.complete(chunk[j], results[j], version); },
        (err: Error) => { for (const p of chunk) this.failed(p, err); },
      );
    }
  }

  private leavePool(p: Pending): void {
    if (!p.inPool) return;
    p.inPool = false;
    tokensInPool--;
  }

  /** Caches a verdict and returns its entry. */
  private record(token: string, digest: string, result: VerifyResult, version: number): TokenCacheEntry {
    const now = Date.now();
    let entry: TokenCacheEntry;
    if (result.ok) {
      let expiresAt = now + this.runtime.cacheMaxTtlS * 1000;
      if (result.exp > 0) expiresAt = Math.min(expiresAt, result.exp * 1000 + this.skewMs);
      entry = { expiresAt, headers: result.headers, scopes: result.scopes, subject: result.subject, code: null, seq: 0 };
    } else {
      entry = { expiresAt: now + this.runtime.negativeTtlS * 1000, headers: null, scopes: [], code: result.code, seq: 0 };
    }
    // A verdict reached with a key set that has since been replaced is used once, not kept.
    if (version === this.keysVersion) {
      if (result.ok) this.cache.set(token, entry);
      else if (digest !== '' && isCacheableRefusal(result.code)) this.refused.set(digest, entry);
    }
    return entry;
  }

  private complete(p: Pending, result: VerifyResult, version: number): void {
    this.leavePool(p);
    if (!result.ok && isKeyProblem(result.code)) {
      if (p.done) return;
      p.done = true;
      this.onKeyProblem(p, result.code, version);
      return;
    }
    const entry = this.record(p.token, p.digest, result, version);
    if (p.done) return;
    this.finish(p);
    for (const w of p.waiters) w.client.settle(w.ctx, entry);
  }

  private failed(p: Pending, err: Error): void {
    this.leavePool(p);
    if (p.done) return;
    this.finish(p);
    const full = err?.message === 'Task queue is at limit';
    if (!full) log.error('jwt verification task failed', { provider: this.provider.name, error: String(err?.stack ?? err) });
    for (const w of p.waiters) w.client.unavailable(w.ctx, full ? GW_ERR.auth_overloaded : GW_ERR.auth_unavailable);
  }

  /** The task's deadline passed: its requests get 503 now. */
  timeout(p: Pending): void {
    if (p.done) return;
    this.finish(p);
    for (const w of p.waiters) w.client.unavailable(w.ctx, GW_ERR.auth_timeout);
  }

  private finish(p: Pending): void {
    p.done = true;
    if (this.inflight.get(p.token) === p) this.inflight.delete(p.token);
  }

  /** Unknown kid or no keys: retry with newer keys, wait for a refetch, or refuse. */
  private onKeyProblem(p: Pending, code: VerifyCode, version: number): void {
    p.done = true;
    if (version !== this.keysVersion) { // the keys changed meanwhile: try again with them
      const fresh = newPending(this, p.token, p.digest, p.waiters, p.parkedOnce);
      this.inflight.set(p.token, fresh);
      this.dispatch(fresh);
      return;
    }
    const jwks = this.provider.jwks;
    if (jwks !== null && !p.parkedOnce && this.parkedCount + p.waiters.length <= MAX_PARKED &&
        requestRefetch(jwks.uri, this.post)) {
      this.parked.push(p);
      this.parkedCount += p.waiters.length;
      if (this.parkTimer === null) {
        this.parkTimer = setTimeout(() => this.parkExpired(), jwks.fetchTimeoutMs + PARK_MARGIN_MS);
        this.parkTimer.unref();
      }
      return;
    }
    this.refuse(p, code);
  }

  private refuse(p: Pending, code: VerifyCode): void {
    this.finish(p);
    if (code === 'no_keys') {
      for (const w of p.waiters) w.client.unavailable(w.ctx, GW_ERR.auth_unavailable);
      return;
    }
    const entry: TokenCacheEntry = { expiresAt: 0, headers: null, scopes: [], code, seq: 0 };
    for (const w of p.waiters) w.client.settle(w.ctx, entry);
  }

  private onKeys(set: KeySet): void {
    this.useKeySet(set);
    this.releaseParked(false);
  }

  private useKeySet(set: KeySet): void {
    if (set.version === this.keysVersion && this.bundle !== null) return;
    this.keysVersion = set.version;
    this.bundle = set.keys === null ? null : new KeyBundle(this.provider.spec, set.keys);
    // Cached verdicts were reached with the previous keys (a removed key must stop working).
    this.cache.clear();
    this.refused.clear();
  }

  private parkExpired(): void {
    this.parkTimer = null;
    if (this.provider.jwks !== null) abandonRefetch(this.provider.jwks.uri, this.provider.jwks.refetchCooldownS * 1000);
    this.releaseParked(true);
  }

  /** Retries parked tokens when their key set changed, else refuses them. */
  private releaseParked(timedOut: boolean): void {
    if (this.parked.length === 0) return;
    if (this.parkTimer !== null && !timedOut) { clearTimeout(this.parkTimer); this.parkTimer = null; }
    const parked = this.parked;
    this.parked = [];
    this.parkedCount = 0;
    for (const p of parked) {
      if (this.inflight.get(p.token) !== p) continue;
      const live = p.waiters.filter((w) => !w.ctx.aborted);
      if (live.length === 0) { this.finish(p); continue; }
      p.waiters = live;
      if (this.bundle === null) { this.refuse(p, 'no_keys'); continue; }
      const fresh = newPending(this, p.token, p.digest, p.waiters, true);
      this.inflight.set(p.token, fresh);
      // One more try with whatever keys there are now; a second unknown kid is refused
      // instead of parking again.
      this.dispatch(fresh);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Task deadlines: every task of a worker gets the same timeout, so deadlines are in
// submission order and a FIFO checked by one coarse ticker is enough (no timer per task).

const TIMEOUT_TICK_MS = 10;
let timeouts: Pending[] = [];
let timeoutHead = 0;
let ticker: NodeJS.Timeout | null = null;

function trackTimeout(p: Pending): void {
  timeouts.push(p);
  if (ticker === null) {
    ticker = setInterval(checkTimeouts, TIMEOUT_TICK_MS);
    ticker.unref();
  }
}

function checkTimeouts(): void {
  const now = performance.now();
  while (timeoutHead < timeouts.length) {
    const p = timeouts[timeoutHead];
    if (!p.done && p.deadline > now) break;
    timeoutHead++;
    if (!p.done) p.state.timeout(p);
  }
  if (timeoutHead === timeouts.length) {
    timeouts = [];
    timeoutHead = 0;
    clearInterval(ticker!);
    ticker = null;
  } else if (timeoutHead > 1024 && timeoutHead * 2 > timeouts.length) {
    timeouts = timeouts.slice(timeoutHead);
    timeoutHead = 0;
  }
}

// ---------------------------------------------------------------------------------------
// One state per provider name per worker, replaced when the provider's settings change.

const states = new Map<string, ProviderState>();
/** A replaced state keeps serving the generation that still uses it for this long. */
const RETIRE_GRACE_MS = 60_000;

export function providerState(config: AuthJwtFilterConfig, post: (msg: FromWorker) => void): ProviderState {
  const { runtime } = config;
  const provider = config.provider!;
  const key = provider.fingerprint + '|' + JSON.stringify(runtime);
  const current = states.get(provider.name);
  if (current !== undefined && current.provider.fingerprint + '|' + JSON.stringify(current.runtime) === key) return current;
  const next = new ProviderState(provider, runtime, post);
  states.set(provider.name, next);
  if (current !== undefined) setTimeout(() => current.retire(), RETIRE_GRACE_MS).unref();
  return next;
}
