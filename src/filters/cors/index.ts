// The `cors` filter: schema.ts (`cors` at the top level and under routes[]), compile.ts (rules
// between values, precomputed header blocks), filter.ts (data plane), preflight-route.ts (how a
// preflight finds the route of the request it asks about, called from src/data/server.ts).
import type { FilterFactory } from '../../data/chain.js';
import { corsRouteKeys, corsSections } from './schema.js';
import { compileCors, type CorsFilterConfig, type CorsInput } from './compile.js';
import { buildCors } from './filter.js';

export const cors = {
  name: 'cors',
  phase: 'edge',
  routeKeys: corsRouteKeys,
  sections: corsSections,
  compile: compileCors,
  build: buildCors,
} as const satisfies FilterFactory<CorsFilterConfig, CorsInput>;
