// The `rate-limit` filter's part of the config schema: the top-level `rate_limits` section
// (named limits) and a route's `rate_limit` list. `server.trusted_proxies`,
// `server.rate_limit_keys` and `redis` are instance settings and stay in config-schema.ts.
import { z } from 'zod';
import type { FilterMend } from '../../data/chain.js';
import { GATEWAY_OWNED_REQUEST_HEADERS } from '../../shared/http-syntax.js';
import { fail, HEADER_NAME_TOKEN, isMapping, MAX_TIMER_MS, mendNamedEntry, name, ok, rule, section, type Parsed } from '../../control/schema-kit.js';

/** A limit's `key`: `ip`, `consumer`, `header:NAME` or `claim:NAME`. */
export function checkRateLimitKey(raw: string): string | null {
  if (raw === 'ip' || raw === 'consumer') return null;
  const colon = raw.indexOf(':');
  const kind = colon < 0 ? raw : raw.slice(0, colon);
  const arg = colon < 0 ? '' : raw.slice(colon + 1);
  if (kind === 'header') {
    if (!HEADER_NAME_TOKEN.test(arg)) return 'header: needs a header name, like "header:x-api-key"';
    // Such a header never reaches the filter, so every client would share one bucket.
    if (GATEWAY_OWNED_REQUEST_HEADERS.has(arg.toLowerCase())) {
      return `header:${arg} cannot be a key: the gateway handles that header itself and no filter sees it (use "ip" for the client address)`;
    }
    return null;
  }
  if (kind === 'claim') {
    return /^[A-Za-z0-9_.:-]+$/.test(arg) ? null : 'claim: needs a claim name, like "claim:sub"';
  }
  return 'must be "ip", "consumer", "header:NAME" or "claim:NAME"';
}

/** `per`: `1s`, `500ms`, `1m`, `1h`, `1d` or an integer of milliseconds → ms. */
export function parsePer(raw: string | number): Parsed<number> {
  if (typeof raw === 'number') {
    return Number.isInteger(raw) && raw > 0 && raw <= MAX_TIMER_MS ? ok(raw) : fail('must be a positive integer of milliseconds or a duration like "1s", "1m"');
  }
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(raw.trim());
  if (!m || Number(m[1]) === 0) return fail('must be a duration like "1s", "500ms", "1m", "1h" or "1d"');
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  const ms = Number(m[1]) * unit;
  return ms <= MAX_TIMER_MS ? ok(ms) : fail('must be at most 24 days');
}

export const rateLimitSchema = section({
  key: z.string().superRefine(rule(checkRateLimitKey)),
  rate: z.number().int().positive().max(1_000_000_000),
  per: z.union([z.string(), z.number()]).superRefine((value, ctx) => {
    const parsed = parsePer(value);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.error });
  }).default('1s'),
  burst: z.number().int().positive().max(1_000_000_000).optional(),
  mode: z.enum(['enforce', 'report']).default('enforce'),
  on_redis_error: z.enum(['allow', 'local', 'deny']).default('local'),
  status: z.number().int().min(400).max(599).default(429),
});

/** The route keys this filter adds to `routes[]`. */
export const rateLimitRouteKeys = {
  rate_limit: z.array(name).min(1, { error: 'must name at least one limit (omit rate_limit for none)' }).optional(),
};
/** The top-level sections this filter adds. */
export const rateLimitSections = { rate_limits: z.record(name, rateLimitSchema).default({}) };

export type RawRateLimit = z.output<typeof rateLimitSchema>;

/**
 * One-pass error reporting (FilterMend): a failed limit becomes a placeholder under its name, so
 * routes naming it compile, and the route's references to it are suppressed; a route's
 * `rate_limit` is suppressed with its `auth` (claim limits need it).
 */
export const rateLimitMend: FilterMend = {
  sections(config, failed, suppress) {
    const failedNames = new Set<string>();
    for (const path of failed) mendNamedEntry(config, path, failedNames, suppress, () => ({ key: 'ip', rate: 1 }));
    if (failedNames.size === 0 || !Array.isArray(config.routes)) return true;
    config.routes.forEach((route: unknown, index: number) => {
      if (!isMapping(route) || !Array.isArray(route.rate_limit)) return;
      route.rate_limit.forEach((limit: unknown, i: number) => {
        if (failedNames.has(String(limit))) suppress(['routes', index, 'rate_limit', i]);
      });
    });
    return true;
  },
  routeKeyReads: { rate_limit: ['auth'] },
};
