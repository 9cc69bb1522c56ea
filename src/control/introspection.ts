// OAuth 2.0 token introspection (RFC 7662) for every worker of the instance, on the main
// thread: workers ask with `introspect` (a token none of their caches knows) and get
// `introspected` back (src/data/auth/introspection-client.ts).
//
//   - results are cached per token digest (SHA-256, never the token) for
//     min(exp - now, cache_ttl_s) when active, negative_ttl_s when refused, bounded by
//     auth.token_cache.entries and max_bytes (least recently used evicted first); a failed
//     call is not cached;
//   - concurrent requests for one token, from any worker, wait for one call (coalescing);
//   - one call: POST application/x-www-form-urlencoded `token` (+ `token_type_hint`), the
//     client authenticated with client_secret_basic (RFC 6749 §2.3.1: both parts
//     form-urlencoded, then base64) or client_secret_post, bounded by timeout_ms and by
//     MAX_RESPONSE_BYTES; anything but a 200 with a JSON object holding a boolean `active`
//     is "unavailable" (the route answers 503 auth_unavailable, or goes on anonymously when
//     it is optional and the provider says on_unavailable: allow_anonymous);
//   - an active token is then checked as a JWT's claims are: exp / nbf (with clock_skew_s),
//     iss (when `issuer` is set), aud (when `audiences` is set), `scope` well-formed; the
//     identity headers come from the same function the JWT verifier uses (jwt.ts
//     identityHeaders), so both inject the same checked bytes.
import { lazily } from '../shared/lazy-require.js';

// Loaded with the first fetch: an instance without a provider that needs one does not carry
// undici on its control plane (about 10 MB of RSS on Node 20).
const undici = lazily<typeof import('undici')>('undici');
import type { CompiledConfig } from '../shared/compiled-config.js';
import type { CompiledIntrospection, CompiledIntrospectionProvider, IntrospectionOutcome, IntrospectionRefusal } from '../shared/auth-config.js';
import { identityHeaders, scopesOf } from '../data/auth/jwt.js';
import { DigestCache, refusedKey, type TokenCacheEntry } from '../data/auth/token-cache.js';
import { log } from '../shared/log.js';

/** An introspection response larger than this is refused (unavailable). */
const MAX_RESPONSE_BYTES = 64 * 1024;

const UNAVAILABLE: IntrospectionOutcome = Object.freeze({ outcome: 'unavailable' });

/** The form-urlencoding of RFC 6749 Appendix B (space as +), for client_secret_basic. */
function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

/** The checks of an active token's members; returns the outcome to cache. */
export function judgeIntrospection(body: Record<string, unknown>, p: CompiledIntrospectionProvider, nowMs: number): IntrospectionOutcome {
  const refused = (code: IntrospectionRefusal): IntrospectionOutcome => ({ outcome: 'refused', code, expiresAt: nowMs + p.negativeTtlS * 1000 });
  if (body.active !== true) return refused('inactive');
  const nowS = nowMs / 1000;
  const { exp, nbf } = body;
  if (exp !== undefined && (typeof exp !== 'number' || !Number.isFinite(exp))) return refused('bad_claims');
  if (nbf !== undefined && (typeof nbf !== 'number' || !Number.isFinite(nbf))) return refused('bad_claims');
  if (typeof exp === 'number' && nowS >= exp + p.clockSkewS) return refused('expired');
  if (typeof nbf === 'number' && nowS + p.clockSkewS < nbf) return refused('not_yet_valid');
  if (p.issuer !== null && body.iss !== p.issuer) return refused('bad_issuer');
  if (p.audiences.length > 0) {
    const aud = body.aud;
    const match = typeof aud === 'string' ? p.audiences.includes(aud)
      : Array.isArray(aud) && aud.some((a) => typeof a === 'string' && p.audiences.includes(a));
    if (!match) return refused('bad_audience');
  }
  // RFC 7662 §2.2: `scope` is a space-separated string (scopesOf also takes `scp`).
  if (body.scope !== undefined && typeof body.scope !== 'string') return refused('bad_claims');
  const scopes = scopesOf(body);
  if (scopes === null) return refused('bad_claims');
  let expiresAt = nowMs + p.cacheTtlS * 1000;
  if (typeof exp === 'number') expiresAt = Math.min(expiresAt, exp * 1000);
  return {
    outcome: 'active',
    headers: identityHeaders(body, p.claimsToHeaders),
    scopes,
    subject: typeof body.sub === 'string' ? body.sub : '',
    expiresAt,
  };
}

function entryOf(outcome: IntrospectionOutcome): TokenCacheEntry | null {
  if (outcome.outcome === 'active') {
    return { expiresAt: outcome.expiresAt, headers: outcome.headers, scopes: outcome.scopes, subject: outcome.subject, code: null, seq: 0 };
  }
  if (outcome.outcome === 'refused') return { expiresAt: outcome.expiresAt, headers: null, scopes: [], code: outcome.code, seq: 0 };
  return null;
}

