// The front door: everything checked about a request before it is routed.
// uWebSockets.js's parser is lenient (duplicate Content-Length, odd transfer codings, empty
// header names), so every header is seen here, once, with req.forEach: sizes are counted,
// framing and Host are validated, hop-by-hop headers dropped, and the end-to-end headers
// collected for forwarding. Nothing the client sent about framing is forwarded as is.
// Values are kept as byte strings (their UTF-8, see src/shared/http-syntax.ts): uWS's
// forEach decodes them as UTF-8, and only a byte string can be written back as the bytes
// the client sent. Whether a header may be sent at all is decided in one place for every
// header, the client's and the gateway's: upstream/request-head.ts.
import type { HttpRequest } from './uws.js';
import type { RequestContext } from './request-context.js';
import type { CompiledLimits } from '../shared/compiled-config.js';
import { GW_ERR, type GatewayErrorSpec } from '../shared/errors.js';
import { CORRELATION_HEADER } from './correlation-id.js';
import { MIRROR_HEADER, toByteString } from '../shared/http-syntax.js';

// forEach's callback gets no context argument: the scan state lives here, set by
// readRequestHead before the (synchronous) forEach, so no closure is made per request.
let scanCtx: RequestContext;
let scanError: GatewayErrorSpec | null = null;
let hostCount = 0;
let transferEncodingCount = 0;

function visitHeader(key: string, rawValue: string): void {
  const ctx = scanCtx;
  const value = toByteString(rawValue);
  ctx.headerBytes += key.length + value.length + 4;
  ctx.headerCount++;
  switch (key.length) {
    case 0:
      scanError = GW_ERR.invalid_header;
      return;
    case 2:
      if (key === 'te') return;
      break;
    case 4:
      if (key === 'host') { hostCount++; ctx.host = value; return; }
      break;
    case 6:
      if (key === 'expect') return; // answered by the server itself; never forwarded
      break;
    case 7:
      if (key === 'upgrade' || key === 'trailer') return;
      break;
    case 10:
      if (key === 'connection') { noteConnection(ctx, value); return; }
      if (key === 'keep-alive') return;
      break;
    case 14:
      if (key === 'content-length') { noteContentLength(ctx, value); return; }
      if (key === MIRROR_HEADER) return; // only the gateway's mirrored copies carry it
      break;
    case 15:
      if (key === 'x-forwarded-for') {
        ctx.forwardedFor = ctx.forwardedFor === '' ? value : ctx.forwardedFor + ', ' + value;
        return;
      }
      break;
    case 16:
      if (key === CORRELATION_HEADER) { ctx.clientCorrelationId = value; return; }
      if (key === 'x-forwarded-host' || key === 'proxy-connection') return;
      break;
    case 17:
      if (key === 'transfer-encoding') { transferEncodingCount++; noteTransferEncoding(ctx, value); return; }
      if (key === 'x-forwarded-proto') return;
      break;
    case 19:
      if (key === 'proxy-authorization') return;
      break;
  }
  // A name with `_` is dropped, as nginx does (underscores_in_headers off): CGI-style
  // upstreams read X_User_Id as X-User-Id, so it could stand in for an identity header.
  // (The bundled uWS stalls such requests before JS sees them; another build may not.)
  if (key.indexOf('_') !== -1) return;
  ctx.headers.push(key, value);
}

function noteContentLength(ctx: RequestContext, value: string): void {
  const len = value.length;
  if (len === 0 || len > 15) { scanError = GW_ERR.invalid_framing; return; }
  let n = 0;
  for (let i = 0; i < len; i++) {
    const c = value.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) { scanError = GW_ERR.invalid_framing; return; }
    n = n * 10 + c;
  }
  // A repeated Content-Length is only tolerated when every copy agrees (RFC 9110 §8.6).
  if (ctx.contentLength !== -1 && ctx.contentLength !== n) { scanError = GW_ERR.invalid_framing; return; }
  ctx.contentLength = n;
}

function noteTransferEncoding(ctx: RequestContext, value: string): void {
  // Only plain `chunked` is understood; any other coding (or a list) is refused rather
  // than guessed at, as request smuggling lives in such disagreements.
  if (value.trim().toLowerCase() !== 'chunked') { scanError = GW_ERR.invalid_framing; return; }
  ctx.chunked = true;
}

function noteConnection(ctx: RequestContext, value: string): void {
  for (const raw of value.split(',')) {
    const token = raw.trim().toLowerCase();
    if (token === 'close') { ctx.clientClose = true; continue; }
    if (token === '' || token === 'keep-alive') continue;
    ctx.connectionTokens = ctx.connectionTokens === '' ? token : ctx.connectionTokens + ',' + token;
  }
}

/** Removes the headers the client named in `Connection` (they are hop-by-hop by declaration). */
function dropConnectionNamed(ctx: RequestContext): void {
  const named = new Set(ctx.connectionTokens.split(','));
  const h = ctx.headers;
  let w = 0;
  for (let r = 0; r < h.length; r += 2) {
    if (named.has(h[r])) continue;
    h[w++] = h[r];
    h[w++] = h[r + 1];
  }
  h.length = w;
  if (named.has(CORRELATION_HEADER)) ctx.clientCorrelationId = '';
  if (named.has('x-forwarded-for')) ctx.forwardedFor = '';
}

// Host: reg-name or IPv4 with an optional port, or a bracketed IPv6 literal.
const HOST_RE = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$/i;

/** Lower-case host without port, or null when the Host header is invalid. */
export function hostNameOf(host: string): string | null {
  if (!HOST_RE.test(host)) return null;
  let end = host.length;
  if (host.charCodeAt(0) === 0x5b /* [ */) {
    end = host.indexOf(']') + 1;
  } else {
    const colon = host.indexOf(':');
    if (colon !== -1) end = colon;
  }
  if (host.charCodeAt(end - 1) === 0x2e /* trailing dot */) end--;
  const name = host.slice(0, end);
  // Fast path: most hosts are already lower-case.
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return name.toLowerCase();
  }
  return name;
}

/**
 * Reads and checks the request head (synchronously: the uWS request dies with the handler).
 * Returns null when the request may go on, or the error to answer with.
 * Hot path: one pass over the headers, no object per header.
 */
export function readRequestHead(ctx: RequestContext, req: HttpRequest, limits: CompiledLimits, url: string): GatewayErrorSpec | null {
  scanCtx = ctx;
  scanError = null;
  hostCount = 0;
  transferEncodingCount = 0;
  ctx.headerBytes = ctx.method.length + url.length + ctx.query.length + 12; // request line
  req.forEach(visitHeader);
  if (ctx.headerBytes > limits.maxHeaderBytes) return GW_ERR.request_header_fields_too_large;
  if (scanError !== null) return scanError;
  ctx.requestTargetBytes = url.length + ctx.query.length + 1;
  if (ctx.requestTargetBytes > limits.maxUrlBytes) return GW_ERR.uri_too_long;
  if (transferEncodingCount > 1 || (ctx.chunked && ctx.contentLength !== -1)) return GW_ERR.invalid_framing;
  if (hostCount !== 1) return GW_ERR.invalid_host;
  const hostName = hostNameOf(ctx.host);
  if (hostName === null) return GW_ERR.invalid_host;
  ctx.hostName = hostName;
  if (ctx.connectionTokens !== '') dropConnectionNamed(ctx);
  if (ctx.contentLength > limits.maxBodyBytes) return GW_ERR.payload_too_large;
  return null;
}
