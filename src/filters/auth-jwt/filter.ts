// The `auth-jwt` filter's runtime: bearer-token authentication and scope authorization of a route.
//
// onRequest (hot path; a cached token allocates nothing but the pushed headers):
//   1. one pass over the forwarded headers removes every configured identity header (so a
//      client can never send its own X-User-Id) and finds Authorization;
//   2. the token: `Authorization: Bearer`, else the provider's cookie, else its query parameter;
//      none → NEXT on an `optional` route, else 401;
//   3. the worker's verified-token cache: a hit costs one lookup (scopes checked, identity
//      headers pushed);
//   4. a miss goes to the provider's verification (src/data/auth/provider-state.ts): a token
//      refused before answers 401 from the refused-token cache, others go to a piscina pool
//      task → WAIT; the answer resumes the chain or replies.
// A route may also (or only) have an introspection provider (RFC 7662): a token shaped as a
// JWS compact serialization goes to the JWT provider when the route has one, any other token
// to introspection: the worker's result cache by the token's digest (a hit: scopes, headers,
// NEXT), else the control plane is asked (src/data/auth/introspection-client.ts) → WAIT.
// Refusals follow RFC 6750: 401 + `WWW-Authenticate: Bearer realm=..., error="invalid_token",
// error_description=...` (descriptions are fixed strings, never token content), 403 +
// error="insufficient_scope" with the route's scopes, and the usual JSON error body.
import { NEXT, WAIT, localReply, logRequestFault, resumeChain, type Filter, type Verdict, type WorkerEnv } from '../../data/chain.js';
import type { AuthJwtFilterConfig } from '../../shared/auth-config.js';
import { GW_ERR, type GatewayErrorSpec } from '../../shared/errors.js';
import { PHASE, type RequestContext } from '../../data/request-context.js';
import type { VerifyCode } from '../../data/auth/jwt.js';
import type { TokenCacheEntry } from '../../data/auth/token-cache.js';
import { bearerToken, cookieValue, hasScopes, isJwsCompact, MULTIPLE, queryValue, removeHeader, stripSet, takeAuthorization, type StripSet } from '../../data/auth/extract.js';
import { providerState, type ProviderState, type VerificationClient } from '../../data/auth/provider-state.js';
import { introspectionState, type IntrospectionState } from '../../data/auth/introspection-client.js';
import { refusedKey } from '../../data/auth/token-cache.js';
import { MAX_TOKEN_LENGTH } from '../../data/auth/jwt.js';

/** error_description of each refusal: fixed, safe in a quoted-string. */
export const TOKEN_ERROR_DESCRIPTIONS: Record<VerifyCode, string> = {
  malformed: 'the token is malformed',
  alg_not_allowed: 'the signing algorithm is not allowed',
  unknown_kid: 'the signing key is unknown',
  key_mismatch: 'the signing key does not fit the algorithm',
  bad_signature: 'the signature is invalid',
  expired: 'the token has expired',
  not_yet_valid: 'the token is not valid yet',
  missing_exp: 'the token has no expiry',
  bad_issuer: 'the issuer is not accepted',
  bad_audience: 'the audience is not accepted',
  bad_claims: 'the token claims are malformed',
  no_keys: 'no keys are available to verify the token',
  inactive: 'the token is not active',
};

const RETRY_AFTER = ['retry-after', '1'] as const;

/** One provider's RFC 6750 challenges (`WWW-Authenticate` name and value), built once. */
interface Challenges {
  missing: readonly string[];
  badRequest: readonly string[];
  scope: readonly string[];
  invalid: Map<VerifyCode, readonly string[]>;
}

