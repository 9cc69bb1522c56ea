// The `identity-strip` filter: on routes without authentication, removes every identity
// header that some auth provider injects (`claims_to_headers`), so no client can pose as
// an authenticated user to a service by sending X-User-Id itself. Routes with `auth-jwt`
// strip the same names in that filter's own header pass.
import { NEXT, type FilterFactory } from '../chain.js';
import type { IdentityStripFilterConfig } from '../../shared/auth-config.js';
import { stripHeaders, stripSet } from '../auth/extract.js';

export const identityStrip: FilterFactory<IdentityStripFilterConfig> = {
  name: 'identity-strip',
  build(config) {
    const strip = stripSet(config.stripHeaders);
    return {
      name: 'identity-strip',
      // Hot path: one pass over the headers, nothing allocated.
      onRequest(ctx) {
        stripHeaders(ctx.headers, strip);
        return NEXT;
      },
    };
  },
};
