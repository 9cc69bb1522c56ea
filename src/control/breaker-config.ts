// The config keys of the circuit breaker, the fallback cache and overload protection
// (docs/configuration.md, docs/resilience.md): their schema fragments, which
// config-schema.ts places under each service and under `server`, and their compilation.
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
      ctx.addIssue({ code: 'custom', message: `must be a byte size like 1048576 or "50MB" (units B, KB, MB, GB), got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    bytes = Math.floor(Number(m[1]) * UNITS[(m[2] ?? '').toUpperCase()]);
  }
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > MAX_CACHE_BYTES) {
    ctx.addIssue({ code: 'custom', message: `must be a whole number of bytes from 1 to ${MAX_CACHE_BYTES} (64GB)` });
    return z.NEVER;
  }
  return bytes;
});

const seconds = z.number().positive().max(86_400 * 365, { error: 'must be at most a year (31536000 s)' });

export const circuitBreakerSchema = section({
  max_concurrent: positiveInt.optional(),
  max_pending: positiveInt.optional(),
  consecutive_failures: positiveInt.optional(),
  failure_rate: z.number().gt(0, { error: 'must be greater than 0' }).max(1, { error: 'must be at most 1 (a share: 0.5 = half)' }).optional(),
  window_s: seconds.default(10),
  min_requests: positiveInt.default(20),
  slow_call_ms: milliseconds.optional(),
  open_s: seconds.default(10),
  half_open_probes: positiveInt.max(10_000).default(3),
});

export const fallbackSchema = section({
  cache: section({
    ttl_s: seconds.default(300),
    max_bytes: byteSize.default(50 * 1024 * 1024),
    max_entry_bytes: byteSize.default(1024 * 1024),
  }).prefault({}),
});

export const overloadSchema = section({
  heap_percent: z.number().gt(0, { error: 'must be greater than 0' }).max(100, { error: 'must be at most 100' }).optional(),
  check_ms: z.number().int().min(10, { error: 'must be at least 10' }).max(60_000).default(250),
});

type RawBreaker = z.output<typeof circuitBreakerSchema>;
type RawFallback = z.output<typeof fallbackSchema>;

export function compileBreaker(raw: RawBreaker | undefined): CompiledBreaker | null {
  if (raw === undefined) return null;
  return {
    maxConcurrent: raw.max_concurrent ?? 0,
    maxPending: raw.max_pending ?? 0,
    consecutiveFailures: raw.consecutive_failures ?? 0,
    failureRate: raw.failure_rate ?? 0,
    windowMs: Math.round(raw.window_s * 1000),
    minRequests: raw.min_requests,
    slowCallMs: raw.slow_call_ms ?? 0,
    openMs: Math.max(1, Math.round(raw.open_s * 1000)),
    halfOpenProbes: raw.half_open_probes,
  };
}

/** `identityHeaders`: the header names every auth provider injects (auth-jwt's claims_to_headers). */
export function compileFallback(raw: RawFallback | undefined, identityHeaders: readonly string[]): CompiledFallback | null {
  if (raw === undefined) return null;
  const c = raw.cache;
  return {
    ttlMs: Math.round(c.ttl_s * 1000),
    maxBytes: c.max_bytes,
    maxEntryBytes: Math.min(c.max_entry_bytes, c.max_bytes),
    keyHeaders: [...new Set(['authorization', 'cookie', ...identityHeaders])],
  };
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
