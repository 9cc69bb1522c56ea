// The `rate-limit` filter's compile: `rate_limits`, `routes[].rate_limit`,
// `server.trusted_proxies` and the Redis sync settings (src/shared/rate-limit-config.ts), and
// the instance-level runtime (CompiledConfig.rateLimit: the bucket table's size, every limit,
// the Redis sync) that the supervisor and src/control/rate-limit-sync.ts read. The schema
// (schema.ts) checked each value alone; here:
//   - a route names defined limits, each at most once;
//   - a `claim:NAME` limit is used only on routes with `auth` whose provider injects that
//     claim as a header (claims_to_headers): the filter reads the claim from that header,
//     which the auth filter has checked and which no client can spoof;
//   - a `consumer` limit is used only on routes with `key_auth` (the consumer comes from the
//     route's API key); a consumer's own `rate_limit` replaces the limit's rate and burst
//     for its bucket, locally and in Redis (each bucket carries its rate to the sync);
//   - limit names do not collide in the bucket table's 32-bit limit ids.
import {
  DEFAULT_RATE_LIMIT_KEYS, type CompiledRateLimit, type CompiledRateLimitRuntime, type RateLimitFilterConfig, type RateLimitKey,
} from '../../shared/rate-limit-config.js';
import { limitIdOf } from '../../shared/bucket-table.js';
import { redisEndpointOf, type RedisSectionInput } from '../../shared/redis-endpoint.js';
import type { FilterCompilation, FilterCompileContext, FilterConfigPath as KeyPath } from '../../data/chain.js';
import { unknownNameMessage } from '../../control/config-error.js';
import { parsePer, type RawRateLimit } from './schema.js';
import type { RawAuth, RawRouteAuth } from '../auth-jwt/schema.js';

declare module '../../shared/compiled-config.js' {
  interface CompiledFilterRuntimes {
    /** Rate limits and their Redis sync (absent when nothing uses them, and in configs built by hand). */
    rateLimit?: CompiledRateLimitRuntime;
  }
}

/** What compile reads of the config (a claim key reads the route's auth provider). */
export interface RateLimitInput {
  rate_limits: Readonly<Record<string, RawRateLimit>>;
  routes: readonly { rate_limit?: string[]; auth?: RawRouteAuth; key_auth?: object }[];
  auth?: RawAuth;
  server: { trusted_proxies: string[]; rate_limit_keys: number };
  redis?: RedisSectionInput & { key_prefix: string; rate_limit_sync_ms: number; instance_id?: string };
}

function parseKey(raw: string): RateLimitKey {
  if (raw === 'ip') return { kind: 'ip' };
  if (raw === 'consumer') return { kind: 'consumer' };
  const colon = raw.indexOf(':');
  const arg = raw.slice(colon + 1);
  return raw.startsWith('header:') ? { kind: 'header', header: arg.toLowerCase() } : { kind: 'claim', claim: arg, header: '' };
}

/** `"name";q=<burst>;w=<seconds to refill the whole burst>` (IETF httpapi RateLimit-Policy). */
export function policyItem(name: string, rate: number, perMs: number, burst: number): string {
  const window = Math.max(1, Math.ceil((burst * perMs) / rate / 1000));
  return `"${name}";q=${burst};w=${window}`;
}

function compileLimit(name: string, raw: RawRateLimit, synced: boolean): CompiledRateLimit {
  const perMs = parsePer(raw.per);
  if (!perMs.ok) throw new Error(`internal: schema let an invalid per through: ${perMs.error}`);
  const burst = raw.burst ?? raw.rate;
  return {
    name,
    id: limitIdOf(name),
    key: parseKey(raw.key),
    rate: raw.rate,
    perMs: perMs.value,
    burst,
    mode: raw.mode,
    onRedisError: raw.on_redis_error,
    status: raw.status,
    synced,
    policy: policyItem(name, raw.rate, perMs.value, burst),
  };
}

