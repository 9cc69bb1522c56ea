// The `auth-jwt` filter's compile: `auth.providers`, `auth.verifier`, `auth.token_cache` and
// `routes[].auth` into each route's filter config (src/shared/auth-config.ts). The schema
// (schema.ts) checked each value alone; these are the rules between values:
//   - exactly one key source per provider: jwks_uri, keys_file, keys or secret;
//   - HMAC and public-key algorithms never share a provider (algorithm confusion), `secret`
//     only with HS*, no HS* with jwks_uri, every allowed algorithm has a key that fits
//     (static keys), HMAC secrets as long as the hash (RFC 7518 §3.2), no private keys;
//   - jwks_cache only with jwks_uri, min_ttl_s <= default_ttl_s <= max_ttl_s;
//   - unique provider names; a route names a defined provider.
//   - kind: introspection providers (RFC 7662): an endpoint, a client id and one secret source,
//     no JWT keys; a route lists at most one jwt and one introspection provider, and one with
//     on_unavailable: allow_anonymous only when the route is optional.
// A route with `auth` gets `auth-jwt`; the others get `identity-strip` (src/filters/identity-strip)
// as soon as any provider injects identity headers (so they cannot be spoofed on any route).

import { createHash, createPublicKey, X509Certificate, type JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  isHmacAlgorithm,
  type AuthJwtFilterConfig,
  type CompiledAuthProvider,
  type CompiledAuthRuntime,
  type CompiledIntrospection,
  type CompiledIntrospectionProvider,
  type IntrospectionProviderRef,
  type Jwk,
  type JwtAlgorithm,
} from '../../shared/auth-config.js';
import { hmacMinBytes, jwkAlgorithms } from '../../shared/jwk.js';
import type { FilterCompilation, FilterCompileContext, FilterConfigPath as KeyPath } from '../../data/chain.js';
import { unknownNameMessage } from '../../control/config-error.js';
import { INTROSPECTION_KEYS, JWT_ONLY_KEYS, type RawAuth, type RawAuthProvider, type RawRouteAuth } from './schema.js';
import { clientIdentityHeaders } from '../identity-headers.js';

type Report = (path: KeyPath, message: string) => void;

/** What compile reads of the config. */
export interface AuthJwtInput {
  auth?: RawAuth;
  /** Their metadata headers are stripped too (key-auth). */
  consumers?: readonly { headers: Readonly<Record<string, string>> }[];
  routes: readonly { auth?: RawRouteAuth }[];
}

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth'];

const DEFAULT_RUNTIME: RawAuth = {
  providers: [],
  verifier: { mode: 'pool', threads: 1, concurrent_tasks_per_thread: 16, atomics: 'async', max_queue: 256, task_timeout_ms: 1000 },
  token_cache: { entries: 10000, max_bytes: 32 * 1024 * 1024, max_ttl_s: 3600, negative_ttl_s: 30 },
};

declare module '../../shared/compiled-config.js' {
  interface CompiledFilterRuntimes {
    /** Introspection providers, called by the control plane (src/control/introspection.ts). */
    introspection?: CompiledIntrospection;
  }
}

