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
import { NEXT, type Filter, type FilterCompilation, type FilterFactory, type ResponseHead } from '../../data/chain.js';
import type { RequestContext } from '../../data/request-context.js';

export interface ServerTimingConfig { auth: boolean; rateLimit: boolean }

interface Input { routes: readonly { server_timing?: boolean; auth?: unknown; rate_limit?: readonly unknown[] }[] }

function dur(ms: number): string {
  return (Math.round(ms * 100) / 100).toFixed(2);
}

class ServerTimingFilter implements Filter {
  readonly name = 'server-timing';
  constructor(private readonly config: ServerTimingConfig) {}

  onRequest(ctx: RequestContext): typeof NEXT {
    ctx.dispatchTime = performance.now();
    return NEXT;
  }

  onResponse(ctx: RequestContext, head: ResponseHead): void {
    const now = performance.now();
    const upstream = ctx.upstreamFirstByteTime !== 0 && ctx.dispatchTime !== 0 ? ctx.upstreamFirstByteTime - ctx.dispatchTime : 0;
    let value = 'gateway;dur=' + dur(now - ctx.startTime - upstream);
    const authEnd = ctx.authDoneTime !== 0 ? ctx.authDoneTime : 0;
    if (this.config.auth && authEnd !== 0) value += ', auth;dur=' + dur(authEnd - ctx.startTime);
    if (this.config.rateLimit && (authEnd !== 0 || !this.config.auth)) {
      const from = authEnd !== 0 ? authEnd : ctx.startTime;
      value += ', ratelimit;dur=' + dur((ctx.dispatchTime !== 0 ? ctx.dispatchTime : now) - from);
    }
    if (upstream !== 0) value += ', upstream;dur=' + dur(upstream);
    head.set('server-timing', value);
  }
}

const authMark: Filter = {
  name: 'server-timing-auth',
  onRequest(ctx) { ctx.authDoneTime = performance.now(); return NEXT; },
};

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
  build: (config: ServerTimingConfig) => new ServerTimingFilter(config),
} as const satisfies FilterFactory<ServerTimingConfig, Input>;

export const serverTimingAuthMark = {
  name: 'server-timing-auth',
  phase: 'authz',
  routeKeys: {},
  sections: {},
  compile(config: Input): FilterCompilation<Record<string, never>> {
    return { route: (i) => (config.routes[i].server_timing === true && config.routes[i].auth !== undefined ? {} : null) };
  },
  build: () => authMark,
} as const satisfies FilterFactory<Record<string, never>, Input>;
