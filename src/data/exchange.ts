// The exchange: the one writer of the client response, and the one end of every request.
//
// Local replies (every gateway error, as JSON with the correlation id) and upstream
// responses leave through the same head writer: the status line, the upstream's headers as
// the route's onResponse filters (reverse chain order) edit them (a header a filter sets
// replaces the upstream's of that name), the correlation id. Body writes
// apply backpressure (uWS tryEnd/write report a full socket; the upstream pauses until
// onWritable). endExchange ends a request exactly once, however it ends, and runs the
// route's onEnd filters then.
//
// What it records on the context: status, bytes out, response flags (RESPONSE_FLAG); the
// start time and upstream timings are set by server.ts and proxy.ts.
import { GW_ERR, type GatewayErrorSpec } from '../shared/errors.js';
import { asResponseBytes, isFieldValueBytes, isHeaderName } from '../shared/http-syntax.js';
import { CORRELATION_HEADER } from './correlation-id.js';
import { LISTENER } from '../shared/tls-config.js';
import { statusLine, upstreamStatusLine } from './status-lines.js';
import { untrackOpen } from './deadlines.js';
import { PHASE, RESPONSE_FLAG, type Filter, type HeaderField, type RequestContext, type ResponseHead } from './request-context.js';
import { logRequestFault } from './faults.js';
import { closingConnections } from './closing.js';

// --- response flags of local replies, by code (decided once, not per reply) --------------
const FLAG_OF_CODE: Record<string, number> = {
  route_not_found: RESPONSE_FLAG.NO_ROUTE,
  upstream_unavailable: RESPONSE_FLAG.UPSTREAM_CONNECT_FAILURE,
  upstream_connect_timeout: RESPONSE_FLAG.UPSTREAM_CONNECT_FAILURE,
  upstream_timeout: RESPONSE_FLAG.UPSTREAM_TIMEOUT,
  upstream_reset: RESPONSE_FLAG.UPSTREAM_RESET,
  upstream_bad_response: RESPONSE_FLAG.UPSTREAM_PROTOCOL_ERROR,
  upstream_overloaded: RESPONSE_FLAG.UPSTREAM_OVERFLOW,
  rate_limited: RESPONSE_FLAG.RATE_LIMITED,
  rate_limit_unavailable: RESPONSE_FLAG.RATE_LIMITED,
  unauthenticated: RESPONSE_FLAG.UNAUTHORIZED,
  invalid_token: RESPONSE_FLAG.UNAUTHORIZED,
  insufficient_scope: RESPONSE_FLAG.UNAUTHORIZED,
  ext_authz_denied: RESPONSE_FLAG.UNAUTHORIZED,
  ext_authz_unavailable: RESPONSE_FLAG.UNAUTHORIZED,
  ext_authz_timeout: RESPONSE_FLAG.UNAUTHORIZED,
  invalid_path: RESPONSE_FLAG.DOWNSTREAM_PROTOCOL_ERROR,
  invalid_host: RESPONSE_FLAG.DOWNSTREAM_PROTOCOL_ERROR,
  invalid_framing: RESPONSE_FLAG.DOWNSTREAM_PROTOCOL_ERROR,
  invalid_header: RESPONSE_FLAG.DOWNSTREAM_PROTOCOL_ERROR,
  payload_too_large: RESPONSE_FLAG.DOWNSTREAM_PROTOCOL_ERROR,
  uri_too_long: RESPONSE_FLAG.DOWNSTREAM_PROTOCOL_ERROR,
  request_header_fields_too_large: RESPONSE_FLAG.DOWNSTREAM_PROTOCOL_ERROR,
};

// --- error bodies: the constant part of each body is built once per spec ------------------
// Weak: filters make specs of their own (a WAF refusal naming its rules, a validation failure).
const bodyPrefix = new WeakMap<GatewayErrorSpec, string>();
for (const spec of Object.values(GW_ERR)) prefixOf(spec);

/** A spec outside the table (a table code with a configured status or message, e.g. a rate
 * limit's `status`): its prefix is built once. Callers memoize such specs, so the map stays
 * bounded. */