export function compileAuthJwt(config: AuthJwtInput, { report, baseDir }: FilterCompileContext): FilterCompilation<AuthJwtFilterConfig> {
  const auth = config.auth ?? DEFAULT_RUNTIME;
  const runtime: CompiledAuthRuntime = {
    mode: auth.verifier.mode,
    threads: auth.verifier.threads,
    concurrentTasksPerThread: auth.verifier.concurrent_tasks_per_thread,
    atomics: auth.verifier.atomics,
    maxQueue: auth.verifier.max_queue,
    taskTimeoutMs: auth.verifier.task_timeout_ms,
    cacheEntries: auth.token_cache.entries,
    cacheMaxBytes: auth.token_cache.max_bytes,
    cacheMaxTtlS: auth.token_cache.max_ttl_s,
    negativeTtlS: auth.token_cache.negative_ttl_s,
  };

  type Compiled =
    | { kind: 'jwt'; jwt: CompiledAuthProvider }
    | { kind: 'introspection'; ref: IntrospectionProviderRef; control: CompiledIntrospectionProvider };
  const providers = new Map<string, Compiled | null>();
  auth.providers.forEach((raw, index) => {
    const at = (...keys: (string | number)[]): KeyPath => ['auth', 'providers', index, ...keys];
    if (providers.has(raw.name)) {
      const first = auth.providers.findIndex((p) => p.name === raw.name);
      report(at('name'), `duplicate provider name ${JSON.stringify(raw.name)} (also auth.providers[${first}])`);
      return;
    }
    if (raw.kind === 'introspection') {
      const compiled = compileIntrospectionProvider(raw, at, baseDir, report);
      providers.set(raw.name, compiled === null ? null : { kind: 'introspection', ...compiled });
    } else {
      const jwt = compileProvider(raw, at, baseDir, report);
      providers.set(raw.name, jwt === null ? null : { kind: 'jwt', jwt });
    }
  });

  const stripHeaders = clientIdentityHeaders(config);

  // Every route is compiled now (not when asked), so its problems are reported in this pass.
  const routes = config.routes.map((route, index): AuthJwtFilterConfig | null => {
    const routeAuth = route.auth;
    if (routeAuth === undefined) return null;
    const at = (...keys: (string | number)[]): KeyPath => ['routes', index, 'auth', ...keys];
    if ((routeAuth.provider === undefined) === (routeAuth.providers === undefined)) {
      report(at(), routeAuth.provider === undefined
        ? 'needs provider (one provider) or providers (a jwt and an introspection provider)'
        : 'has provider and providers; use one of them');
      return null;
    }
    const names = routeAuth.provider !== undefined ? [routeAuth.provider] : routeAuth.providers!;
    const namePath = (j: number): KeyPath => (routeAuth.provider !== undefined ? at('provider') : at('providers', j));
    let jwt: CompiledAuthProvider | null = null;
    let introspection: IntrospectionProviderRef | null = null;
    let valid = true;
    names.forEach((providerName, j) => {
      const provider = providers.get(providerName);
      if (provider === undefined) {
        valid = false;
        report(namePath(j), unknownNameMessage('provider', providerName, [...providers.keys()], 'no auth.providers are defined'));
        return;
      }
      if (provider === null) { valid = false; return; } // its problems are reported at auth.providers
      if (provider.kind === 'jwt') {
        if (jwt !== null) { valid = false; report(namePath(j), `${jwt.name} is a jwt provider too; a route takes at most one of each kind (one jwt, one introspection)`); return; }
        jwt = provider.jwt;
      } else {
        if (introspection !== null) { valid = false; report(namePath(j), `${introspection.name} is an introspection provider too; a route takes at most one of each kind (one jwt, one introspection)`); return; }
        introspection = provider.ref;
        if (provider.ref.onUnavailable === 'allow_anonymous' && !routeAuth.optional) {
          valid = false;
          report(namePath(j), `provider ${providerName} sets on_unavailable: allow_anonymous, which only an optional route can use; ` +
            'set optional: true on this route or use a provider with on_unavailable: deny');
        }
      }
    });
    if (!valid) return null;
    return { provider: jwt, introspection, scopes: routeAuth.scopes, optional: routeAuth.optional, stripHeaders, runtime };
  });
  const introspection: CompiledIntrospection = {
    providers: [...providers.values()].flatMap((p) => (p?.kind === 'introspection' ? [p.control] : [])),
    cacheEntries: runtime.cacheEntries,
    cacheMaxBytes: runtime.cacheMaxBytes,
  };
  return { route: (index) => routes[index], ...(introspection.providers.length > 0 ? { runtime: { introspection } } : {}) };
}

