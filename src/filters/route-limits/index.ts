// The `route-limits` filter (issue 16): a route's `limits` (max_body_bytes, max_header_bytes,
// max_url_bytes, max_headers) override the server-wide `server.limits` for that route. The front
// door (src/data/front-door.ts) checks the largest limit any route allows before routing
// (effectiveServerLimits, called by compile.ts); this filter then holds each route to its own,
// answering as the front door does: 413, 431, 414. No route with `limits`: no filter anywhere.
import { z } from 'zod';
import type { FilterCompilation, FilterFactory } from '../../data/chain.js';
import { positiveInt, section } from '../../control/schema-kit.js';
import type { CompiledLimits } from '../../shared/compiled-config.js';
import { buildRouteLimits, type RouteLimitsConfig } from './filter.js';

const limitsSchema = section({
  max_body_bytes: positiveInt.optional(),
  max_header_bytes: positiveInt.optional(),
  max_url_bytes: positiveInt.optional(),
  max_headers: positiveInt.max(10_000).optional(),
});
type RouteLimits = z.infer<typeof limitsSchema>;

interface ServerLimitsInput { max_url_bytes: number; max_header_bytes: number; max_body_bytes: number }
export interface RouteLimitsInput {
  server: { limits: ServerLimitsInput };
  routes: readonly { limits?: RouteLimits }[];
}

/** The front door's limits: the server's, raised to the largest a route allows. */
export function effectiveServerLimits(server: ServerLimitsInput, routes: readonly { limits?: RouteLimits }[]): CompiledLimits {
  const most = (own: number, key: 'max_url_bytes' | 'max_header_bytes' | 'max_body_bytes') =>
    routes.reduce((m, r) => Math.max(m, r.limits?.[key] ?? 0), own);
  return {
    maxUrlBytes: most(server.max_url_bytes, 'max_url_bytes'),
    maxHeaderBytes: most(server.max_header_bytes, 'max_header_bytes'),
    maxBodyBytes: most(server.max_body_bytes, 'max_body_bytes'),
  };
}

export function compileRouteLimits(config: RouteLimitsInput): FilterCompilation<RouteLimitsConfig> {
  const s = config.server.limits;
  const front = effectiveServerLimits(s, config.routes);
  const raised = front.maxBodyBytes > s.max_body_bytes || front.maxHeaderBytes > s.max_header_bytes || front.maxUrlBytes > s.max_url_bytes;
  return {
    route(index) {
      const own = config.routes[index].limits;
      // A route without its own limits needs the filter only when another route raised the front door's.
      if (own === undefined && !raised) return null;
      return {
        maxBodyBytes: own?.max_body_bytes ?? s.max_body_bytes,
        maxHeaderBytes: own?.max_header_bytes ?? s.max_header_bytes,
        maxUrlBytes: own?.max_url_bytes ?? s.max_url_bytes,
        maxHeaders: own?.max_headers ?? 0,
      };
    },
  };
}

export const routeLimits = {
  name: 'route-limits',
  phase: 'edge',
  routeKeys: { limits: limitsSchema.optional() },
  sections: {},
  compile: compileRouteLimits,
  build: buildRouteLimits,
} as const satisfies FilterFactory<RouteLimitsConfig, RouteLimitsInput>;
