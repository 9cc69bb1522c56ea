// Forwarding a routed request upstream and streaming the answer back.
//
// One UpstreamCall per request is the undici dispatch handler (undici's native callback
// API: onConnect/onHeaders/onData/onComplete/onError, raw header buffers, no parsing into
// objects). Backpressure both ways:
//   upstream → client: uWS write/tryEnd reports a full socket buffer → onData returns
//     false (undici pauses the upstream socket) → res.onWritable resumes it;
//   client → upstream: the body Readable's push() returns false → res.pause() stops reading
//     the client socket → undici reading the stream calls read() → res.resume().
// A response of known length goes out with tryEnd (uWS writes Content-Length); one of
// unknown length with write (chunked). HEAD, 204 and 304 are ended without a body.
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { GW_ERR, type GatewayErrorSpec } from '../../shared/errors.js';
import { CORRELATION_HEADER } from '../correlation-id.js';
import { coarseNow, trackInFlight, untrackInFlight } from '../deadlines.js';
import { PHASE, closeRequest, type RequestContext } from '../request-context.js';
import { replyError } from '../reply.js';
import { upstreamStatusLine } from '../status-lines.js';
import type { RuntimeRoute } from '../generation.js';
import type { H1Handler } from './h1-client.js';
import { encodeRequestHead, isSendable } from './request-head.js';
import { asResponseBytes, visibleAsciiTarget } from '../../shared/http-syntax.js';

/** Bodies up to this size (declared by Content-Length) are buffered, then sent in one write. */
export const BUFFERED_BODY_MAX = 64 * 1024;

const EMPTY_HEADERS: (Buffer | string)[] = [];

/** A response header name or value: a Buffer from undici, a string from the fast client. */
type HeaderField = Buffer | string;

/** Response header names never forwarded to the client (hop-by-hop, or set by the gateway). */
function isDroppedResponseHeader(name: HeaderField): boolean {
  switch (name.length) {
    case 2: return lowerEquals(name, 'te');
    case 4: return lowerEquals(name, 'date'); // uWS writes its own Date
    case 7: return lowerEquals(name, 'upgrade') || lowerEquals(name, 'trailer');
    case 10: return lowerEquals(name, 'connection') || lowerEquals(name, 'keep-alive');
    case 14: return lowerEquals(name, 'content-length');
    case 16: return lowerEquals(name, 'proxy-connection') || lowerEquals(name, CORRELATION_HEADER);
    case 17: return lowerEquals(name, 'transfer-encoding');
    default: return false;
  }
}