export function compileRateLimits(config: RateLimitInput, { report }: FilterCompileContext): FilterCompilation<RateLimitFilterConfig> {
  const synced = config.redis !== undefined;
  const limits = new Map<string, CompiledRateLimit>();
  const nameById = new Map<number, string>();
  for (const [name, raw] of Object.entries(config.rate_limits)) {
    const limit = compileLimit(name, raw, synced);
    const other = nameById.get(limit.id);
    if (other !== undefined) {
      report(['rate_limits', name], `collides with limit ${JSON.stringify(other)} in the bucket table's limit ids; rename one of them`);
      continue;
    }
    nameById.set(limit.id, name);
    limits.set(name, limit);
  }

  const providers = new Map((config.auth?.providers ?? []).map((p) => [p.name, p]));
  const trustedProxies = config.server.trusted_proxies;

  const runtime: CompiledRateLimitRuntime = {
    tableKeys: config.server.rate_limit_keys,
    limits: [...limits.values()],
    sync: config.redis
      ? { endpoint: redisEndpointOf(config.redis), keyPrefix: config.redis.key_prefix, intervalMs: config.redis.rate_limit_sync_ms, instanceId: config.redis.instance_id ?? null }
      : null,
  };
  const routes = config.routes.map((route, index) => filterFor(route, index));
  return {
    route: (index) => routes[index],
    // Only when used, so configs without rate limiting compile exactly as before.
    runtime: runtime.limits.length > 0 || runtime.sync !== null || runtime.tableKeys !== DEFAULT_RATE_LIMIT_KEYS ? { rateLimit: runtime } : {},
  };

  function filterFor(route: RateLimitInput['routes'][number], index: number): RateLimitFilterConfig | null {
    if (route.rate_limit === undefined) return null;
    const at = (...keys: (string | number)[]): KeyPath => ['routes', index, 'rate_limit', ...keys];
    const chosen: CompiledRateLimit[] = [];
    route.rate_limit.forEach((name, i) => {
      if (route.rate_limit!.indexOf(name) !== i) { report(at(i), `limit ${JSON.stringify(name)} is listed twice`); return; }
      const limit = limits.get(name);
      if (!limit) {
        if (!Object.hasOwn(config.rate_limits, name)) {
          report(at(i), unknownNameMessage('limit', name, Object.keys(config.rate_limits), 'no rate_limits are defined'));
        }
        return;
      }
      if (limit.key.kind === 'consumer' && route.key_auth === undefined) {
        report(at(i), `limit ${JSON.stringify(name)} is keyed by consumer, but the route has no key_auth to find the consumer with`);
        return;
      }
      if (limit.key.kind === 'claim') {
        const claim = limit.key.claim;
        if (route.auth === undefined) {
          report(at(i), `limit ${JSON.stringify(name)} is keyed by claim:${claim}, but the route has no auth to take the claim from`);
          return;
        }
        // Every provider of the route (a jwt and an introspection one may share it) must inject
        // the claim, under one header name.
        let header: string | undefined;
        for (const providerName of route.auth.providers ?? [route.auth.provider]) {
          const provider = providers.get(providerName ?? '');
          if (!provider) return; // reported by the auth compiler
          const its = provider.claims_to_headers[claim]?.toLowerCase();
          if (its === undefined) {
            report(at(i), `limit ${JSON.stringify(name)} is keyed by claim:${claim}: auth provider ${JSON.stringify(provider.name)} must inject it (claims_to_headers: { ${claim}: X-Some-Header })`);
            return;
          }
          if (header !== undefined && its !== header) {
            report(at(i), `limit ${JSON.stringify(name)} is keyed by claim:${claim}, which the route's providers inject as ${header} and ${its}; use one header name`);
            return;
          }
          header = its;
        }
        if (header === undefined) return;
        chosen.push({ ...limit, key: { kind: 'claim', claim, header } });
        return;
      }
      chosen.push(limit);
    });
    if (chosen.length === 0) return null;
    return { limits: chosen, trustedProxies };
  }
}
