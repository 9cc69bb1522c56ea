// How a CORS preflight finds its route. A preflight (OPTIONS with Origin and
// Access-Control-Request-Method) asks about the request the page wants to send, so it is
// answered by the route that request would take: a route allowing only GET and PUT still answers
// the preflight of its PUT. When that route has no cors, the OPTIONS request is routed like any
// other (405 on a route without OPTIONS). Called by src/data/server.ts for OPTIONS requests only,
// and only when some route has cors (CompiledConfig.corsPreflights).
import type { HttpRequest } from '../../data/uws.js';
import type { GenerationView, RequestContext } from '../../data/request-context.js';
import { methodBit } from '../../shared/methods.js';

export function preflightRoute(ctx: RequestContext, req: HttpRequest, gen: GenerationView, routeIndex: number): number {
  const requested = req.getHeader('access-control-request-method');
  if (requested === '' || req.getHeader('origin') === '') return routeIndex;
  const matcher = gen.matcher;
  const actual = matcher.match(methodBit(requested), ctx.hostName, ctx.path);
  if (actual >= 0 && gen.route(actual).filters.some((f) => f.name === 'cors')) return actual;
  // Matched again so the matcher's params and allowMask are the OPTIONS request's.
  return matcher.match(ctx.methodBit, ctx.hostName, ctx.path);
}
