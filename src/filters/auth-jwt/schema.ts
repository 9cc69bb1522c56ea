// The `auth-jwt` filter's part of the config schema: the top-level `auth` section (providers,
// verifier pool, token cache) and a route's `auth` key. Each value alone is checked here; the
// rules between values are in compile.ts.
import { z } from 'zod';
import { JWT_ALGORITHMS } from '../../shared/auth-config.js';
import type { FilterMend } from '../../data/chain.js';
import { HEADER_NAME_TOKEN, isMapping, milliseconds, name, NAME_PATTERN, positiveInt, rule, section } from '../../control/schema-kit.js';

/** Headers the gateway or HTTP itself owns: a claim may not be injected as one of them. */
const NOT_IDENTITY_HEADERS = new Set([
  'host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer',
  'expect', 'proxy-connection', 'proxy-authorization', 'authorization', 'cookie',
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-correlation-id',
]);

/** A `claims_to_headers` header name. */
export function checkIdentityHeader(raw: string): string | null {
  if (!HEADER_NAME_TOKEN.test(raw)) return 'must be an HTTP header name (letters, digits and !#$%&\'*+.^`|~-)';
  if (raw.includes('_')) return 'must not contain "_" (some servers read X_User as X-User; use "-")';
  if (NOT_IDENTITY_HEADERS.has(raw.toLowerCase())) return `cannot be ${JSON.stringify(raw)}: the gateway or HTTP owns that header`;
  return null;
}

/** A scope a route requires: an RFC 6749 scope-token (no spaces, quotes or backslashes). */
export function checkScope(raw: string): string | null {
  return /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(raw) ? null : 'must be a scope token: visible ASCII without spaces, " or \\';
}

/** `jwks_uri`: an http(s) URL. */
export function checkJwksUri(raw: string): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'must be an http:// or https:// URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http:// or https:// URL';
  if (url.username !== '' || url.password !== '') return 'must not contain credentials (user:password@)';
  return null;
}

const jwksCacheSchema = section({
  min_ttl_s: positiveInt.default(60),
  max_ttl_s: positiveInt.default(86400),
  default_ttl_s: positiveInt.default(600),
  refetch_cooldown_s: positiveInt.default(30),
  fetch_timeout_ms: milliseconds.default(5000),
});

/** Keys only an `introspection` provider has (compile.ts refuses them on a `jwt` one). */
export const INTROSPECTION_KEYS = [
  'introspection_endpoint', 'client_id', 'client_secret', 'client_secret_file', 'client_auth', 'token_type_hint',
  'cache_ttl_s', 'negative_ttl_s', 'timeout_ms', 'on_unavailable',
] as const;
/** Keys only a `jwt` provider has. */
export const JWT_ONLY_KEYS = ['jwks_uri', 'keys_file', 'keys', 'secret', 'algorithms', 'require_exp', 'jwks_cache'] as const;

const authProviderSchema = section({
  name,
  /** jwt: tokens verified locally; introspection: opaque tokens asked about at an RFC 7662 endpoint. */
  kind: z.enum(['jwt', 'introspection']).default('jwt'),
  /** Required for jwt (compile.ts); optional `iss` check for introspection. */
  issuer: z.string().min(1).optional(),
  audiences: z.array(z.string().min(1)).default([]),
  jwks_uri: z.string().superRefine(rule(checkJwksUri)).optional(),
  keys_file: z.string().min(1).optional(),
  keys: z.array(z.record(z.string(), z.unknown())).min(1).optional(),
  secret: z.string().optional(),
  /** Required for jwt (compile.ts). */
  algorithms: z.array(z.enum(JWT_ALGORITHMS)).min(1).optional(),
  introspection_endpoint: z.string().superRefine(rule(checkJwksUri)).optional(),
  client_id: z.string().min(1).regex(/^[\x20-\x7e]+$/, 'must be visible ASCII').optional(),
  client_secret: z.string().min(1).regex(/^[\x20-\x7e]+$/, 'must be visible ASCII').optional(),
  client_secret_file: z.string().min(1).optional(),
  client_auth: z.enum(['client_secret_basic', 'client_secret_post']).optional(),
  token_type_hint: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'must be a token type name such as access_token').optional(),
  cache_ttl_s: z.number().int().min(0).max(86400).optional(),
  negative_ttl_s: z.number().int().min(0).max(3600).optional(),
  timeout_ms: milliseconds.max(60_000, { error: 'must be at most 60000 ms' }).optional(),
  on_unavailable: z.enum(['deny', 'allow_anonymous']).optional(),
  clock_skew_s: z.number().int().min(0).max(3600).default(30),
  require_exp: z.boolean().optional(), // default true (compile.ts), jwt only
  claims_to_headers: z.record(z.string().min(1), z.string().superRefine(rule(checkIdentityHeader))).default({}),
  from_cookie: z.string().regex(HEADER_NAME_TOKEN, 'must be a cookie name (an HTTP token)').optional(),
  from_query: z.string().regex(/^[A-Za-z0-9._~-]+$/, 'must be a query parameter name ([A-Za-z0-9._~-]+)').optional(),
  forward_token: z.boolean().default(true),
  jwks_cache: jwksCacheSchema.optional(),
});

