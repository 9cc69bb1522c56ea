// `routes[].server_timing: true`: a `Server-Timing` response header (off by default) with the
// gateway's own time, authentication, rate limiting and the upstream (time to its response
// head), in milliseconds:
//   Server-Timing: gateway;dur=0.21, auth;dur=0.05, ratelimit;dur=0.01, upstream;dur=3.40
// Two filters of one unit: `server-timing-auth` (phase authz, only on routes with auth) marks
// the end of authentication; `server-timing` (phase transform) marks when the request leaves
// for the upstream and writes the header in onResponse (upstream responses and local replies).
// Durations: auth from the request's arrival to the end of authn; ratelimit from there to the
// upstream dispatch (or the 429); upstream from the dispatch to the response head; gateway is
// the rest of the time until the head is written.
import { z } from 'zod';
import type { FilterCompilation, FilterFactory } from '../../data/chain.js';
import { buildServerTiming, buildServerTimingAuthMark, type ServerTimingConfig } from './filter.js';

interface Input { routes: readonly { server_timing?: boolean; auth?: unknown; rate_limit?: readonly unknown[] }[] }

export const serverTiming = {
  name: 'server-timing',
  phase: 'transform',
  routeKeys: { server_timing: z.boolean().optional() },
  sections: {},
  compile(config: Input): FilterCompilation<ServerTimingConfig> {
    return {
      route: (i) => {
        const r = config.routes[i];
        return r.server_timing === true ? { auth: r.auth !== undefined, rateLimit: (r.rate_limit?.length ?? 0) > 0 } : null;
      },
    };
  },
  build: buildServerTiming,
} as const satisfies FilterFactory<ServerTimingConfig, Input>;

export const serverTimingAuthMark = {
  name: 'server-timing-auth',
  phase: 'authz',
  routeKeys: {},
  sections: {},
  compile(config: Input): FilterCompilation<Record<string, never>> {
    return { route: (i) => (config.routes[i].server_timing === true && config.routes[i].auth !== undefined ? {} : null) };
  },
  build: buildServerTimingAuthMark,
} as const satisfies FilterFactory<Record<string, never>, Input>;