/** ASCII case-insensitive comparison of a header name with a lower-case name. */
function lowerEquals(buf: HeaderField, lower: string): boolean {
  if (buf.length !== lower.length) return false;
  if (typeof buf === 'string') return buf === lower || buf.toLowerCase() === lower;
  for (let i = 0; i < buf.length; i++) {
    let c = buf[i];
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

function parseLength(buf: HeaderField): number {
  if (buf.length === 0 || buf.length > 15) return -2;
  let n = 0;
  for (let i = 0; i < buf.length; i++) {
    const d = (typeof buf === 'string' ? buf.charCodeAt(i) : buf[i]) - 0x30;
    if (d < 0 || d > 9) return -2;
    n = n * 10 + d;
  }
  return n;
}

// Response header flushes are deferred to a microtask so that headers and the first body
// bytes (which undici delivers in the same socket read) leave in one corked write.
const headerFlushQueue: UpstreamCall[] = [];
let headerFlushScheduled = false;
function flushQueuedHeaders(): void {
  headerFlushScheduled = false;
  for (let i = 0; i < headerFlushQueue.length; i++) {
    const call = headerFlushQueue[i];
    if (!call.headersWritten && call.ctx.phase === PHASE.STREAMING) {
      const res = call.ctx.res;
      res.cork(() => call.writeHead());
    }
  }
  headerFlushQueue.length = 0;
}

export class UpstreamCall implements Dispatcher.DispatchHandler, H1Handler {
  readonly ctx: RequestContext;
  /** Aborts the upstream request (set by undici in onConnect). */
  abortUpstream: ((err?: Error) => void) | null = null;
  resumeUpstream: (() => void) | null = null;
  /** Body stream for large or chunked uploads, else null. */
  bodyStream: Readable | null = null;
  bodyBytes = 0;
  clientPaused = false;
  status = 0;
  statusText = '';
  responseHeaders: HeaderField[] = EMPTY_HEADERS;
  /** Upstream Content-Length, -1 when unknown (chunked or close-delimited). */
  responseLength = -1;
  /** HEAD request, or 204/304: no body goes to the client. */
  bodiless = false;
  headersWritten = false;
  /** Part of a chunk uWS could not take yet (tryEnd under backpressure). */
  pendingChunk: Buffer | null = null;
  pendingOffset = 0;
  /** Every body byte arrived from upstream (onComplete, or the declared length reached):
   * finishing must not abort the upstream request, which would close a reusable connection. */
  upstreamComplete = false;

  constructor(ctx: RequestContext) {
    this.ctx = ctx;
  }

  // --- undici handler -------------------------------------------------------------------

  onConnect(abort: (err?: Error) => void): void {
    const ctx = this.ctx;
    if (ctx.phase === PHASE.DONE) { abort(); return; }
    this.abortUpstream = abort;
    const service = ctx.route!.service;
    if (this.bodyStream !== null && !this.bodyStream.readableEnded) {
      ctx.phase = PHASE.SENDING;
      ctx.deadline = coarseNow + service.idleMs;
    } else {
      ctx.phase = PHASE.WAITING;
      ctx.deadline = coarseNow + service.responseMs;
    }
  }

  onHeaders(statusCode: number, rawHeaders: HeaderField[], resume: () => void, statusText: string): boolean {
    const ctx = this.ctx;
    if (ctx.phase === PHASE.DONE) return false;
    if (statusCode < 100 || statusCode > 599) {
      // Not a status HTTP knows (e.g. `099`): the response cannot be relayed, and finishing
      // aborts the upstream request, which closes its connection.
      this.failBeforeResponse(GW_ERR.upstream_bad_response);
      return false;
    }
    if (statusCode < 200) return true; // interim responses are not relayed
    this.resumeUpstream = resume;
    this.status = statusCode;
    this.statusText = statusText;
    ctx.phase = PHASE.STREAMING;
    ctx.deadline = coarseNow + ctx.route!.service.idleMs;
    this.bodiless = ctx.method === 'HEAD' || statusCode === 204 || statusCode === 304;

    // Keep end-to-end headers; note Content-Length and Connection-named headers.
    let connectionNamed: string[] | null = null;
    const kept: HeaderField[] = [];
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i];
      if (isDroppedResponseHeader(name)) {
        if (name.length === 14) {
          const n = parseLength(rawHeaders[i + 1]);
          if (n === -2 || (this.responseLength >= 0 && this.responseLength !== n)) {
            this.failBeforeResponse(GW_ERR.upstream_bad_response);
            return false;
          }
          this.responseLength = n;
        } else if (name.length === 10 && lowerEquals(name, 'connection')) {
          for (const t of rawHeaders[i + 1].toString('latin1').split(',')) { // Buffer or string
            const token = t.trim().toLowerCase();
            if (token !== '' && token !== 'close' && token !== 'keep-alive') (connectionNamed ??= []).push(token);
          }
        }
        continue;
      }
      kept.push(name, rawHeaders[i + 1]);
    }
    if (connectionNamed !== null) {
      const named = connectionNamed;
      for (let i = kept.length - 2; i >= 0; i -= 2) {
        if (named.includes(kept[i].toString('latin1').toLowerCase())) kept.splice(i, 2);
      }
    }
    this.responseHeaders = kept;
    if (!this.bodiless && this.responseLength !== 0) {
      headerFlushQueue.push(this);
      if (!headerFlushScheduled) { headerFlushScheduled = true; queueMicrotask(flushQueuedHeaders); }
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    const ctx = this.ctx;
    if (ctx.phase === PHASE.DONE || ctx.aborted) return false;
    ctx.deadline = coarseNow + ctx.route!.service.idleMs;
    if (this.bodiless) return true; // a body where none may be: dropped
    const res = ctx.res;
    let ok = true;
    res.cork(() => {
      if (!this.headersWritten) this.writeHead();
      if (this.responseLength >= 0) {
        const offset = res.getWriteOffset();
        const [written, done] = res.tryEnd(chunk, this.responseLength);
        if (done) { this.upstreamComplete = true; this.finish(); return; }
        if (!written) {
          // uWS took part of the chunk: keep a copy of the rest until the socket drains.
          const taken = res.getWriteOffset() - offset;
          this.pendingChunk = Buffer.from(chunk.subarray(taken));
          this.pendingOffset = res.getWriteOffset();
          ok = false;
        }
      } else {
        ok = res.write(chunk); // uWS buffers what it cannot send; false = stop reading upstream
      }
    });
    if (!ok && ctx.phase !== PHASE.DONE) res.onWritable((offset) => this.onClientWritable(offset));
    return ok;
  }

  onComplete(): void {
    const ctx = this.ctx;
    this.upstreamComplete = true;
    if (ctx.phase === PHASE.DONE || ctx.aborted) return;
    if (this.pendingChunk !== null) return; // finishes from onClientWritable
    const res = ctx.res;
    res.cork(() => {
      if (!this.headersWritten) this.writeHead();
      if (this.bodiless) {
        if (ctx.method === 'HEAD' && this.responseLength >= 0 && this.status !== 204 && this.status !== 304) {
          res.writeHeader('content-length', String(this.responseLength));
        }
        res.endWithoutBody();
      } else {
        // Empty body (Content-Length: 0), or the end of a chunked one. A body shorter than its
        // Content-Length never gets here: the upstream client reports it as an error.
        res.end();
      }
    });
    this.finish();
  }

  onError(err: Error): void {
    const ctx = this.ctx;
    if (ctx.phase === PHASE.DONE) return;
    if (!ctx.responseStarted) {
      this.failBeforeResponse(classifyUpstreamError(err));
      return;
    }
    // The status line is out: all we can do is cut the client connection so it sees a
    // truncated response rather than a complete-looking one.
    this.finish();
    if (!ctx.aborted) ctx.res.close();
  }

  // --- helpers ---------------------------------------------------------------------------

  /** Status line and headers, inside a cork. */
  writeHead(): void {
    const ctx = this.ctx;
    const res = ctx.res;
    this.headersWritten = true;
    ctx.responseStarted = true;
    res.writeStatus(upstreamStatusLine(this.status, this.statusText));
    const h = this.responseHeaders;
    for (let i = 0; i < h.length; i += 2) {
      const value = h[i + 1];
      res.writeHeader(h[i], typeof value === 'string' ? asResponseBytes(value) : value);
    }
    const staged = ctx.responseHeaders;
    if (staged !== null) for (let i = 0; i < staged.length; i += 2) res.writeHeader(staged[i], staged[i + 1]);
    res.writeHeader(CORRELATION_HEADER, ctx.correlationId);
  }

  onClientWritable(offset: number): boolean {
    const ctx = this.ctx;
    if (ctx.phase === PHASE.DONE || ctx.aborted) return true;
    const res = ctx.res;
    const pending = this.pendingChunk;
    if (pending !== null) {
      const rest = pending.subarray(offset - this.pendingOffset);
      const [written, done] = res.tryEnd(rest, this.responseLength);
      if (done) { this.pendingChunk = null; this.upstreamComplete = true; this.finish(); return true; }
      if (!written) return false; // still full; uWS calls again
      this.pendingChunk = null;
    }
    if (!this.upstreamComplete) this.resumeUpstream?.();
    return true;
  }

  /** Answers with a gateway error and stops the upstream side. */
  failBeforeResponse(spec: GatewayErrorSpec, extraHeaders: readonly string[] | null = null): void {
    const ctx = this.ctx;
    const bodyUnread = this.bodyStream !== null && !this.bodyStream.readableEnded;
    this.finish();
    replyError(ctx, spec, bodyUnread, extraHeaders);
  }

  /** Ends the request's life in the data plane (idempotent). */
  finish(): void {
    const ctx = this.ctx;
    closeRequest(ctx);
    if (ctx.phase === PHASE.DONE) return;
    const forwarded = ctx.phase !== PHASE.ACCEPTED;
    ctx.phase = PHASE.DONE;
    ctx.deadline = 0;
    if (forwarded) {
      untrackInFlight(ctx);
      ctx.target!.inFlight--;
    }
    if (!this.upstreamComplete && this.abortUpstream !== null) this.abortUpstream(abortedError());
    if (this.bodyStream !== null && !this.bodyStream.destroyed) this.bodyStream.destroy();
    if (this.clientPaused && !ctx.aborted) { this.clientPaused = false; ctx.res.resume(); }
  }
}

let cachedAbortError: Error | null = null;
function abortedError(): Error {
  // One shared error: aborts are expected, and a stack per abort is waste.
  if (cachedAbortError === null) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    cachedAbortError = new Error('request finished by the gateway');
    Error.stackTraceLimit = limit;
  }
  return cachedAbortError;
}

