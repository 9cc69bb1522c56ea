// Replies the gateway makes itself. Every error is JSON and carries the correlation id:
// {"error":{"status":404,"code":"route_not_found","message":"...","correlation_id":"..."}}
// The constant part of each body is built once per error code.
import { GW_ERR, type GatewayErrorSpec } from '../shared/errors.js';
import { CORRELATION_HEADER } from './correlation-id.js';
import { statusLine } from './status-lines.js';
import { closeRequest, type RequestContext } from './request-context.js';

const bodyPrefix = new Map<GatewayErrorSpec, string>();
for (const spec of Object.values(GW_ERR)) {
  bodyPrefix.set(spec, `{"error":{"status":${spec.status},"code":${JSON.stringify(spec.code)},` +
    `"message":${JSON.stringify(spec.message)},"correlation_id":"`);
}

/** JSON body of an error; the id is safe to embed (correlation-id.ts restricts its charset). */
export function errorBody(spec: GatewayErrorSpec, correlationId: string): string {
  return (bodyPrefix.get(spec) ?? prefixOf(spec)) + correlationId + '"}}';
}

/** A spec outside the table (a table code with a configured status, e.g. a rate limit's
 * `status`): its prefix is built once. Callers memoize such specs, so the map stays bounded. */
function prefixOf(spec: GatewayErrorSpec): string {
  const prefix = `{"error":{"status":${spec.status},"code":${JSON.stringify(spec.code)},` +
    `"message":${JSON.stringify(spec.message)},"correlation_id":"`;
  bodyPrefix.set(spec, prefix);
  return prefix;
}

/**
 * Answers the request with a gateway error (no-op when the client is gone or a response
 * already started). `closeConnection` when the request body was not consumed.
 * `extraHeaders` is a flat [name, value, ...] list (e.g. Allow, WWW-Authenticate, Retry-After);
 * headers filters staged on ctx.responseHeaders are written too.
 */
export function replyError(
  ctx: RequestContext, spec: GatewayErrorSpec, closeConnection = false,
  extraHeaders: readonly string[] | null = null,
): void {
  closeRequest(ctx);
  if (ctx.aborted || ctx.responseStarted) return;
  ctx.responseStarted = true;
  const res = ctx.res;
  res.cork(() => {
    res.writeStatus(statusLine(spec.status));
    res.writeHeader('content-type', 'application/json');
    res.writeHeader(CORRELATION_HEADER, ctx.correlationId);
    if (extraHeaders !== null) for (let i = 0; i < extraHeaders.length; i += 2) res.writeHeader(extraHeaders[i], extraHeaders[i + 1]);
    const staged = ctx.responseHeaders;
    if (staged !== null) for (let i = 0; i < staged.length; i += 2) res.writeHeader(staged[i], staged[i + 1]);
    res.end(errorBody(spec, ctx.correlationId), closeConnection);
  });
}
