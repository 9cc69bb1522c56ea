// The `route-limits` filter's data-plane side (index.ts says what it does).
import { NEXT, localReply, type Filter, type Verdict } from '../../data/chain.js';
import type { RequestContext } from '../../data/request-context.js';
import { GW_ERR } from '../../shared/errors.js';

export interface RouteLimitsConfig {
  readonly maxBodyBytes: number;
  readonly maxHeaderBytes: number;
  readonly maxUrlBytes: number;
  /** 0: no count limit. */
  readonly maxHeaders: number;
}

class RouteLimitsFilter implements Filter {
  readonly name = 'route-limits';
  constructor(private readonly c: RouteLimitsConfig) {}

  onRequest(ctx: RequestContext): Verdict {
    const c = this.c;
    if (ctx.headerBytes > c.maxHeaderBytes) return localReply(ctx, GW_ERR.request_header_fields_too_large);
    // The request line's target as the front door measured it (path + ? + query).
    if (ctx.requestTargetBytes > c.maxUrlBytes) return localReply(ctx, GW_ERR.uri_too_long);
    if (c.maxHeaders > 0 && ctx.headerCount > c.maxHeaders) return localReply(ctx, GW_ERR.request_header_fields_too_large);
    if (ctx.contentLength > c.maxBodyBytes) return localReply(ctx, GW_ERR.payload_too_large);
    // A streamed (chunked) body is counted as it arrives (server.ts streamBody).
    ctx.bodyLimit = c.maxBodyBytes;
    return NEXT;
  }
}

export const buildRouteLimits = (config: RouteLimitsConfig): Filter => new RouteLimitsFilter(config);