/** Maps an undici / socket error to the gateway error the client sees. */
export function classifyUpstreamError(err: Error & { code?: string }): GatewayErrorSpec {
  switch (err.code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return GW_ERR.upstream_connect_timeout;
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return GW_ERR.upstream_timeout;
    case 'LOBBY_UPSTREAM_QUEUE_FULL':
      return GW_ERR.upstream_overloaded;
    case 'UND_ERR_INVALID_ARG':
      return GW_ERR.invalid_header; // a header undici refuses to send (invalid name or value)
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      return GW_ERR.upstream_bad_response;
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
    case 'EPIPE':
      return GW_ERR.upstream_reset;
    default:
      if (err.code?.startsWith('HPE_')) return GW_ERR.upstream_bad_response;
      return GW_ERR.upstream_unavailable;
  }
}

/**
 * Upstream request-target: strip_prefix or templated rewrite applied to the normalized path,
 * query kept, percent-encoded to visible ASCII (http-syntax.ts). Null when the query holds
 * a space or a control character (400).
 */
export function upstreamPath(ctx: RequestContext, route: RuntimeRoute): string | null {
  let path = ctx.path;
  if (route.rewrite !== null) {
    const params = ctx.gen.matcher.params;
    let out = '';
    for (const part of route.rewrite) {
      out += 'literal' in part ? part.literal : path.slice(params[part.param * 2], params[part.param * 2 + 1]);
    }
    path = out;
  } else if (route.stripPrefixLength > 0) {
    path = path.length > route.stripPrefixLength ? path.slice(route.stripPrefixLength) : '/';
  }
  if (ctx.query === '') return path;
  const query = visibleAsciiTarget(ctx.query);
  return query === null ? null : path + '?' + query;
}

