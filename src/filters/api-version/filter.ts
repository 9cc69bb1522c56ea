// The `api-version` filter's data-plane side, on every route that has match.version or a
// version of its own: a path-versioned route stamps its version on the request (onRequest);
// every response then says which request headers chose it (Vary) and, for a deprecated
// version, Deprecation (RFC 9745), Sunset (RFC 8594) and the successor's Link. All header
// values were built at compile time (compile.ts); nothing is allocated per request.
import { NEXT, type Filter, type ResponseHead, type WorkerEnv } from '../../data/chain.js';
import type { RequestContext } from '../../data/request-context.js';
import { VERSION_SOURCE } from '../../shared/api-version.js';
import type { ApiVersionFilterConfig } from './compile.js';

export function buildApiVersion(config: ApiVersionFilterConfig, _env: WorkerEnv): Filter {
  const { label, labelName, vary, deprecation, sunset, link } = config;
  // The path chose this route, so its version is the request's, whatever a header said.
  const stamp = (ctx: RequestContext): void => {
    ctx.apiVersion = labelName;
    ctx.apiVersionIndex = label;
    ctx.apiVersionSource = VERSION_SOURCE.ROUTE;
  };
  return {
    name: 'api-version',
    onRequest(ctx: RequestContext) {
      if (label >= 0) stamp(ctx);
      return NEXT;
    },
    onResponse(ctx: RequestContext, head: ResponseHead) {
      // Also when a filter before this one refused the request (onRequest never ran): the
      // reply's headers and the access log name the route's version, not the one asked for.
      if (label >= 0 && ctx.apiVersionIndex !== label) stamp(ctx);
      const varyValue = vary[ctx.apiVersionSource];
      if (varyValue !== '') head.append('vary', varyValue);
      const index = ctx.apiVersionIndex;
      if (index < 0) return;
      if (deprecation[index] !== '') head.set('deprecation', deprecation[index]);
      if (sunset[index] !== '') head.set('sunset', sunset[index]);
      if (link[index] !== '') head.append('link', link[index]);
    },
  };
}