function prefixOf(spec: GatewayErrorSpec): string {
  const prefix = `{"error":{"status":${spec.status},"code":${JSON.stringify(spec.code)},` +
    `"message":${JSON.stringify(spec.message)},"correlation_id":"`;
  bodyPrefix.set(spec, prefix);
  return prefix;
}

/** JSON body of an error; the id is safe to embed (correlation-id.ts restricts its charset). */
export function errorBody(spec: GatewayErrorSpec, correlationId: string): string {
  return (bodyPrefix.get(spec) ?? prefixOf(spec)) + correlationId + '"}}';
}

// --- header merge -----------------------------------------------------------------------

/** ASCII case-insensitive comparison of a header name with a lower-case name. */
export function lowerEquals(name: HeaderField, lower: string): boolean {
  if (name.length !== lower.length) return false;
  if (typeof name === 'string') {
    if (name === lower) return true;
    // Folded char by char: upstreams send `Content-Length`, and toLowerCase() would make a
    // string per header per response.
    for (let i = 0; i < name.length; i++) {
      let c = name.charCodeAt(i);
      if (c >= 0x41 && c <= 0x5a) c += 0x20;
      if (c !== lower.charCodeAt(i)) return false;
    }
    return true;
  }
  for (let i = 0; i < name.length; i++) {
    let c = name[i];
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** Removes, in place, every header whose name `matches(name, lower)`. */
function removeWhere(list: HeaderField[], matches: (name: HeaderField, lower: string) => boolean, lower: string): void {
  let w = 0;
  for (let r = 0; r < list.length; r += 2) {
    if (matches(list[r], lower)) continue;
    list[w++] = list[r];
    list[w++] = list[r + 1];
  }
  list.length = w;
}

/** The ResponseHead filters edit: one per worker, pointed at the head being written (the
 * onResponse calls are synchronous), so a response allocates nothing for it. */
export class HeadEditor implements ResponseHead {
  status = 0;
  list: HeaderField[] = [];
  set(name: string, value: string): void {
    const lower = name.toLowerCase();
    removeWhere(this.list, lowerEquals, lower);
    this.list.push(lower, value);
  }
  append(name: string, value: string): void {
    this.list.push(name.toLowerCase(), value);
  }
  remove(name: string): void {
    removeWhere(this.list, lowerEquals, name.toLowerCase());
  }
  removePrefixed(prefix: string): void {
    removeWhere(this.list, lowerStartsWith, prefix);
  }
}

/** ASCII case-insensitive: does a header name start with a lower-case prefix. */
function lowerStartsWith(name: HeaderField, prefix: string): boolean {
  if (name.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    let c = typeof name === 'string' ? name.charCodeAt(i) : name[i];
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c !== prefix.charCodeAt(i)) return false;
  }
  return true;
}
const editor = new HeadEditor();

/**
 * The final header list of a response: `headers` (the upstream's, or a local reply's) as
 * the route's onResponse filters (in reverse chain order) edit it.
 */
function runResponseFilters(ctx: RequestContext, filters: readonly Filter[], status: number, headers: HeaderField[]): HeaderField[] {
  editor.status = status;
  editor.list = headers;
  for (let i = 0; i < filters.length; i++) {
    try {
      filters[i].onResponse!(ctx, editor);
    } catch (err) {
      logRequestFault(ctx, err); // a bug in one filter must not cost the response
    }
  }
  const edited = editor.list;
  editor.list = [];
  return edited;
}

// Values that may go into a joined header block as they are: tab, space and visible ASCII.
const NOT_PLAIN_VALUE = /[^\t\x20-\x7e]/;

/**
 * The response headers and the correlation id. uWS writes `key: value\r\n` per writeHeader
 * and checks neither, so the bytes are checked here, on both paths: a name must be a token and
 * a value a byte string without CR, LF, NUL or other controls (filters' values included).
 */
function writeHeaders(ctx: RequestContext, headers: HeaderField[]): void {
  if (!writeJoinedHeaders(ctx, headers)) writeHeadersOneByOne(ctx, headers);
  if (ctx.listener === LISTENER.TLS) writeHsts(ctx);
}

/**
 * The common case, every name a string token and every value plain ASCII: one writeHeader
 * call (each is a native call with its own string conversions) whose value carries the
 * following `\r\n name: value` lines. False, having written nothing, for any other list.
 */
function writeJoinedHeaders(ctx: RequestContext, headers: HeaderField[]): boolean {
  let block = ctx.correlationId;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    const value = headers[i + 1];
    if (typeof name !== 'string' || typeof value !== 'string' || !isHeaderName(name) || NOT_PLAIN_VALUE.test(value)) return false;
    block += '\r\n' + name + ': ' + value;
  }
  ctx.res.writeHeader(CORRELATION_HEADER, block);
  return true;
}

