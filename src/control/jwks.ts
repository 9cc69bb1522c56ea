// The JWKS manager: one fetcher per JWKS URI per instance, on the main thread, whatever the
// number of workers and routes. Key sets reach the workers as `keys` messages.
//
//   - fetched at start (start() waits for the first answer, bounded by fetch_timeout_ms, so
//     the first requests find keys), then cached for the document's Cache-Control max-age
//     clamped to [min_ttl_s, max_ttl_s] (default_ttl_s without one, min_ttl_s for no-cache);
//   - refreshed in the background at 80 % of that lifetime, before the keys go stale;
//   - refetched at once when a worker meets an unknown `kid` (`jwks-refetch`). The cooldown
//     (refetch_cooldown_s per URI) starts only from such a kid-triggered fetch: start-up,
//     scheduled refreshes and retries never start it, so a key published just after one of
//     them is fetched on its first use, while a flood of bogus kids still costs the identity
//     provider at most one extra request per cooldown. Every refetch request is answered
//     (with the current keys when the cooldown refuses a fetch) so that waiting requests are
//     released; each `keys` message carries the cooldown left (`refetchInMs`), which the
//     workers' own limit (src/data/auth/keys-store.ts) follows, so both agree;
//   - on failure (provider down, bad document) the last good keys stay in use; retries
//     back off from 1 s to the cooldown/default TTL.
import { lazily } from '../shared/lazy-require.js';

// Loaded with the first fetch: an instance without a provider that needs one does not carry
// undici on its control plane (about 10 MB of RSS on Node 20).
const undici = lazily<typeof import('undici')>('undici');
import type { CompiledConfig } from '../shared/compiled-config.js';
import type { AuthJwtFilterConfig, CompiledJwksSource, Jwk } from '../shared/auth-config.js';
import type { ToWorker } from '../shared/messages.js';
import { importJwk } from '../shared/jwk.js';
import { log } from '../shared/log.js';

/** A JWKS document larger than this is refused. */
const MAX_JWKS_BYTES = 1024 * 1024;
/** Refresh when this share of the lifetime has passed. */
const REFRESH_AT = 0.8;
const RETRY_MIN_MS = 1_000;

export type KeysMessage = Extract<ToWorker, { type: 'keys' }>;

/** The JWKS sources a compiled config uses (from its routes' auth-jwt filters), by URI. */
export function jwksSources(config: CompiledConfig): Map<string, CompiledJwksSource> {
  const sources = new Map<string, CompiledJwksSource>();
  for (const route of config.routes) {
    for (const filter of route.filters) {
      if (filter.name !== 'auth-jwt') continue;
      const jwks = (filter.config as AuthJwtFilterConfig).provider?.jwks;
      if (jwks != null && !sources.has(jwks.uri)) sources.set(jwks.uri, jwks);
    }
  }
  return sources;
}

/** Lifetime in seconds from a Cache-Control header, clamped to the source's bounds. */
export function ttlFromCacheControl(header: string | undefined, source: CompiledJwksSource): number {
  let ttl = source.defaultTtlS;
  if (header !== undefined) {
    const value = header.toLowerCase();
    const maxAge = /(?:^|[,\s])max-age\s*=\s*"?(\d+)"?/.exec(value);
    if (/(?:^|[,\s])(?:no-cache|no-store)(?:$|[,\s=])/.test(value)) ttl = source.minTtlS;
    else if (maxAge) ttl = Number(maxAge[1]);
  }
  return Math.min(source.maxTtlS, Math.max(source.minTtlS, ttl));
}

class JwksFetcher {
  version = 0;
  keys: Jwk[] | null = null;
  private keysJson = '';
  private fetching: Promise<void> | null = null;
  /** performance.now() before which an unknown kid does not cause a fetch (the cooldown). */
  private refetchAllowedAt = -Infinity;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Fetches done so far (tests and logs). */
  fetches = 0;

  constructor(
    private source: CompiledJwksSource, private readonly broadcast: (msg: KeysMessage) => void,
    /** Counts each finished fetch (lobby_jwks_fetches_total). */
    private readonly counted: (uri: string, ok: boolean) => void = () => undefined,
  ) {}

  get uri(): string {
    return this.source.uri;
  }

  update(source: CompiledJwksSource): void {
    this.source = source;
  }

  message(): KeysMessage {
    const refetchInMs = Math.max(0, Math.ceil(this.refetchAllowedAt - performance.now()));
    return { type: 'keys', uri: this.source.uri, version: this.version, keys: this.keys, refetchInMs };
  }

  /** Fetches now (joining a fetch under way). `announce`: broadcast even if nothing changed. */
  fetch(announce: boolean): Promise<void> {
    if (this.fetching === null) {
      this.fetching = this.fetchOnce().finally(() => { this.fetching = null; });
    }
    return announce ? this.fetching.then(() => this.broadcast(this.message())) : this.fetching;
  }