function outcomeOf(entry: TokenCacheEntry): IntrospectionOutcome {
  return entry.headers === null
    ? { outcome: 'refused', code: entry.code as IntrospectionRefusal, expiresAt: entry.expiresAt }
    : { outcome: 'active', headers: entry.headers, scopes: entry.scopes, subject: entry.subject ?? '', expiresAt: entry.expiresAt };
}

/** One provider's calls and cache, kept across reloads while its settings do not change. */
class IntrospectionProvider {
  readonly cache: DigestCache;
  private readonly inflight = new Map<string, Promise<IntrospectionOutcome>>();
  private readonly authorization: string | null;

  constructor(
    readonly config: CompiledIntrospectionProvider, entries: number, maxBytes: number,
    /** The provider's call counters (lobby_introspection_calls_total), kept across reloads. */
    private readonly calls: { ok: number; error: number },
  ) {
    this.cache = new DigestCache(entries, maxBytes);
    this.authorization = config.clientAuth === 'client_secret_basic'
      ? 'Basic ' + Buffer.from(`${formEncode(config.clientId)}:${formEncode(config.clientSecret)}`, 'utf8').toString('base64')
      : null;
  }

  introspect(token: string): Promise<IntrospectionOutcome> | IntrospectionOutcome {
    const digest = refusedKey(token);
    const cached = this.cache.get(digest, Date.now());
    if (cached !== undefined) return outcomeOf(cached);
    const joined = this.inflight.get(digest);
    if (joined !== undefined) return joined;
    const call = this.call(token).then((outcome) => {
      const entry = entryOf(outcome);
      if (entry !== null && entry.expiresAt > Date.now()) this.cache.set(digest, entry);
      return outcome;
    }).finally(() => this.inflight.delete(digest));
    this.inflight.set(digest, call);
    return call;
  }

  private async call(token: string): Promise<IntrospectionOutcome> {
    const p = this.config;
    const form = new URLSearchParams({ token });
    if (p.tokenTypeHint !== null) form.set('token_type_hint', p.tokenTypeHint);
    if (this.authorization === null) { form.set('client_id', p.clientId); form.set('client_secret', p.clientSecret); }
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (this.authorization !== null) headers.authorization = this.authorization;
    try {
      const res = await undici().request(p.endpoint, {
        method: 'POST', headers, body: form.toString(),
        signal: AbortSignal.timeout(p.timeoutMs), headersTimeout: p.timeoutMs, bodyTimeout: p.timeoutMs,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > MAX_RESPONSE_BYTES) { res.body.destroy(); throw new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`); }
        chunks.push(chunk as Buffer);
      }
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        throw new Error('response is not JSON');
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body) || typeof (body as { active?: unknown }).active !== 'boolean') {
        throw new Error('response is not an introspection response (no boolean "active")');
      }
      this.calls.ok++;
      return judgeIntrospection(body as Record<string, unknown>, p, Date.now());
    } catch (err) {
      this.calls.error++;
      // The token is never logged; the endpoint is config.
      log.warn('token introspection failed', { provider: p.name, endpoint: p.endpoint, error: String((err as Error)?.message ?? err) });
      return UNAVAILABLE;
    }
  }
}

export class IntrospectionManager {
  private readonly providers = new Map<string, IntrospectionProvider>();
  /** HTTP calls per provider and result, kept after a provider leaves the config (counters never go back). */
  readonly callTotals = new Map<string, { ok: number; error: number }>();

  /** Follows the introspection providers `config` defines; an unchanged one keeps its cache. */
  configure(config: CompiledConfig): void {
    const compiled: CompiledIntrospection | undefined = config.introspection;
    const wanted = new Map((compiled?.providers ?? []).map((p) => [p.name, p]));
    for (const name of this.providers.keys()) if (!wanted.has(name)) this.providers.delete(name);
    for (const [name, p] of wanted) {
      const existing = this.providers.get(name);
      if (existing !== undefined && existing.config.fingerprint === p.fingerprint &&
          existing.cache.capacity === compiled!.cacheEntries && existing.cache.maxBytes === compiled!.cacheMaxBytes) continue;
      let calls = this.callTotals.get(name);
      if (calls === undefined) { calls = { ok: 0, error: 0 }; this.callTotals.set(name, calls); }
      this.providers.set(name, new IntrospectionProvider(p, compiled!.cacheEntries, compiled!.cacheMaxBytes, calls));
    }
  }

  /** A worker's `introspect`: resolves with the outcome (never rejects). */
  async introspect(provider: string, token: string): Promise<IntrospectionOutcome> {
    const p = this.providers.get(provider);
    if (p === undefined) return UNAVAILABLE;
    return p.introspect(token);
  }

  stop(): void {
    this.providers.clear();
  }
}
