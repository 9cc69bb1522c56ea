// The `rate-limit` filter: schema.ts (the `rate_limits` section and `routes[].rate_limit`),
// compile.ts (control plane; also the instance-level CompiledConfig.rateLimit), filter.ts
// (data plane). Its supporting code stays shared: the bucket table (src/shared/bucket-table.ts)
// and the Redis sync of the control plane (src/control/rate-limit-sync.ts).
import type { FilterFactory } from '../../data/chain.js';
import type { RateLimitFilterConfig } from '../../shared/rate-limit-config.js';
import { rateLimitMend, rateLimitRouteKeys, rateLimitSections } from './schema.js';
import { compileRateLimits, type RateLimitInput } from './compile.js';
import { buildRateLimit } from './filter.js';

export const rateLimit = {
  name: 'rate-limit',
  phase: 'policy',
  routeKeys: rateLimitRouteKeys,
  sections: rateLimitSections,
  compile: compileRateLimits,
  build: buildRateLimit,
  mend: rateLimitMend,
} as const satisfies FilterFactory<RateLimitFilterConfig, RateLimitInput>;