/**
 * Header by header: Buffers from undici (its llhttp checked them) and byte strings with
 * obs-text go out as their bytes. A header that cannot be written as what it says (a name
 * that is not a token; a value with CR, LF, NUL, another control or a character above
 * U+00FF, which 'latin1' would mangle) is dropped, never written.
 */
function writeHeadersOneByOne(ctx: RequestContext, headers: HeaderField[]): void {
  const res = ctx.res;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    const value = headers[i + 1];
    if (typeof name === 'string' && !isHeaderName(name)) continue;
    if (typeof value === 'string') {
      if (!isFieldValueBytes(value)) continue;
      res.writeHeader(name, asResponseBytes(value));
    } else {
      res.writeHeader(name, value);
    }
  }
  res.writeHeader(CORRELATION_HEADER, ctx.correlationId);
}

// Kept out of writeHeaders: the plain path pays one comparison.
function writeHsts(ctx: RequestContext): void {
  const hsts = ctx.gen.config.server.tls?.hsts;
  if (hsts) ctx.res.writeHeader('strict-transport-security', hsts);
}

// --- closing the client connection -------------------------------------------------------

/**
 * Whether a response must say `Connection: close` itself: the client asked for it (uWS then
 * closes after the response without saying so, and a client that reuses its keep-alive
 * connections unless told otherwise, like Node's http.Agent, sends its next request into the
 * closed connection), or the instance is leaving its balancer (closing.ts).
 */
function announcesClose(ctx: RequestContext): boolean {
  return ctx.clientClose || closingConnections();
}

/** end(body, close) for a local reply: uWS writes `Connection: close` for a closing end()
 * unless the client asked for close itself, in which case it is written here. */
export function endClosing(res: RequestContext['res'], body: string | Buffer, close: boolean, clientClose: boolean): void {
  if (clientClose) res.writeHeader('connection', 'close');
  res.end(body, close);
}

// --- local replies ----------------------------------------------------------------------

/** A streamed request body still being read: the connection cannot be reused after a reply. */
export function bodyUnreadOf(body: RequestContext['body']): boolean {
  return body !== null && !Buffer.isBuffer(body) && !body.readableEnded;
}

/**
 * Answers the request with a gateway error (nothing when the client is gone or a response
 * already started) and ends the exchange. `closeConnection` when the request body was not
 * consumed. `extraHeaders` is a flat [name, value, ...] list (Allow, WWW-Authenticate,
 * Retry-After, ...).
 */
export function sendLocalReply(
  ctx: RequestContext, spec: GatewayErrorSpec, closeConnection = false,
  extraHeaders: readonly string[] | null = null,
): void {
  if (ctx.ended) return;
  if (!ctx.aborted && !ctx.responseStarted) {
    const headers: HeaderField[] = ['content-type', 'application/json'];
    if (extraHeaders !== null) for (let i = 0; i < extraHeaders.length; i++) headers.push(extraHeaders[i]);
    const body = errorBody(spec, ctx.correlationId);
    // UTF-8 bytes: a message may name non-ASCII schema keys.
    writeReply(ctx, spec, spec.status, headers, body, Buffer.byteLength(body), closeConnection);
  } else {
    noteReply(ctx, spec);
  }
  endExchange(ctx);
}

/**
 * Answers the request with a response the gateway relays rather than makes (an authorization
 * service's denial, src/filters/ext-authz): `status`, `headers` (checked as any reply's by
 * writeHeaders), `body`. `spec` is recorded as the reply's gateway error (its code labels
 * metrics and logs). Otherwise as sendLocalReply.
 */
