// The `identity-strip` filter: on routes without authentication, removes every identity
// header that some auth provider injects (`claims_to_headers`), so no client can pose as an
// authenticated user to a service by sending X-User-Id itself. Routes with `auth-jwt` strip
// the same names in that filter's own header pass. It has no config keys of its own: compile
// derives it from the `auth` section.
import type { FilterCompilation, FilterFactory } from '../../data/chain.js';
import type { IdentityStripFilterConfig } from '../../shared/auth-config.js';
import { buildIdentityStrip } from './filter.js';
import type { RawAuth } from '../auth-jwt/schema.js';
import { clientIdentityHeaders } from '../identity-headers.js';

/** What compile reads of the config. */
interface Input {
  auth?: RawAuth;
  consumers?: readonly { headers: Readonly<Record<string, string>> }[];
  routes: readonly { auth?: object; key_auth?: object }[];
}

export const identityStrip = {
  name: 'identity-strip',
  phase: 'authn',
  routeKeys: {},
  sections: {},
  compile(config: Input): FilterCompilation<IdentityStripFilterConfig> {
    const names = clientIdentityHeaders(config);
    const compiled: IdentityStripFilterConfig | null = names.length === 0 ? null : { stripHeaders: names };
    // auth-jwt and key-auth strip the same names in their own header pass.
    return { route: (index) => (config.routes[index].auth === undefined && config.routes[index].key_auth === undefined ? compiled : null) };
  },
  build: buildIdentityStrip,
} as const satisfies FilterFactory<IdentityStripFilterConfig, Input>;
