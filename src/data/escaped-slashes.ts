// Routing a path that contains `%2F` or `%5C` (escaped `/` and `\`), by the matched route's
// `escaped_slashes` (docs/configuration.md#escaped-slashes). Only such paths come here; every
// other request is matched once by server.ts, with no extra work.
//
// Normalization happens before routing, but the action is per route, so: match the path as
// normalized with its slashes kept escaped, and take the action of the route it matched (of
// `server` when none matched):
//   reject   → 400;
//   keep     → forward the path as it is, unless an upstream that decodes %2F/%5C would see a
//              dot segment in it (`..%2F`), which is 400 too;
//   unescape → normalize the client's path again with %2F/%5C decoded to `/` (so dot segments
//              they form are resolved), match that, and use the match only if its route also
//              says `unescape` (else 400): a decoded path is never served by a route that did
//              not opt in, and never by one the first match did not lead to without its consent.
import { escapedSlashesConfined, normalizePath } from '../shared/path-normalize.js';
import { GW_ERR, type GatewayErrorSpec } from '../shared/errors.js';
import type { RequestContext } from './request-context.js';

/** matchEscapedPath results besides a route index, NO_ROUTE and METHOD_NOT_ALLOWED of route-match.ts. */
/** `invalid_path` (clients need not tell the two apart), with a message that names the
 * escaped_slashes policy; built once, so exchange.ts memoizes its body prefix. */
export const ESCAPED_SLASH: GatewayErrorSpec = {
  ...GW_ERR.invalid_path,
  message: 'The request path contains an encoded slash (%2F or %5C) that this route does not accept.',
};

export const ESCAPED_SLASH_REFUSED = -3, PATH_INVALID = -4;

/**
 * Route index for a request whose normalized path `ctx.path` has escaped slashes, or a
 * negative code (route-match.ts's, or the two above). With `unescape`, sets `ctx.path` to the
 * decoded path the returned route matched (the matcher's params refer to it).
 */
export function matchEscapedPath(ctx: RequestContext, url: string): number {
  const gen = ctx.gen;
  const matcher = gen.matcher;
  const first = matcher.match(ctx.methodBit, ctx.hostName, ctx.path);
  const action = first >= 0 ? gen.route(first).escapedSlashes : gen.config.server.escapedSlashes;
  if (action === 'reject') return ESCAPED_SLASH_REFUSED;
  if (action === 'keep') return escapedSlashesConfined(ctx.path) ? first : ESCAPED_SLASH_REFUSED;
  const decoded = normalizePath(url, true);
  // Decoding can reveal a refused form, e.g. `/a%2F..;x` → segment `..;x`.
  if (decoded === null) return PATH_INVALID;
  ctx.path = decoded;
  const route = matcher.match(ctx.methodBit, ctx.hostName, decoded);
  if (route >= 0 && gen.route(route).escapedSlashes !== 'unescape') return ESCAPED_SLASH_REFUSED;
  return route;
}

/** The error for a negative matchEscapedPath result other than NO_ROUTE / METHOD_NOT_ALLOWED. */
export function escapedPathError(code: number): GatewayErrorSpec {
  if (code === ESCAPED_SLASH_REFUSED) return ESCAPED_SLASH;
  return code === PATH_INVALID ? GW_ERR.invalid_path : GW_ERR.internal_error;
}
