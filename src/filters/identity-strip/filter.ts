// The `identity-strip` filter's data-plane side (index.ts says what it does).
import { NEXT, type Filter, type WorkerEnv } from '../../data/chain.js';
import type { RequestContext } from '../../data/request-context.js';
import type { IdentityStripFilterConfig } from '../../shared/auth-config.js';
import { stripHeaders, stripSet } from '../../data/auth/extract.js';

export function buildIdentityStrip(config: IdentityStripFilterConfig, _env?: WorkerEnv): Filter {
  const strip = stripSet(config.stripHeaders);
  return {
    name: 'identity-strip',
    // Hot path: one pass over the headers, nothing allocated.
    onRequest(ctx: RequestContext) {
      stripHeaders(ctx.headers, strip);
      return NEXT;
    },
  };
}