export function sendRelayedReply(
  ctx: RequestContext, spec: GatewayErrorSpec, status: number, headers: readonly string[], body: Buffer, closeConnection = false,
): void {
  if (ctx.ended) return;
  if (!ctx.aborted && !ctx.responseStarted) writeReply(ctx, spec, status, headers.slice(), body, body.length, closeConnection);
  else noteReply(ctx, spec);
  endExchange(ctx);
}

/** Records a reply's gateway error (flags, code) on the exchange, answered or not. */
function noteReply(ctx: RequestContext, spec: GatewayErrorSpec): void {
  ctx.responseFlags |= RESPONSE_FLAG.LOCAL_REPLY | (FLAG_OF_CODE[spec.code] ?? 0);
  ctx.replySpec = spec;
}

/** Both kinds of reply: stops the upstream, runs the route's onResponse filters, writes it all in one cork. */
function writeReply(
  ctx: RequestContext, spec: GatewayErrorSpec, status: number, headers: HeaderField[], body: string | Buffer, bodyBytes: number,
  closeConnection: boolean,
): void {
  noteReply(ctx, spec);
  ctx.upstream?.abort();
  ctx.responseStarted = true;
  ctx.status = status;
  const filters = ctx.route?.responseFilters ?? null;
  const merged = filters !== null ? runResponseFilters(ctx, filters, status, headers) : headers;
  ctx.bytesOut += bodyBytes;
  const res = ctx.res;
  res.cork(() => {
    res.writeStatus(statusLine(status));
    writeHeaders(ctx, merged);
    endClosing(res, body, closeConnection || closingConnections(), ctx.clientClose);
  });
}

/**
 * Answers the request with `status` and no body (a CORS preflight's 204): the headers are what
 * the route's onResponse filters set. Otherwise as sendLocalReply.
 */
export function sendEmptyReply(ctx: RequestContext, status: number, closeConnection = false): void {
  if (ctx.ended) return;
  ctx.responseFlags |= RESPONSE_FLAG.LOCAL_REPLY;
  if (!ctx.aborted && !ctx.responseStarted) {
    ctx.upstream?.abort();
    ctx.responseStarted = true;
    ctx.status = status;
    const filters = ctx.route?.responseFilters ?? null;
    const merged = filters !== null ? runResponseFilters(ctx, filters, status, []) : [];
    const res = ctx.res;
    res.cork(() => {
      res.writeStatus(statusLine(status));
      writeHeaders(ctx, merged);
      // endWithoutBody(undefined, …) writes `Content-Length: 9223372036854775808` (this uWS
      // build reads undefined as a length); without arguments it writes none, as a 204 needs.
      // A streamed body left unread (a preflight never has one) closes with Content-Length: 0.
      if (closeConnection) {
        if (ctx.clientClose) res.writeHeader('connection', 'close');
        res.endWithoutBody(0, true);
      } else {
        // Not endWithoutBody(0, true) while leaving: a 204 must carry no Content-Length.
        if (announcesClose(ctx)) res.writeHeader('connection', 'close');
        res.endWithoutBody();
      }
    });
  }
  endExchange(ctx);
}

// --- WebSocket upgrades -------------------------------------------------------------------

/**
 * The upstream accepted a WebSocket upgrade (src/data/websocket.ts): the 101 with the
 * upstream's end-to-end `headers` as the route's onResponse filters edit them and the
 * correlation id, then `upgrade` (uWS's res.upgrade, which adds the handshake's own headers and
 * makes the connection a WebSocket), in one cork. `res` is gone after it; the exchange stays
 * open until the connection closes.
 */
export function writeUpgrade(ctx: RequestContext, headers: HeaderField[], upgrade: () => void): void {
  ctx.responseStarted = true;
  ctx.status = 101;
  const filters = ctx.route?.responseFilters ?? null;
  const merged = filters !== null ? runResponseFilters(ctx, filters, 101, headers) : headers;
  const res = ctx.res;
  res.cork(() => {
    res.writeStatus(statusLine(101));
    writeHeaders(ctx, merged);
    upgrade();
  });
}

// --- upstream responses -----------------------------------------------------------------