const authVerifierSchema = section({
  mode: z.enum(['pool', 'inline']).default('pool'),
  threads: z.number().int().min(1).max(64).default(1),
  concurrent_tasks_per_thread: z.number().int().min(1).max(1024).default(16),
  atomics: z.enum(['async', 'sync', 'disabled']).default('async'),
  max_queue: positiveInt.default(256),
  task_timeout_ms: milliseconds.default(1000),
});

const tokenCacheSchema = section({
  entries: z.number().int().min(0).default(10000),
  max_bytes: positiveInt.default(32 * 1024 * 1024),
  max_ttl_s: positiveInt.default(3600),
  negative_ttl_s: z.number().int().min(0).default(30),
});

export const authSchema = section({
  providers: z.array(authProviderSchema).default([]),
  verifier: authVerifierSchema.prefault({}),
  token_cache: tokenCacheSchema.prefault({}),
});

export const routeAuthSchema = section({
  /** One provider, or (`providers`) a jwt and an introspection provider together. */
  provider: z.string().optional(),
  providers: z.array(z.string()).min(1).max(2).optional(),
  scopes: z.array(z.string().superRefine(rule(checkScope))).default([]),
  optional: z.boolean().default(false),
});

/** The route keys this filter adds to `routes[]`. */
export const authRouteKeys = { auth: routeAuthSchema.optional() };
/** The top-level sections this filter adds. */
export const authSections = { auth: authSchema.optional() };

/**
 * One-pass error reporting (FilterMend): a failed provider becomes a placeholder under its name,
 * so routes naming it compile, and their `auth` is suppressed; a failed `auth` section or
 * provider list leaves no provider, and every route's `auth` naming one is suppressed. Another
 * failed key of `auth` (verifier, token_cache) is dropped: its defaults take part in no rule.
 */
export const authMend: FilterMend = {
  sections(config, failed, suppress) {
    const failedProviders = new Set<string>();
    let allProvidersFailed = false;
    for (const [, key, index] of failed) {
      const auth = config.auth;
      if (key === undefined || !isMapping(auth)) {
        delete config.auth;
        allProvidersFailed = true;
      } else if (key !== 'providers') {
        delete auth[key];
      } else if (typeof index !== 'number' || !Array.isArray(auth.providers)) {
        auth.providers = [];
        allProvidersFailed = true;
      } else {
        const providerName = isMapping(auth.providers[index]) ? auth.providers[index].name : undefined;
        if (typeof providerName === 'string') failedProviders.add(providerName);
        const valid = typeof providerName === 'string' && NAME_PATTERN.test(providerName);
        auth.providers[index] = {
          name: valid ? providerName : `.unparsed-provider-${index}`,
          issuer: '-',
          algorithms: ['RS256'],
          jwks_uri: 'http://placeholder.invalid/',
        };
        suppress(['auth', 'providers', index]);
      }
    }
    if (!allProvidersFailed && failedProviders.size === 0) return true;
    if (!Array.isArray(config.routes)) return true;
    config.routes.forEach((route: unknown, index: number) => {
      if (!isMapping(route) || !isMapping(route.auth)) return;
      const named = [route.auth.provider, ...(Array.isArray(route.auth.providers) ? route.auth.providers : [])].filter((p) => p !== undefined);
      if (named.length > 0 && (allProvidersFailed || named.some((p) => failedProviders.has(String(p))))) suppress(['routes', index, 'auth']);
    });
    return true;
  },
};

export type RawAuth = z.output<typeof authSchema>;
export type RawAuthProvider = RawAuth['providers'][number];
export type RawRouteAuth = z.output<typeof routeAuthSchema>;

/**
 * Every identity header (lower case, sorted) some provider injects (`claims_to_headers`):
 * what `auth-jwt` and `identity-strip` remove from every request, so a client cannot send them.
 */
export function identityHeaderNames(auth: { providers: readonly { claims_to_headers: Readonly<Record<string, string>> }[] } | undefined): string[] {
  const names = new Set<string>();
  for (const p of auth?.providers ?? []) for (const header of Object.values(p.claims_to_headers)) names.add(header.toLowerCase());
  return [...names].sort();
}