/** An introspection provider: the workers' part (no endpoint, no secret) and the control plane's. */
function compileIntrospectionProvider(
  raw: RawAuthProvider,
  at: (...keys: (string | number)[]) => KeyPath,
  baseDir: string,
  report: Report,
): { ref: IntrospectionProviderRef; control: CompiledIntrospectionProvider } | null {
  let valid = true;
  const fail: Report = (path, message) => { valid = false; report(path, message); };
  for (const key of JWT_ONLY_KEYS) {
    if (raw[key] !== undefined) fail(at(key), 'applies only to kind: jwt providers (this one is kind: introspection)');
  }
  if (raw.introspection_endpoint === undefined) fail(at(), 'needs introspection_endpoint (kind: introspection)');
  if (raw.client_id === undefined) fail(at(), 'needs client_id (kind: introspection)');
  let clientSecret = raw.client_secret;
  if (raw.client_secret !== undefined && raw.client_secret_file !== undefined) {
    fail(at('client_secret_file'), 'has client_secret too; use one of them');
  } else if (raw.client_secret_file !== undefined) {
    const path = resolve(baseDir, raw.client_secret_file);
    try {
      clientSecret = readFileSync(path, 'utf8').trim();
      if (clientSecret === '' || !/^[\x20-\x7e]+$/.test(clientSecret)) fail(at('client_secret_file'), `${path} must hold the secret as visible ASCII on one line`);
    } catch (err) {
      fail(at('client_secret_file'), `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  } else if (raw.client_secret === undefined) {
    fail(at(), 'needs client_secret or client_secret_file (kind: introspection)');
  }
  const claimsToHeaders = compileClaimsToHeaders(raw, at, fail);
  if (!valid) return null;
  const timeoutMs = raw.timeout_ms ?? 2000;
  const control: Omit<CompiledIntrospectionProvider, 'fingerprint'> = {
    name: raw.name,
    endpoint: raw.introspection_endpoint!,
    clientId: raw.client_id!,
    clientSecret: clientSecret!,
    clientAuth: raw.client_auth ?? 'client_secret_basic',
    tokenTypeHint: raw.token_type_hint ?? null,
    issuer: raw.issuer ?? null,
    audiences: raw.audiences,
    clockSkewS: raw.clock_skew_s,
    claimsToHeaders,
    cacheTtlS: raw.cache_ttl_s ?? 300,
    negativeTtlS: raw.negative_ttl_s ?? 10,
    timeoutMs,
  };
  const refBase = {
    name: raw.name,
    fromCookie: raw.from_cookie ?? null,
    fromQuery: raw.from_query ?? null,
    forwardToken: raw.forward_token,
    onUnavailable: raw.on_unavailable ?? 'deny',
    waitMs: timeoutMs + INTROSPECTION_WAIT_MARGIN_MS,
  } as const;
  // The secret counts in the fingerprint as a digest only (the fingerprint reaches the workers).
  const fingerprint = createHash('sha256')
    .update(JSON.stringify({ ...control, clientSecret: createHash('sha256').update(control.clientSecret).digest('base64url') }))
    .update(JSON.stringify(refBase))
    .digest('base64url').slice(0, 22);
  return { ref: { ...refBase, fingerprint }, control: { ...control, fingerprint } };
}

/** How much longer than the call's timeout a worker waits for the control plane's answer. */
const INTROSPECTION_WAIT_MARGIN_MS = 1000;

/** claims_to_headers as [claim, lower-case header] pairs; a header filled from two claims is reported. */
function compileClaimsToHeaders(raw: RawAuthProvider, at: (...keys: (string | number)[]) => KeyPath, fail: Report): [string, string][] {
  const claimsToHeaders: [string, string][] = [];
  const claimByHeader = new Map<string, string>();
  for (const [claim, headerName] of Object.entries(raw.claims_to_headers)) {
    const header = headerName.toLowerCase();
    const other = claimByHeader.get(header);
    if (other !== undefined) {
      fail(at('claims_to_headers', claim), `header ${headerName} is already filled from claim ${JSON.stringify(other)}`);
      continue;
    }
    claimByHeader.set(header, claim);
    claimsToHeaders.push([claim, header]);
  }
  return claimsToHeaders;
}

function compileProvider(
  raw: RawAuthProvider,
  at: (...keys: (string | number)[]) => KeyPath,
  baseDir: string,
  report: Report,
): CompiledAuthProvider | null {
  let valid = true;
  const fail: Report = (path, message) => { valid = false; report(path, message); };
  for (const key of INTROSPECTION_KEYS) {
    if (raw[key] !== undefined) fail(at(key), 'applies only to kind: introspection providers');
  }
  if (raw.issuer === undefined) fail(at(), 'needs issuer (kind: jwt)');
  if (raw.algorithms === undefined) fail(at(), 'needs algorithms (kind: jwt)');
  const algorithms = [...new Set(raw.algorithms ?? [])] as JwtAlgorithm[];
  const hmac = algorithms.filter(isHmacAlgorithm);
  const publicKey = algorithms.filter((a) => !isHmacAlgorithm(a));

  const sources = (['jwks_uri', 'keys_file', 'keys', 'secret'] as const).filter((k) => raw[k] !== undefined);
  if (sources.length !== 1) {
    fail(at(), sources.length === 0
      ? 'needs one key source: jwks_uri, keys_file, keys or secret'
      : `has ${sources.join(' and ')}; use exactly one key source`);
  }
  if (hmac.length > 0 && publicKey.length > 0) {
    fail(at('algorithms'), `mixes HMAC (${hmac.join(', ')}) and public-key algorithms (${publicKey.join(', ')}): ` +
      'a provider accepting both invites algorithm confusion; define two providers');
  }

  let keys: Jwk[] | null = null;
  if (raw.secret !== undefined) {
    if (publicKey.length > 0) fail(at('secret'), `is only for HS256/HS384/HS512, but algorithms lists ${publicKey.join(', ')}`);
    const bytes = Buffer.byteLength(raw.secret, 'utf8');
    for (const alg of hmac) {
      const min = hmacMinBytes(alg);
      if (bytes < min) {
        fail(at('secret'), `is ${bytes} bytes; ${alg} needs a secret of at least ${min} bytes (RFC 7518 §3.2)`);
        break;
      }
    }
    keys = [{ kty: 'oct', k: Buffer.from(raw.secret, 'utf8').toString('base64url') }];
  }
  if (raw.jwks_uri !== undefined && hmac.length > 0) {
    fail(at('algorithms'), `${hmac.join(', ')} need a shared secret (secret, or oct keys in keys/keys_file); ` +
      'a JWKS endpoint publishes public keys only');
  }
  if (raw.keys !== undefined) keys = checkStaticKeys(raw.keys as Jwk[], (j) => at('keys', j), fail);
  if (raw.keys_file !== undefined) {
    const loaded = loadKeysFile(resolve(baseDir, raw.keys_file));
    if ('error' in loaded) fail(at('keys_file'), loaded.error);
    else keys = checkStaticKeys(loaded.keys, () => at('keys_file'), fail, true);
  }
  if (keys !== null && valid && raw.secret === undefined) {
    for (const alg of algorithms) {
      const fits = keys.some((k) => { const algs = jwkAlgorithms(k); return !('error' in algs) && algs.includes(alg); });
      if (!fits) {
        const have = keys.map((k) => `${k.kty}${k.crv ? ` ${k.crv}` : ''}${k.kid ? ` (kid ${k.kid})` : ''}`).join(', ');
        fail(at('algorithms'), `${alg} has no key that can verify it (keys: ${have})`);
      }
    }
  }

  if (raw.jwks_cache !== undefined && raw.jwks_uri === undefined) fail(at('jwks_cache'), 'applies only with jwks_uri');
  const cache = raw.jwks_cache ?? { min_ttl_s: 60, max_ttl_s: 86400, default_ttl_s: 600, refetch_cooldown_s: 30, fetch_timeout_ms: 5000 };
  if (cache.min_ttl_s > cache.max_ttl_s) fail(at('jwks_cache', 'min_ttl_s'), `${cache.min_ttl_s} is more than max_ttl_s ${cache.max_ttl_s}`);
  else if (cache.default_ttl_s < cache.min_ttl_s || cache.default_ttl_s > cache.max_ttl_s) {
    fail(at('jwks_cache', 'default_ttl_s'), `must be between min_ttl_s ${cache.min_ttl_s} and max_ttl_s ${cache.max_ttl_s}`);
  }

  const claimsToHeaders = compileClaimsToHeaders(raw, at, fail);

  if (!valid) return null;
  const compiled: Omit<CompiledAuthProvider, 'fingerprint'> = {
    name: raw.name,
    spec: {
      issuer: raw.issuer!,
      audiences: raw.audiences,
      algorithms,
      clockSkewS: raw.clock_skew_s,
      requireExp: raw.require_exp ?? true,
      claimsToHeaders,
    },
    keys: raw.jwks_uri === undefined ? keys : null,
    jwks: raw.jwks_uri === undefined ? null : {
      uri: raw.jwks_uri,
      minTtlS: cache.min_ttl_s,
      maxTtlS: cache.max_ttl_s,
      defaultTtlS: cache.default_ttl_s,
      refetchCooldownS: cache.refetch_cooldown_s,
      fetchTimeoutMs: cache.fetch_timeout_ms,
    },
    fromCookie: raw.from_cookie ?? null,
    fromQuery: raw.from_query ?? null,
    forwardToken: raw.forward_token,
  };
  const fingerprint = createHash('sha256').update(JSON.stringify(compiled)).digest('base64url').slice(0, 22);
  return { ...compiled, fingerprint };
}

/** Checks static JWKs (public, usable); returns them without private members, or null after reporting. */
function checkStaticKeys(
  keys: readonly Jwk[],
  pathOf: (index: number) => KeyPath,
  fail: Report,
  inFile = false,
): Jwk[] | null {
  let ok = true;
  keys.forEach((jwk, j) => {
    const prefix = !inFile ? '' : `key ${j}${typeof jwk.kid === 'string' ? ` (kid ${jwk.kid})` : ''}: `;
    const secretMembers = PRIVATE_JWK_MEMBERS.filter((m) => m in jwk);
    if (secretMembers.length > 0 && jwk.kty !== 'oct') {
      ok = false;
      fail(pathOf(j), `${prefix}contains private key material (${secretMembers.join(', ')}); list public keys only`);
      return;
    }
    const algs = jwkAlgorithms(jwk);
    if ('error' in algs) { ok = false; fail(pathOf(j), `${prefix}${algs.error}`); }
  });
  return ok ? keys.map((k) => ({ ...k })) : null;
}

/** Reads a keys_file: a JWKS document, a single JWK, or PEM public keys / certificates. */
function loadKeysFile(path: string): { keys: Jwk[] } | { error: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { error: `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let doc: unknown;
    try {
      doc = JSON.parse(trimmed);
    } catch (err) {
      return { error: `${path} is not valid JSON (${(err as Error).message})` };
    }
    const keys = (doc as { keys?: unknown }).keys ?? [doc];
    if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === 'object' && k !== null && !Array.isArray(k))) {
      return { error: `${path}: expected a JWKS ({"keys": [...]}) or one JWK` };
    }
    return { keys: keys as Jwk[] };
  }
  const blocks = trimmed.match(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g);
  if (!blocks) return { error: `${path} holds neither a JWKS (JSON) nor PEM public keys` };
  const keys: Jwk[] = [];
  for (const block of blocks) {
    const kind = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(block)![1];
    if (kind.includes('PRIVATE')) return { error: `${path} contains a private key (${kind}); give the public key only` };
    try {
      const key = kind === 'CERTIFICATE' ? new X509Certificate(block).publicKey : createPublicKey(block);
      keys.push(key.export({ format: 'jwk' }) as JsonWebKey as Jwk);
    } catch (err) {
      return { error: `${path}: cannot read the ${kind} (${(err as Error).message})` };
    }
  }
  return { keys };
}