// Response heads are written in a microtask so that the head and the first body bytes
// (which both clients deliver in the same socket read) leave in one corked write.
// A promise reaction, not queueMicrotask: Node wraps every queueMicrotask callback in an
// AsyncResource (an object, a bind and hook checks per call).
const resolved = Promise.resolve();
const headFlushQueue: RequestContext[] = [];
let headFlushScheduled = false;
function flushQueuedHeads(): void {
  headFlushScheduled = false;
  for (let i = 0; i < headFlushQueue.length; i++) {
    const ctx = headFlushQueue[i];
    if (ctx.pendingHeaders !== null && !ctx.ended && !ctx.aborted) {
      const res = ctx.res;
      res.cork(() => writeResponseHead(ctx));
    }
  }
  headFlushQueue.length = 0;
}

/**
 * An upstream response began: `headers` are its end-to-end headers (hop-by-hop already
 * dropped), `length` its body length (-1 when unknown). The head is written with the first
 * body bytes, or at the end for an empty body.
 */
export function startResponse(ctx: RequestContext, status: number, statusText: string, headers: HeaderField[], length: number, bodiless: boolean): void {
  ctx.status = status;
  ctx.pendingStatusText = statusText;
  ctx.pendingHeaders = headers;
  ctx.responseLength = length;
  ctx.bodiless = bodiless;
  if (!bodiless && length !== 0) {
    headFlushQueue.push(ctx);
    if (!headFlushScheduled) { headFlushScheduled = true; resolved.then(flushQueuedHeads); }
  }
}

/** Status line and headers of the upstream response, inside a cork. */
function writeResponseHead(ctx: RequestContext): void {
  const headers = ctx.pendingHeaders!;
  ctx.pendingHeaders = null;
  ctx.responseStarted = true;
  ctx.res.writeStatus(upstreamStatusLine(ctx.status, ctx.pendingStatusText));
  const filters = ctx.route !== null ? ctx.route.responseFilters : null;
  writeHeaders(ctx, filters !== null ? runResponseFilters(ctx, filters, ctx.status, headers) : headers);
  // Not uWS's closing end(): after a streamed body it writes its `Connection: close` line into
  // the body, and tryEnd has none. The client closes on the header; connections a client keeps
  // open anyway close at the drain's end.
  if (announcesClose(ctx)) ctx.res.writeHeader('connection', 'close');
}

/** writeResponseData: the client took the chunk; the client is full (pause the upstream
 * until resumeUpstream); the whole declared body went out (the response is complete). */
export const WRITE_OK = 0, WRITE_FULL = 1, WRITE_DONE = 2;

// cork() takes a callback; one module-level function reading these (set just before the
// synchronous cork call) instead of a closure per chunk.
let corkCtx: RequestContext | null = null;
let corkChunk: Buffer | null = null;
let corkResult = WRITE_OK;

function writeDataCorked(): void {
  const ctx = corkCtx!;
  const chunk = corkChunk!;
  const res = ctx.res;
  if (ctx.pendingHeaders !== null) writeResponseHead(ctx);
  if (ctx.responseLength >= 0) {
    if (ctx.bytesOut === 0 && chunk.length === ctx.responseLength) {
      // The whole body in one chunk (most API responses): end() writes it with its
      // Content-Length, and uWS keeps what the socket cannot take yet (at most this chunk).
      ctx.bytesOut = chunk.length;
      res.end(chunk);
      corkResult = WRITE_DONE;
      return;
    }
    const [written, done] = res.tryEnd(chunk, ctx.responseLength);
    // After the last byte the response is gone: uWS forbids touching it again.
    if (done) { ctx.bytesOut += chunk.length; corkResult = WRITE_DONE; return; }
    if (written) { ctx.bytesOut += chunk.length; return; }
    // uWS took part of the chunk: keep a copy of the rest until the socket drains.
    // (bytesOut is the body offset before this chunk: everything before it was taken.)
    const offset = res.getWriteOffset();
    const taken = offset - ctx.bytesOut;
    ctx.bytesOut = offset;
    ctx.pendingChunk = Buffer.from(chunk.subarray(taken));
    ctx.pendingOffset = offset;
    corkResult = WRITE_FULL;
  } else {
    ctx.bytesOut += chunk.length;
    if (!res.write(chunk)) corkResult = WRITE_FULL; // uWS buffers what it cannot send
  }
}