function challengesOf(realmName: string, scopes: readonly string[]): Challenges {
  // The realm is the provider name ([A-Za-z0-9_.-]); scopes are RFC 6749 scope tokens
  // without `"` or `\` (both checked by the config compiler): safe in quoted-strings.
  const realm = `Bearer realm="${realmName}"`;
  const invalid = new Map<VerifyCode, readonly string[]>();
  for (const [code, description] of Object.entries(TOKEN_ERROR_DESCRIPTIONS)) {
    invalid.set(code as VerifyCode, ['www-authenticate', `${realm}, error="invalid_token", error_description="${description}"`]);
  }
  return {
    // A missing token gets error="invalid_token" too (RFC 6750 §3.1 leaves the code optional
    // there), so clients need one rule for every 401.
    missing: ['www-authenticate', `${realm}, error="invalid_token", error_description="a bearer token is required"`],
    badRequest: ['www-authenticate', `${realm}, error="invalid_request", error_description="more than one Authorization header"`],
    scope: ['www-authenticate',
      `${realm}, error="insufficient_scope", error_description="the token does not grant the required scopes", scope="${scopes.join(' ')}"`],
    invalid,
  };
}

class AuthJwtFilter implements Filter, VerificationClient {
  readonly name = 'auth-jwt';
  /** The JWT provider's state, or null (an introspection-only route). */
  private readonly state: ProviderState | null;
  /** The introspection provider's state, or null (a JWT-only route). */
  private readonly introspection: IntrospectionState | null;
  private readonly strip: StripSet;
  private readonly required: readonly string[];
  private readonly optional: boolean;
  /** Where else to look for a token: the JWT provider's cookie / query parameter, then the introspection provider's. */
  private readonly cookies: readonly string[];
  private readonly queries: readonly string[];
  private readonly jwtForwardsToken: boolean;
  private readonly introspectionForwardsToken: boolean;
  private readonly failOpen: boolean;
  /** Challenges for requests with no token yet (the first provider's realm). */
  private readonly first: Challenges;
  private readonly jwtChallenges: Challenges | null;
  private readonly introspectionChallenges: Challenges | null;
  /** The introspection provider's callbacks (settle / unavailable with its realm and fail-open rule). */
  private readonly introspectionClient: VerificationClient;

  constructor(config: AuthJwtFilterConfig, env: WorkerEnv) {
    const { provider, introspection } = config;
    this.state = provider === null ? null : providerState(config, env.post);
    this.introspection = introspection === null ? null : introspectionState(introspection, config.runtime, env.post);
    this.strip = stripSet(config.stripHeaders);
    this.required = config.scopes;
    this.optional = config.optional;
    this.cookies = [provider?.fromCookie ?? null, introspection?.fromCookie ?? null].filter((c): c is string => c !== null);
    this.queries = [provider?.fromQuery ?? null, introspection?.fromQuery ?? null].filter((q): q is string => q !== null);
    this.jwtForwardsToken = provider?.forwardToken ?? true;
    this.introspectionForwardsToken = introspection?.forwardToken ?? true;
    this.failOpen = config.optional && introspection?.onUnavailable === 'allow_anonymous';
    this.jwtChallenges = provider === null ? null : challengesOf(provider.name, config.scopes);
    this.introspectionChallenges = introspection === null ? null : challengesOf(introspection.name, config.scopes);
    this.first = (this.jwtChallenges ?? this.introspectionChallenges)!;
    const introspectionChallenges = this.introspectionChallenges;
    this.introspectionClient = {
      settle: (ctx, entry) => this.settleWith(ctx, entry, introspectionChallenges!),
      unavailable: (ctx, spec) => this.introspectionUnavailable(ctx, spec),
    };
  }

