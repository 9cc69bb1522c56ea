// Compiled form of the `auth` section and of `routes[].auth`: what the config compiler
// (src/filters/auth-jwt/compile.ts) hands the `auth-jwt` and `identity-strip` filters, the
// JWKS manager (src/control/jwks.ts) and the verification pool (workers/jwt-verify.ts).
// Plain, structured-cloneable data.

/** Signature algorithms Lobby verifies. `none` is not one of them, ever. */
export const JWT_ALGORITHMS = [
  'HS256', 'HS384', 'HS512',
  'RS256', 'RS384', 'RS512',
  'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512',
  'EdDSA',
] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

export function isHmacAlgorithm(alg: string): alg is 'HS256' | 'HS384' | 'HS512' {
  return alg === 'HS256' || alg === 'HS384' || alg === 'HS512';
}

/** A public JWK (or an `oct` key for HS*), as found in a JWKS document. */
export interface Jwk {
  kty: string;
  kid?: string;
  alg?: string;
  use?: string;
  key_ops?: string[];
  crv?: string;
  n?: string;
  e?: string;
  x?: string;
  y?: string;
  k?: string;
  [member: string]: unknown;
}

/** What the verifier checks, independent of the keys (which may change at run time). */
export interface VerifierSpec {
  issuer: string;
  /** Accepted `aud` values; empty = `aud` is not checked. */
  audiences: string[];
  algorithms: JwtAlgorithm[];
  clockSkewS: number;
  requireExp: boolean;
  /** [claim, lower-case header name] pairs injected upstream. */
  claimsToHeaders: [string, string][];
}

/** A JWKS endpoint and how its document is cached (one fetcher per URI per instance). */
export interface CompiledJwksSource {
  uri: string;
  minTtlS: number;
  maxTtlS: number;
  defaultTtlS: number;
  refetchCooldownS: number;
  fetchTimeoutMs: number;
}

export interface CompiledAuthProvider {
  name: string;
  /** Changes whenever anything below changes: per-worker state (token cache) is keyed by it. */
  fingerprint: string;
  spec: VerifierSpec;
  /** Static keys (`keys_file`, `keys`, or `secret` as an `oct` key); null when `jwks` is set. */
  keys: Jwk[] | null;
  jwks: CompiledJwksSource | null;
  /** Also look for the token in this cookie / query parameter (after `Authorization`). */
  fromCookie: string | null;
  fromQuery: string | null;
  /** Keep the `Authorization` header on the forwarded request. */
  forwardToken: boolean;
}

/** Where signatures are checked and how the per-worker token cache behaves. */
export interface CompiledAuthRuntime {
  /** `pool`: a piscina pool per data-plane worker; `inline`: on the worker's event loop. */
  mode: 'pool' | 'inline';
  threads: number;
  concurrentTasksPerThread: number;
  atomics: 'async' | 'sync' | 'disabled';
  maxQueue: number;
  taskTimeoutMs: number;
  cacheEntries: number;
  /** Bytes the verified-token cache may hold (its own accounting); the refused-token cache a quarter. */
  cacheMaxBytes: number;
  cacheMaxTtlS: number;
  negativeTtlS: number;
}

/**
 * An introspection provider (RFC 7662) as the workers see it: no endpoint, no credentials
 * (the control plane's src/control/introspection.ts calls the authorization server).
 */
export interface IntrospectionProviderRef {
  name: string;
  /** Changes whenever the provider's settings change: per-worker and instance caches are keyed by it. */
  fingerprint: string;
  fromCookie: string | null;
  fromQuery: string | null;
  forwardToken: boolean;
  /** The authorization server cannot answer: refuse (503), or let an `optional` route go on anonymously. */
  onUnavailable: 'deny' | 'allow_anonymous';
  /** How long a worker waits for the control plane's answer before answering 503 (the call's timeout plus a margin). */
  waitMs: number;
}

/** An introspection provider as the control plane calls it (CompiledConfig.introspection). */
export interface CompiledIntrospectionProvider {
  name: string;
  fingerprint: string;
  endpoint: string;
  clientId: string;
  clientSecret: string;
  clientAuth: 'client_secret_basic' | 'client_secret_post';
  tokenTypeHint: string | null;
  /** Required `iss` of an active token; null = not checked. */
  issuer: string | null;
  /** Accepted `aud` values; empty = `aud` is not checked. */
  audiences: string[];
  clockSkewS: number;
  /** [claim, lower-case header name] pairs injected upstream. */
  claimsToHeaders: [string, string][];
  cacheTtlS: number;
  negativeTtlS: number;
  timeoutMs: number;
}

/** Instance-level introspection settings: the providers, and the bounds of the shared result cache. */
export interface CompiledIntrospection {
  providers: CompiledIntrospectionProvider[];
  cacheEntries: number;
  cacheMaxBytes: number;
}

/** Config of the `auth-jwt` filter of one route. */
export interface AuthJwtFilterConfig {
  /** The route's JWT provider (tokens shaped as a JWS compact serialization), or null. */
  provider: CompiledAuthProvider | null;
  /** The route's introspection provider (every other token; every token without a JWT provider), or null. */
  introspection: IntrospectionProviderRef | null;
  /** Every scope listed must be granted by the token. */
  scopes: string[];
  /** No token: go on anonymously (an invalid token is still rejected). */
  optional: boolean;
  /** Lower-case identity header names removed from every request (all providers' claims_to_headers). */
  stripHeaders: string[];
  runtime: CompiledAuthRuntime;
}

/** Config of the `identity-strip` filter (routes without auth). */
export interface IdentityStripFilterConfig {
  stripHeaders: string[];
}

/** Why an introspected token is refused (the worker answers 401 invalid_token with it). */
export type IntrospectionRefusal = 'inactive' | 'expired' | 'not_yet_valid' | 'bad_issuer' | 'bad_audience' | 'bad_claims' | 'malformed';

/**
 * The control plane's answer about one token (src/control/introspection.ts), as the
 * `introspected` message carries it. `expiresAt` (ms since the epoch) is absolute, computed
 * once by the control plane, so a worker's cached copy dies when the shared one does.
 */
export type IntrospectionOutcome =
  | { outcome: 'active'; headers: string[]; scopes: string[]; subject: string; expiresAt: number }
  | { outcome: 'refused'; code: IntrospectionRefusal; expiresAt: number }
  /** The authorization server did not answer usably (down, timeout, 5xx, bad JSON): not cached. */
  | { outcome: 'unavailable' };