/** Relays a response body chunk to the client. */
export function writeResponseData(ctx: RequestContext, chunk: Buffer): number {
  if (ctx.bodiless) return WRITE_OK; // a body where none may be: dropped
  corkCtx = ctx;
  corkChunk = chunk;
  corkResult = WRITE_OK;
  ctx.res.cork(writeDataCorked);
  corkCtx = null;
  corkChunk = null;
  const result = corkResult;
  if (result === WRITE_DONE) { ctx.upstream?.settle(); endExchange(ctx); }
  else if (result === WRITE_FULL) ctx.res.onWritable((offset) => onClientWritable(ctx, offset));
  return result;
}

function onClientWritable(ctx: RequestContext, offset: number): boolean {
  if (ctx.ended || ctx.aborted) return true;
  const pending = ctx.pendingChunk;
  if (pending !== null) {
    const rest = pending.subarray(offset - ctx.pendingOffset);
    const before = ctx.res.getWriteOffset();
    const [written, done] = ctx.res.tryEnd(rest, ctx.responseLength);
    if (done) { ctx.bytesOut += rest.length; ctx.pendingChunk = null; ctx.upstream?.settle(); endExchange(ctx); return true; }
    ctx.bytesOut += ctx.res.getWriteOffset() - before;
    if (!written) return false; // still full; uWS calls again
    ctx.pendingChunk = null;
  }
  ctx.upstream?.resume();
  return true;
}

/** The upstream response is complete: end the client's (after any chunk still pending). */
export function endResponse(ctx: RequestContext): void {
  if (ctx.ended || ctx.aborted) return;
  if (ctx.pendingChunk !== null) return; // ends from onClientWritable
  const res = ctx.res;
  res.cork(() => {
    if (ctx.pendingHeaders !== null) writeResponseHead(ctx);
    if (ctx.bodiless) {
      if (ctx.method === 'HEAD' && ctx.responseLength >= 0 && ctx.status !== 204 && ctx.status !== 304) {
        res.writeHeader('content-length', String(ctx.responseLength));
      }
      res.endWithoutBody();
    } else {
      // Empty body (Content-Length: 0), or the end of a chunked one. A body shorter than its
      // Content-Length never gets here: the upstream client reports it as an error.
      res.end();
    }
  });
  endExchange(ctx);
}

/** The response started and cannot be completed: the client connection is cut, so the
 * client sees a truncated response rather than a complete-looking one. */
export function abortResponse(ctx: RequestContext, flags: number): void {
  ctx.responseFlags |= flags;
  const aborted = ctx.aborted;
  endExchange(ctx);
  if (!aborted) ctx.res.close();
}

// --- the end ----------------------------------------------------------------------------

/**
 * Ends the request's life in the data plane, exactly once: stops the upstream request
 * unless its response was complete, stops reading a streamed body, runs the route's onEnd
 * filters. Idempotent.
 */
export function endExchange(ctx: RequestContext, flags = 0): void {
  if (ctx.ended) return;
  ctx.ended = true;
  ctx.responseFlags |= flags;
  ctx.phase = PHASE.DONE;
  ctx.deadline = 0;
  untrackOpen(ctx);
  const upstream = ctx.upstream;
  if (upstream !== null && !upstream.complete) upstream.abort();
  const body = ctx.body;
  if (body !== null && !Buffer.isBuffer(body) && !body.destroyed) body.destroy();
  if (ctx.clientPaused && !ctx.aborted) { ctx.clientPaused = false; ctx.res.resume(); }
  // A request that matched no route (404, or refused before routing) gets the unrouted ones.
  const filters = ctx.route !== null ? ctx.route.endFilters : ctx.gen.unroutedEndFilters;
  if (filters) {
    for (let i = 0; i < filters.length; i++) {
      try {
        filters[i].onEnd!(ctx);
      } catch (err) {
        logRequestFault(ctx, err);
      }
    }
  }
}