  // Hot path.
  onRequest(ctx: RequestContext): Verdict {
    const auth = takeAuthorization(ctx.headers, this.strip);
    if (auth === MULTIPLE) return localReply(ctx, GW_ERR.invalid_auth_request, this.first.badRequest);
    let token = auth === null ? null : bearerToken(auth);
    const fromHeader = token !== null;
    for (let i = 0; token === null && i < this.cookies.length; i++) token = cookieValue(ctx.headers, this.cookies[i]);
    for (let i = 0; token === null && i < this.queries.length; i++) token = queryValue(ctx.query, this.queries[i]);
    if (token === null) return this.optional ? NEXT : localReply(ctx, GW_ERR.unauthenticated, this.first.missing);

    const state = this.state;
    if (state !== null && (this.introspection === null || isJwsCompact(token))) {
      if (fromHeader && !this.jwtForwardsToken) removeHeader(ctx.headers, 'authorization');
      const cached = state.cache.get(token, Date.now());
      if (cached !== undefined) return this.apply(ctx, cached, this.jwtChallenges!);
      const verdict = state.verify(token, ctx, this);
      if (verdict === null) return WAIT;
      if ('status' in verdict) return localReply(ctx, verdict, RETRY_AFTER);
      return this.apply(ctx, verdict, this.jwtChallenges!);
    }

    const introspection = this.introspection!;
    if (fromHeader && !this.introspectionForwardsToken) removeHeader(ctx.headers, 'authorization');
    if (token.length > MAX_TOKEN_LENGTH) return localReply(ctx, GW_ERR.invalid_token, this.introspectionChallenges!.invalid.get('malformed')!);
    const digest = refusedKey(token);
    const cached = introspection.cache.get(digest, Date.now());
    if (cached !== undefined) return this.apply(ctx, cached, this.introspectionChallenges!);
    const refused = introspection.introspect(token, digest, ctx, this.introspectionClient);
    if (refused === null) return WAIT;
    return localReply(ctx, refused, RETRY_AFTER);
  }

  private apply(ctx: RequestContext, entry: TokenCacheEntry, challenges: Challenges): Verdict {
    const identity = entry.headers;
    if (identity === null) {
      return localReply(ctx, GW_ERR.invalid_token, challenges.invalid.get(entry.code ?? 'malformed') ?? null);
    }
    if (this.required.length !== 0 && !hasScopes(entry.scopes, this.required)) {
      return localReply(ctx, GW_ERR.insufficient_scope, challenges.scope);
    }
    const h = ctx.headers;
    for (let i = 0; i < identity.length; i += 2) h.push(identity[i], identity[i + 1]);
    ctx.subject = entry.subject ?? '';
    return NEXT;
  }

  settle(ctx: RequestContext, entry: TokenCacheEntry): void {
    this.settleWith(ctx, entry, this.jwtChallenges!);
  }

  private settleWith(ctx: RequestContext, entry: TokenCacheEntry, challenges: Challenges): void {
    if (ctx.aborted || ctx.phase === PHASE.DONE) return;
    try {
      if (this.apply(ctx, entry, challenges) === NEXT) resumeChain(ctx);
    } catch (err) {
      logRequestFault(ctx, err);
      localReply(ctx, GW_ERR.internal_error, null);
    }
  }

  unavailable(ctx: RequestContext, spec: GatewayErrorSpec): void {
    if (ctx.aborted || ctx.phase === PHASE.DONE) return;
    localReply(ctx, spec, RETRY_AFTER);
  }

  /** The authorization server gave no answer: 503, or (fail-open, optional route) on anonymously. */
  private introspectionUnavailable(ctx: RequestContext, spec: GatewayErrorSpec): void {
    if (ctx.aborted || ctx.phase === PHASE.DONE) return;
    if (!this.failOpen || spec !== GW_ERR.auth_unavailable) { localReply(ctx, spec, RETRY_AFTER); return; }
    try {
      resumeChain(ctx);
    } catch (err) {
      logRequestFault(ctx, err);
      localReply(ctx, GW_ERR.internal_error, null);
    }
  }
}

/** build(): one filter per route per generation (provider state is shared per worker). */
export function buildAuthJwt(config: AuthJwtFilterConfig, env: WorkerEnv): Filter {
  return new AuthJwtFilter(config, env);
}
