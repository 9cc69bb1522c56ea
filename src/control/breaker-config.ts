// The config keys of the circuit breaker, the fallback cache and overload protection
// (docs/configuration.md, docs/resilience.md): their schema fragments, which
// config-schema.ts places under each service, each route (the overrides) and under `server`,
// and their compilation.
import { z } from 'zod';
import type { CompiledBreaker, CompiledFallback, CompiledOverload } from '../shared/breaker-layout.js';
import { milliseconds, positiveInt, section } from './schema-kit.js';

const UNITS: Record<string, number> = { '': 1, B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };
/** Largest cache size accepted: 64 GiB (a typo guard; a worker's heap is far smaller). */
const MAX_CACHE_BYTES = 64 * 1024 ** 3;

/** A byte size: an integer, or a string like "50MB" (B, KB, MB, GB; binary multiples). */
const byteSize = z.union([z.number(), z.string()]).transform((value, ctx) => {
  let bytes: number;
  if (typeof value === 'number') bytes = value;
  else {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)?\s*$/i.exec(value);
    if (m === null) {
      ctx.addIssue({ code: 'custom', continue: true, message: `must be a byte size like 1048576 or "50MB" (units B, KB, MB, GB), got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    bytes = Math.floor(Number(m[1]) * UNITS[(m[2] ?? '').toUpperCase()]);
  }
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > MAX_CACHE_BYTES) {
    ctx.addIssue({ code: 'custom', continue: true, message: `must be a whole number of bytes from 1 to ${MAX_CACHE_BYTES} (64GB)` });
    return z.NEVER;
  }
  return bytes;
});

const seconds = z.number().positive().max(86_400 * 365, { error: 'must be at most a year (31536000 s)' });

/** The defaults of `circuit_breaker` and `fallback.cache`: one place for the service's schema
 * and a route's override (whose keys have none: an unset key is the service's). */
const BREAKER_DEFAULTS = { window_s: 10, min_requests: 20, open_s: 10, half_open_probes: 3 } as const;
const FALLBACK_DEFAULTS = { ttl_s: 300, max_bytes: 50 * 1024 * 1024, max_entry_bytes: 1024 * 1024 } as const;

const breakerKeys = {
  max_concurrent: positiveInt.optional(),
  max_pending: positiveInt.optional(),
  consecutive_failures: positiveInt.optional(),
  failure_rate: z.number().gt(0, { error: 'must be greater than 0' }).max(1, { error: 'must be at most 1 (a share: 0.5 = half)' }).optional(),
  window_s: seconds.optional(),
  min_requests: positiveInt.optional(),
  slow_call_ms: milliseconds.optional(),
  open_s: seconds.optional(),
  half_open_probes: positiveInt.max(10_000).optional(),
};

export const circuitBreakerSchema = section({
  ...breakerKeys,
  window_s: seconds.default(BREAKER_DEFAULTS.window_s),
  min_requests: positiveInt.default(BREAKER_DEFAULTS.min_requests),
  open_s: seconds.default(BREAKER_DEFAULTS.open_s),
  half_open_probes: positiveInt.max(10_000).default(BREAKER_DEFAULTS.half_open_probes),
});

const fallbackCacheKeys = { ttl_s: seconds.optional(), max_bytes: byteSize.optional(), max_entry_bytes: byteSize.optional() };

export const fallbackSchema = section({
  cache: section({
    ttl_s: seconds.default(FALLBACK_DEFAULTS.ttl_s),
    max_bytes: byteSize.default(FALLBACK_DEFAULTS.max_bytes),
    max_entry_bytes: byteSize.default(FALLBACK_DEFAULTS.max_entry_bytes),
  }).prefault({}),
});

/**
 * Keys of a route (config-schema.ts routeSchema spreads them), over its service's key by key
 * (as `retry`): `circuit_breaker` gives the route its own breaker in place of the service's,
 * `fallback` its own cache; `false` turns the service's off for the route
 * (docs/resilience.md#per-route-overrides).
 */
export const breakerRouteKeys = {
  circuit_breaker: z.union([section(breakerKeys), z.literal(false)], {
    error: (issue) => (issue.code === 'invalid_union' ? 'must be a mapping of circuit_breaker keys (the route\'s own breaker), or false (no breaker on this route)' : undefined),
  }).optional(),
  fallback: z.union([section({ cache: section(fallbackCacheKeys).optional() }), z.literal(false)], {
    error: (issue) => (issue.code === 'invalid_union' ? 'must be a mapping { cache: {...} } (the route\'s own fallback cache), or false (no fallback on this route)' : undefined),
  }).optional(),
};

export const overloadSchema = section({
  heap_percent: z.number().gt(0, { error: 'must be greater than 0' }).max(100, { error: 'must be at most 100' }).optional(),
  check_ms: z.number().int().min(10, { error: 'must be at least 10' }).max(60_000).default(250),
});

type BreakerKeys = Partial<z.output<typeof circuitBreakerSchema>>;
type FallbackCacheKeys = Partial<z.output<typeof fallbackSchema>['cache']>;
type RawBreaker = z.output<typeof circuitBreakerSchema>;
type RawFallback = z.output<typeof fallbackSchema>;

/** `over` key by key over `under` over the defaults. */
function breakerOf(over: BreakerKeys, under: BreakerKeys): CompiledBreaker {
  const pick = <K extends keyof BreakerKeys>(key: K) => over[key] ?? under[key];
  return {
    maxConcurrent: pick('max_concurrent') ?? 0,
    maxPending: pick('max_pending') ?? 0,
    consecutiveFailures: pick('consecutive_failures') ?? 0,
    failureRate: pick('failure_rate') ?? 0,
    windowMs: Math.round((pick('window_s') ?? BREAKER_DEFAULTS.window_s) * 1000),
    minRequests: pick('min_requests') ?? BREAKER_DEFAULTS.min_requests,
    slowCallMs: pick('slow_call_ms') ?? 0,
    openMs: Math.max(1, Math.round((pick('open_s') ?? BREAKER_DEFAULTS.open_s) * 1000)),
    halfOpenProbes: pick('half_open_probes') ?? BREAKER_DEFAULTS.half_open_probes,
  };
}

function fallbackOf(over: FallbackCacheKeys, under: FallbackCacheKeys, identityHeaders: readonly string[]): CompiledFallback {
  const maxBytes = over.max_bytes ?? under.max_bytes ?? FALLBACK_DEFAULTS.max_bytes;
  return {
    ttlMs: Math.round((over.ttl_s ?? under.ttl_s ?? FALLBACK_DEFAULTS.ttl_s) * 1000),
    maxBytes,
    maxEntryBytes: Math.min(over.max_entry_bytes ?? under.max_entry_bytes ?? FALLBACK_DEFAULTS.max_entry_bytes, maxBytes),
    keyHeaders: [...new Set(['authorization', 'cookie', ...identityHeaders])],
  };
}

export function compileBreaker(raw: RawBreaker | undefined): CompiledBreaker | null {
  return raw === undefined ? null : breakerOf(raw, {});
}

/** `identityHeaders`: the header names every auth provider injects (auth-jwt's claims_to_headers). */
export function compileFallback(raw: RawFallback | undefined, identityHeaders: readonly string[]): CompiledFallback | null {
  return raw === undefined ? null : fallbackOf(raw.cache, {}, identityHeaders);
}

interface RouteBreakerKeys {
  circuit_breaker?: BreakerKeys | false;
  fallback?: { cache?: FallbackCacheKeys } | false;
}

/**
 * A route's overrides of its service's breaker and fallback (CompiledRoute.circuitBreaker /
 * .fallback): absent = the service's (no override, the route shares the service's chain),
 * false = none on this route, else the route's own, its keys over the service's. `false`
 * where the service has none changes nothing and compiles to absent.
 */
export function compileRouteBreaker(
  route: RouteBreakerKeys, service: { circuit_breaker?: RawBreaker; fallback?: RawFallback }, identityHeaders: readonly string[],
): { circuitBreaker?: CompiledBreaker | false; fallback?: CompiledFallback | false } {
  const out: { circuitBreaker?: CompiledBreaker | false; fallback?: CompiledFallback | false } = {};
  const b = route.circuit_breaker;
  if (b === false) { if (service.circuit_breaker !== undefined) out.circuitBreaker = false; } else if (b !== undefined) out.circuitBreaker = breakerOf(b, service.circuit_breaker ?? {});
  const f = route.fallback;
  if (f === false) { if (service.fallback !== undefined) out.fallback = false; } else if (f !== undefined) out.fallback = fallbackOf(f.cache ?? {}, service.fallback?.cache ?? {}, identityHeaders);
  return out;
}

export function compileOverload(maxConnections: number | undefined, raw: z.output<typeof overloadSchema> | undefined): CompiledOverload | null {
  if (maxConnections === undefined && raw?.heap_percent === undefined) return null;
  return { maxConnections: maxConnections ?? 0, heapPercent: raw?.heap_percent ?? 0, checkMs: raw?.check_ms ?? 250 };
}

/**
 * The header names the client-cert filter injects (`server.tls.client_auth.headers`): identities
 * like auth's claims_to_headers, so part of the fallback key (one client's answer is never
 * served to another certificate).
 */
export function clientCertHeaderNames(headers: { subject: string | false; san: string | false; fingerprint: string | false } | undefined): string[] {
  if (headers === undefined) return [];
  return [headers.subject, headers.san, headers.fingerprint].filter((h): h is string => h !== false).map((h) => h.toLowerCase());
}
