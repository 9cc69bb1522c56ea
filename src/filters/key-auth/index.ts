// The `key-auth` filter: schema.ts (the `consumers` section and `routes[].key_auth`),
// compile.ts (control plane; also the instance-level CompiledConfig.consumers), filter.ts
// (data plane) with consumer-table.ts (each worker's key lookup). The admin API's consumer
// endpoints are src/control/admin-consumers.ts; `lobby hash-key` is in src/main.ts.
import type { FilterFactory } from '../../data/chain.js';
import type { KeyAuthFilterConfig } from '../../shared/consumer-config.js';
import { keyAuthMend, keyAuthRouteKeys, keyAuthSections } from './schema.js';
import { compileKeyAuth, type KeyAuthInput } from './compile.js';
import { buildKeyAuth } from './filter.js';

export const keyAuth = {
  name: 'key-auth',
  phase: 'authn',
  routeKeys: keyAuthRouteKeys,
  sections: keyAuthSections,
  compile: compileKeyAuth,
  build: buildKeyAuth,
  mend: keyAuthMend,
} as const satisfies FilterFactory<KeyAuthFilterConfig, KeyAuthInput>;
