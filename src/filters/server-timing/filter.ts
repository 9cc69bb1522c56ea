// The `server-timing` filters' data-plane side (index.ts says what they do).
import { NEXT, type Filter, type ResponseHead } from '../../data/chain.js';
import type { RequestContext } from '../../data/request-context.js';

export interface ServerTimingConfig { auth: boolean; rateLimit: boolean }

function dur(ms: number): string {
  return (Math.round(ms * 100) / 100).toFixed(2);
}

export class ServerTimingFilter implements Filter {
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

export const authMark: Filter = {
  name: 'server-timing-auth',
  onRequest(ctx) { ctx.authDoneTime = performance.now(); return NEXT; },
};

export const buildServerTiming = (config: ServerTimingConfig): Filter => new ServerTimingFilter(config);
export const buildServerTimingAuthMark = (): Filter => authMark;
