// The `auth-jwt` filter: schema.ts (the `auth` section and `routes[].auth`), compile.ts
// (control plane), filter.ts (data plane). Its supporting code stays where both planes or
// other parts use it: provider state, token caches and the verifier pool in src/data/auth/,
// the JWKS fetcher in src/control/jwks.ts, JWK primitives in src/shared/jwk.ts.
import type { FilterFactory } from '../../data/chain.js';
import type { AuthJwtFilterConfig } from '../../shared/auth-config.js';
import { authMend, authRouteKeys, authSections } from './schema.js';
import { compileAuthJwt, type AuthJwtInput } from './compile.js';
import { buildAuthJwt } from './filter.js';

export const authJwt = {
  name: 'auth-jwt',
  phase: 'authn',
  routeKeys: authRouteKeys,
  sections: authSections,
  compile: compileAuthJwt,
  build: buildAuthJwt,
  mend: authMend,
} as const satisfies FilterFactory<AuthJwtFilterConfig, AuthJwtInput>;