  /** A worker met an unknown kid. */
  refetch(): void {
    if (this.stopped) return;
    // A fetch under way (of any kind) answers this request too; joining it starts no cooldown.
    if (this.fetching !== null) { void this.fetch(true); return; }
    const now = performance.now();
    if (now < this.refetchAllowedAt) {
      this.broadcast(this.message()); // the cooldown holds: answer with what there is
      return;
    }
    this.refetchAllowedAt = now + this.source.refetchCooldownS * 1000;
    void this.fetch(true);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = null; void this.fetch(false); }, Math.max(ms, 100));
    this.timer.unref();
  }

  private async fetchOnce(): Promise<void> {
    const source = this.source;
    this.fetches++;
    let ttlS: number;
    let keys: Jwk[];
    try {
      ({ keys, ttlS } = await download(source));
    } catch (err) {
      this.failures++;
      this.counted(source.uri, false);
      const retryMs = Math.min(RETRY_MIN_MS * 2 ** (this.failures - 1),
        Math.max(RETRY_MIN_MS, Math.min(source.defaultTtlS, source.refetchCooldownS) * 1000));
      log.warn('jwks fetch failed; keeping the last good keys', {
        uri: source.uri, error: (err as Error).message, have_keys: this.keys !== null, retry_ms: retryMs,
      });
      this.schedule(retryMs);
      return;
    }
    this.failures = 0;
    this.counted(source.uri, true);
    const json = JSON.stringify(keys);
    if (json !== this.keysJson) {
      this.keysJson = json;
      this.keys = keys;
      this.version++;
      log.info('jwks keys updated', { uri: source.uri, version: this.version, kids: keys.map((k) => k.kid ?? null), ttl_s: ttlS });
      if (!this.stopped) this.broadcast(this.message());
    }
    this.schedule(ttlS * 1000 * REFRESH_AT);
  }
}

/** GETs and validates a JWKS document: its usable public keys and how long to keep them. */
async function download(source: CompiledJwksSource): Promise<{ keys: Jwk[]; ttlS: number }> {
  const res = await undici().request(source.uri, {
    method: 'GET',
    headers: { accept: 'application/json, application/jwk-set+json' },
    signal: AbortSignal.timeout(source.fetchTimeoutMs),
  });
  if (res.statusCode !== 200) {
    await res.body.dump().catch(() => undefined);
    throw new Error(`HTTP ${res.statusCode}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_JWKS_BYTES) { res.body.destroy(); throw new Error(`document larger than ${MAX_JWKS_BYTES} bytes`); }
    chunks.push(chunk as Buffer);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new Error('the document is not JSON');
  }
  const list = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) throw new Error('the document has no "keys" list');
  const keys: Jwk[] = [];
  const skipped: string[] = [];
  for (const jwk of list as Jwk[]) {
    const imported = importJwk(jwk);
    // A JWKS endpoint serves public keys; HMAC secrets are never taken from it.
    if ('error' in imported) skipped.push(`${jwk?.kid ?? '(no kid)'}: ${imported.error}`);
    else if (jwk.kty === 'oct') skipped.push(`${jwk.kid ?? '(no kid)'}: oct keys are not accepted from a JWKS URI`);
    else keys.push(publicPart(jwk));
  }
  if (skipped.length > 0) log.warn('jwks keys skipped', { uri: source.uri, skipped });
  if (keys.length === 0) throw new Error('the document has no usable signature key');
  const cacheControl = res.headers['cache-control'];
  return { keys, ttlS: ttlFromCacheControl(Array.isArray(cacheControl) ? cacheControl.join(',') : cacheControl, source) };
}

/** The public members of a JWK (whatever else the document carried). */
function publicPart(jwk: Jwk): Jwk {
  const out: Jwk = { kty: jwk.kty };
  for (const m of ['kid', 'alg', 'use', 'key_ops', 'crv', 'n', 'e', 'x', 'y'] as const) {
    if (jwk[m] !== undefined) out[m] = jwk[m] as never;
  }
  return out;
}

export class JwksManager {
  private readonly fetchers = new Map<string, JwksFetcher>();

  /** Finished fetches per URI and result, kept after a URI leaves the config (counters never go back). */
  readonly fetchTotals = new Map<string, { ok: number; error: number }>();
  private readonly countFetch = (uri: string, ok: boolean): void => {
    let t = this.fetchTotals.get(uri);
    if (t === undefined) { t = { ok: 0, error: 0 }; this.fetchTotals.set(uri, t); }
    if (ok) t.ok++; else t.error++;
  };

  constructor(private readonly broadcast: (msg: KeysMessage) => void) {}

  /**
   * Follows the JWKS URIs `config` uses: new ones are fetched (resolves when each has its
   * first answer, success or not), removed ones stop.
   */
  async configure(config: CompiledConfig): Promise<void> {
    const sources = jwksSources(config);
    for (const [uri, fetcher] of this.fetchers) {
      if (!sources.has(uri)) { fetcher.stop(); this.fetchers.delete(uri); }
    }
    const first: Promise<void>[] = [];
    for (const [uri, source] of sources) {
      const existing = this.fetchers.get(uri);
      if (existing !== undefined) { existing.update(source); continue; }
      const fetcher = new JwksFetcher(source, this.broadcast, this.countFetch);
      this.fetchers.set(uri, fetcher);
      first.push(fetcher.fetch(false));
    }
    await Promise.all(first);
  }

  /** The current key sets, for a worker that just started. */
  snapshot(): KeysMessage[] {
    return [...this.fetchers.values()].map((f) => f.message());
  }

  /** A worker's `jwks-refetch`. */
  refetch(uri: string): void {
    this.fetchers.get(uri)?.refetch();
  }

  /** Fetches done for `uri` so far. */
  fetchCount(uri: string): number {
    return this.fetchers.get(uri)?.fetches ?? 0;
  }

  stop(): void {
    for (const f of this.fetchers.values()) f.stop();
    this.fetchers.clear();
  }
}
