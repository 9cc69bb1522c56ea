// Compiled rate limits (src/filters/rate-limit/compile.ts → the `rate-limit` filter and the
// control plane's sync). Plain, structured-cloneable data.
import type { RedisEndpoint } from './redis-endpoint.js';

export type RateLimitKey =
  | { kind: 'ip' }
  /** The consumer key-auth found for the request's API key (ctx.consumer; '' without one). */
  | { kind: 'consumer' }
  /** A request header (lower-case name), the first occurrence. */
  | { kind: 'header'; header: string }
  /** A JWT claim, read from the identity header the route's auth provider injects for it. */
  | { kind: 'claim'; claim: string; header: string };

export type RateLimitMode = 'enforce' | 'report';
export type OnRedisError = 'allow' | 'local' | 'deny';

export interface CompiledRateLimit {
  name: string;
  /** Table id: nonzero 32-bit hash of the name (src/shared/bucket-table.ts limitIdOf). */
  id: number;
  key: RateLimitKey;
  /** `rate` tokens per `perMs` milliseconds. */
  rate: number;
  perMs: number;
  /** Bucket capacity (defaults to rate). */
  burst: number;
  mode: RateLimitMode;
  onRedisError: OnRedisError;
  /** Status of a refusal (default 429). */
  status: number;
  /** Synced through Redis (a `redis` section exists). */
  synced: boolean;
  /** The RateLimit-Policy item, e.g. `"per-ip";q=200;w=2`. */
  policy: string;
}

/** The config of one route's `rate-limit` filter. */
export interface RateLimitFilterConfig {
  /** In the route's order; each must admit the request. */
  limits: CompiledRateLimit[];
  /** `server.trusted_proxies` CIDRs (client IP from X-Forwarded-For when the sender is one). */
  trustedProxies: string[];
}

/** Instance-wide rate-limit settings (CompiledConfig.rateLimit). */
export interface CompiledRateLimitRuntime {
  /** Capacity of the bucket table (server.rate_limit_keys); fixed at start. */
  tableKeys: number;
  limits: CompiledRateLimit[];
  /** Redis sync settings, or null without a `redis` section. */
  sync: { endpoint: RedisEndpoint; keyPrefix: string; intervalMs: number; instanceId: string | null } | null;
}

/** Entries of the shared bucket table when `server.rate_limit_keys` is not set. */
export const DEFAULT_RATE_LIMIT_KEYS = 65_536;
