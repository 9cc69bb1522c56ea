// A buffered request body parsed as JSON at most once per request, for every filter that needs
// it (waf, request-validation): the first to ask parses, the others read ctx.bodyJson.
// Bodies are parsed only when a filter asks, and only buffered ones (server.ts buffers bodies
// with a Content-Length up to BUFFERED_BODY_MAX; a route's max_body_bytes refuses larger ones).
import { NOT_PARSED, type RequestContext } from './request-context.js';

export { NOT_PARSED };
/** ctx.bodyJson of a body that is not valid JSON (or not UTF-8 JSON text). */
export const MALFORMED: unique symbol = Symbol('malformed');

/** The body as JSON, MALFORMED, or null when there is no buffered body. */
export function jsonBodyOf(ctx: RequestContext): unknown {
  if (ctx.bodyJson !== NOT_PARSED) return ctx.bodyJson;
  const body = ctx.body;
  if (!Buffer.isBuffer(body)) return null;
  try {
    ctx.bodyJson = JSON.parse(body.toString('utf8'));
  } catch {
    ctx.bodyJson = MALFORMED;
  }
  return ctx.bodyJson;
}
