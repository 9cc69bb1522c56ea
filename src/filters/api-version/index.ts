// The `api-version` filter (docs/configuration.md#api-versioning): schema.ts (the `versioning`
// section, `routes[].version`, the `match.version` constraint), compile.ts (control plane,
// also CompiledConfig.versioning and the route table's version masks), filter.ts (data plane:
// Vary and deprecation headers). Choosing a route by version is the route table's job
// (src/shared/route-table.ts VERSION_MASK) and finding the request's version happens before
// routing (src/data/api-version.ts).
import type { FilterFactory } from '../../data/chain.js';
import { apiVersionRouteKeys, apiVersionSections } from './schema.js';
import { compileApiVersion, type ApiVersionFilterConfig, type ApiVersionInput } from './compile.js';
import { buildApiVersion } from './filter.js';

export const apiVersion = {
  name: 'api-version',
  phase: 'edge',
  routeKeys: apiVersionRouteKeys,
  sections: apiVersionSections,
  compile: compileApiVersion,
  build: buildApiVersion,
} as const satisfies FilterFactory<ApiVersionFilterConfig, ApiVersionInput>;
