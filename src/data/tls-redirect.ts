// The plain-HTTP listener with `server.tls.plain_http: redirect`: every request is answered
// with a redirect to the same host, path and query on the HTTPS port (301 for GET/HEAD, 308
// otherwise, so a client repeats the method and body), after the front door and path checks.
import type { RequestContext } from './request-context.js';
import { CORRELATION_HEADER } from './correlation-id.js';
import { endClosing, endExchange, sendLocalReply } from './exchange.js';
import { statusLine } from './status-lines.js';
import { isVisibleAsciiTarget } from '../shared/http-syntax.js';
import { GW_ERR } from '../shared/errors.js';
import { RESPONSE_FLAG } from './request-context.js';
import { closingConnections } from './closing.js';

export function sendHttpsRedirect(ctx: RequestContext, hasBody: boolean): void {
  const tls = ctx.gen.config.server.tls!;
  // hostName passed the front door's Host check (host name or [IPv6], no port).
  const target = ctx.query === '' ? ctx.path : ctx.path + '?' + ctx.query;
  if (!isVisibleAsciiTarget(target)) { sendLocalReply(ctx, GW_ERR.invalid_path, hasBody); return; }
  const location = `https://${ctx.hostName}${tls.portSuffix}${target}`;
  const status = ctx.method === 'GET' || ctx.method === 'HEAD' ? 301 : 308;
  ctx.status = status;
  ctx.responseStarted = true;
  ctx.responseFlags |= RESPONSE_FLAG.LOCAL_REPLY;
  const res = ctx.res;
  res.cork(() => {
    res.writeStatus(statusLine(status));
    res.writeHeader('location', location);
    res.writeHeader(CORRELATION_HEADER, ctx.correlationId);
    // An unread body leaves the connection out of step: close it (and while leaving, closing.ts).
    endClosing(res, '', hasBody || closingConnections(), ctx.clientClose);
  });
  endExchange(ctx);
}
