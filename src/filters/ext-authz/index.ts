// The `ext-authz` filter: schema.ts (the `ext_authz` section and `routes[].ext_authz`),
// compile.ts (control plane), filter.ts (data plane) with its service client (client.ts: the
// connection pool and the Envoy ext_authz HTTP contract) and decision cache (cache.ts).
// Phase `authz`: after authentication, so the verified identity goes to the service.
import type { FilterFactory } from '../../data/chain.js';
import type { ExtAuthzFilterConfig } from './config.js';
import { extAuthzMend, extAuthzRouteKeys, extAuthzSections } from './schema.js';
import { compileExtAuthz, type ExtAuthzInput } from './compile.js';
import { buildExtAuthz } from './filter.js';

export const extAuthz = {
  name: 'ext-authz',
  phase: 'authz',
  routeKeys: extAuthzRouteKeys,
  sections: extAuthzSections,
  compile: compileExtAuthz,
  build: buildExtAuthz,
  mend: extAuthzMend,
} as const satisfies FilterFactory<ExtAuthzFilterConfig, ExtAuthzInput>;
