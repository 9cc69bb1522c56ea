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
// Refusals follow RFC 6750: 401 + `WWW-Authenticate: Bearer realm=..., error="invalid_token",
// error_description=...` (descriptions are fixed strings, never token content), 403 +
// error="insufficient_scope" with the route's scopes, and the usual JSON error body.
import { NEXT, WAIT, localReply, logRequestFault, resumeChain, type Filter, type Verdict, type WorkerEnv } from '../../data/chain.js';
import type { AuthJwtFilterConfig } from '../../shared/auth-config.js';
import { GW_ERR, type GatewayErrorSpec } from '../../shared/errors.js';
import { PHASE, type RequestContext } from '../../data/request-context.js';
import type { VerifyCode } from '../../data/auth/jwt.js';
import type { TokenCacheEntry } from '../../data/auth/token-cache.js';
import { bearerToken, cookieValue, hasScopes, MULTIPLE, queryValue, removeHeader, stripSet, takeAuthorization, type StripSet } from '../../data/auth/extract.js';
import { providerState, type ProviderState, type VerificationClient } from '../../data/auth/provider-state.js';

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
};

const RETRY_AFTER = ['retry-after', '1'] as const;


class AuthJwtFilter implements Filter, VerificationClient {
  readonly name = 'auth-jwt';
  private readonly state: ProviderState;
  private readonly strip: StripSet;
  private readonly required: readonly string[];
  private readonly optional: boolean;
  private readonly fromCookie: string | null;
  private readonly fromQuery: string | null;
  private readonly removeAuthorization: boolean;
  private readonly missingHeaders: readonly string[];
  private readonly badRequestHeaders: readonly string[];
  private readonly scopeHeaders: readonly string[];
  private readonly invalidHeaders = new Map<VerifyCode, readonly string[]>();

  constructor(config: AuthJwtFilterConfig, env: WorkerEnv) {
    const { provider } = config;
    this.state = providerState(config, env.post);
    this.strip = stripSet(config.stripHeaders);
    this.required = config.scopes;
    this.optional = config.optional;
    this.fromCookie = provider.fromCookie;
    this.fromQuery = provider.fromQuery;
    this.removeAuthorization = !provider.forwardToken;
    // The realm is the provider name ([A-Za-z0-9_.-]); scopes are RFC 6749 scope tokens
    // without `"` or `\` (both checked by the config compiler): safe in quoted-strings.
    const realm = `Bearer realm="${provider.name}"`;
    // A missing token gets error="invalid_token" too (RFC 6750 §3.1 leaves the code optional
    // there), so clients need one rule for every 401.
    this.missingHeaders = ['www-authenticate', `${realm}, error="invalid_token", error_description="a bearer token is required"`];
    this.badRequestHeaders = ['www-authenticate', `${realm}, error="invalid_request", error_description="more than one Authorization header"`];
    this.scopeHeaders = ['www-authenticate',
      `${realm}, error="insufficient_scope", error_description="the token does not grant the required scopes", scope="${config.scopes.join(' ')}"`];
    for (const [code, description] of Object.entries(TOKEN_ERROR_DESCRIPTIONS)) {
      this.invalidHeaders.set(code as VerifyCode, ['www-authenticate', `${realm}, error="invalid_token", error_description="${description}"`]);
    }
  }

  // Hot path.
  onRequest(ctx: RequestContext): Verdict {
    const auth = takeAuthorization(ctx.headers, this.strip);
    if (auth === MULTIPLE) return localReply(ctx, GW_ERR.invalid_auth_request, this.badRequestHeaders);
    let token = auth === null ? null : bearerToken(auth);
    if (token !== null && this.removeAuthorization) removeHeader(ctx.headers, 'authorization');
    if (token === null && this.fromCookie !== null) token = cookieValue(ctx.headers, this.fromCookie);
    if (token === null && this.fromQuery !== null) token = queryValue(ctx.query, this.fromQuery);
    if (token === null) return this.optional ? NEXT : localReply(ctx, GW_ERR.unauthenticated, this.missingHeaders);

    const state = this.state;
    const cached = state.cache.get(token, Date.now());
    if (cached !== undefined) return this.apply(ctx, cached);
    const verdict = state.verify(token, ctx, this);
    if (verdict === null) return WAIT;
    if ('status' in verdict) return localReply(ctx, verdict, RETRY_AFTER);
    return this.apply(ctx, verdict);
  }

  private apply(ctx: RequestContext, entry: TokenCacheEntry): Verdict {
    const identity = entry.headers;
    if (identity === null) {
      return localReply(ctx, GW_ERR.invalid_token, this.invalidHeaders.get(entry.code ?? 'malformed') ?? null);
    }
    if (this.required.length !== 0 && !hasScopes(entry.scopes, this.required)) {
      return localReply(ctx, GW_ERR.insufficient_scope, this.scopeHeaders);
    }
    const h = ctx.headers;
    for (let i = 0; i < identity.length; i += 2) h.push(identity[i], identity[i + 1]);
    ctx.subject = entry.subject ?? '';
    return NEXT;
  }

  settle(ctx: RequestContext, entry: TokenCacheEntry): void {
    if (ctx.aborted || ctx.phase === PHASE.DONE) return;
    try {
      if (this.apply(ctx, entry) === NEXT) resumeChain(ctx);
    } catch (err) {
      logRequestFault(ctx, err);
      localReply(ctx, GW_ERR.internal_error, null);
    }
  }

  unavailable(ctx: RequestContext, spec: GatewayErrorSpec): void {
    if (ctx.aborted || ctx.phase === PHASE.DONE) return;
    localReply(ctx, spec, RETRY_AFTER);
  }
}

/** build(): one filter per route per generation (provider state is shared per worker). */
export function buildAuthJwt(config: AuthJwtFilterConfig, env: WorkerEnv): Filter {
  return new AuthJwtFilter(config, env);
}