/**
 * Sends the request to a target of the route's service. Called once the filter chain passed.
 * `body` is the fully buffered body, or null (no body, or streamed: see openBodyStream).
 * Hot path: one handler object, one dispatch options object, one headers array.
 */
export function forward(ctx: RequestContext): void {
  const call = ctx.call!;
  const body = ctx.body;
  const route = ctx.route!;
  const service = route.service;
  const target = service.pick(service.targets);
  const h = ctx.headers;
  h.push('host', route.preserveHost ? ctx.host : target.hostHeader);
  h.push('x-forwarded-for', ctx.forwardedFor === '' ? ctx.clientIp : ctx.forwardedFor + ', ' + ctx.clientIp);
  h.push('x-forwarded-proto', 'http');
  h.push('x-forwarded-host', ctx.host);
  h.push(CORRELATION_HEADER, ctx.correlationId);
  if (body !== null) {
    if (ctx.contentLength >= 0) h.push('content-length', String(ctx.contentLength));
  }
  // Every part is checked here, in request-head.ts, whoever made it: the client's headers,
  // the ones above, identity headers from token claims. Nothing unchecked is sent.
  const fast = body === null || Buffer.isBuffer(body);
  const head = fast ? encodeRequestHead(ctx.method, ctx.upstreamPath, h) : null;
  if (fast ? head === null : !isSendable(ctx.method, ctx.upstreamPath, h)) {
    call.failBeforeResponse(GW_ERR.invalid_header);
    return;
  }
  ctx.target = target;
  target.inFlight++;
  ctx.phase = PHASE.CONNECTING;
  ctx.deadline = coarseNow + service.connectMs;
  trackInFlight(ctx);
  if (fast) {
    target.fast.dispatch(ctx.method, head!, body, call);
    return;
  }
  target.pool.dispatch({
    path: ctx.upstreamPath,
    method: ctx.method,
    headers: h,
    body,
  }, call);
}
