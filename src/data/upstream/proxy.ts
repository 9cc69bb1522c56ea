// Forwarding a routed request upstream and relaying the answer through the exchange.
//
// forward() runs when the chain passed: the balancer picks a target, the gateway's headers
// are added, the head is encoded and checked (request-head.ts), and one UpstreamCall goes
// through the service's dispatch (its interceptors composed over the target's clients,
// dispatch.ts). The UpstreamCall is at once the dispatch options, the dispatch handler and
// the exchange's view of the upstream (UpstreamLeg): one object per forwarded request.
//
// As the handler it reads the response head (drops hop-by-hop headers, checks the status and
// Content-Length), keeps the phase and its deadline current, and hands every byte to the
// exchange (exchange.ts), which alone writes to the client. Backpressure both ways:
//   upstream → client: the exchange reports a full client socket → controller.pause() →
//     the exchange's onWritable → resume();
//   client → upstream: the streamed body's push() returns false → res.pause() (server.ts) →
//     undici reading the stream calls read() → res.resume().
import { performance } from 'node:perf_hooks';
import { LISTENER } from '../../shared/tls-config.js';
import { GW_ERR, UPSTREAM_ERR, type GatewayErrorSpec } from '../../shared/errors.js';
import { visibleAsciiTarget } from '../../shared/http-syntax.js';
import { coarseNow } from '../deadlines.js';
import {
  PHASE, RESPONSE_FLAG, type HeaderField, type RequestContext, type RuntimeRoute, type RuntimeTarget, type UpstreamLeg,
} from '../request-context.js';
import {
  WRITE_FULL, abortResponse, bodyUnreadOf, endResponse, lowerEquals, sendLocalReply, startResponse, writeResponseData,
} from '../exchange.js';
import { CORRELATION_HEADER } from '../correlation-id.js';
import { encodeRequestHead, isSendable, type RequestHead } from './request-head.js';
import type { DispatchController, DispatchHandler, DispatchOptions, UpstreamError } from './dispatch.js';

/** Bodies up to this size (declared by Content-Length) are buffered, then sent in one write. */
export const BUFFERED_BODY_MAX = 64 * 1024;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

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

function parseLength(field: HeaderField): number {
  if (field.length === 0 || field.length > 15) return -2;
  let n = 0;
  for (let i = 0; i < field.length; i++) {
    const d = (typeof field === 'string' ? field.charCodeAt(i) : field[i]) - 0x30;
    if (d < 0 || d > 9) return -2;
    n = n * 10 + d;
  }
  return n;
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

/** The response flag an upstream failure sets. */
function flagOfUpstreamError(code: UpstreamError['code']): number {
  switch (code) {
    case 'connect_timeout': case 'connect_failed': case 'pool_closed': return RESPONSE_FLAG.UPSTREAM_CONNECT_FAILURE;
    case 'bad_response': return RESPONSE_FLAG.UPSTREAM_PROTOCOL_ERROR;
    case 'queue_full': return RESPONSE_FLAG.UPSTREAM_OVERFLOW;
    default: return RESPONSE_FLAG.UPSTREAM_RESET;
  }
}

export class UpstreamCall implements DispatchOptions, DispatchHandler, UpstreamLeg {
  readonly method: string;
  readonly path: string;
  readonly idempotent: boolean;
  controller: DispatchController | null = null;
  complete = false;
  /** Sends so far: a stale keep-alive connection earns one more (onResponseError). */
  private sends = 1;

  constructor(
    readonly ctx: RequestContext,
    readonly target: RuntimeTarget,
    readonly headers: readonly string[],
    readonly body: DispatchOptions['body'],
    readonly head: RequestHead | null,
  ) {
    this.method = ctx.method;
    this.path = ctx.upstreamPath;
    this.idempotent = IDEMPOTENT.has(ctx.method);
  }

  // --- UpstreamLeg (the exchange's side) -------------------------------------------------

  abort(): void {
    if (this.complete) return;
    this.complete = true; // nothing more is wanted from the upstream
    this.release();
    this.controller?.abort(abortedError());
  }

  resume(): void {
    if (!this.complete) this.controller?.resume();
  }

  settle(): void {
    this.complete = true;
    this.release();
  }

  /** The target's in-flight count drops once, when the upstream side is done. */
  private released = false;
  private release(): void {
    if (this.released) return;
    this.released = true;
    this.target.inFlight--;
  }

  // --- DispatchHandler -------------------------------------------------------------------

  onRequestStart(controller: DispatchController): void {
    const ctx = this.ctx;
    this.controller = controller;
    if (ctx.ended) { this.complete = true; this.release(); controller.abort(abortedError()); return; }
    ctx.upstreamStartTime = performance.now();
    const service = ctx.route!.service;
    if (bodyUnreadOf(ctx.body)) {
      ctx.phase = PHASE.SENDING;
      ctx.deadline = coarseNow + service.idleMs;
    } else {
      ctx.phase = PHASE.WAITING;
      ctx.deadline = coarseNow + service.responseMs;
    }
  }

  onResponseStart(controller: DispatchController, statusCode: number, rawHeaders: HeaderField[], statusText: string): void {
    const ctx = this.ctx;
    if (ctx.ended) return;
    if (statusCode < 100 || statusCode > 599) {
      // Not a status HTTP knows (e.g. `099`): the response cannot be relayed, and the abort
      // closes its connection.
      this.fail(GW_ERR.upstream_bad_response, RESPONSE_FLAG.UPSTREAM_PROTOCOL_ERROR);
      return;
    }
    ctx.upstreamFirstByteTime = performance.now();
    ctx.phase = PHASE.STREAMING;
    ctx.deadline = coarseNow + ctx.route!.service.idleMs;

    // Keep end-to-end headers; note Content-Length and Connection-named headers. The list
    // is the client's own fresh array for this response: compacted in place.
    let length = -1;
    let connectionNamed: string[] | null = null;
    const kept = rawHeaders;
    let w = 0;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i];
      if (isDroppedResponseHeader(name)) {
        if (name.length === 14) {
          const n = parseLength(rawHeaders[i + 1]);
          if (n === -2 || (length >= 0 && length !== n)) {
            this.fail(GW_ERR.upstream_bad_response, RESPONSE_FLAG.UPSTREAM_PROTOCOL_ERROR);
            return;
          }
          length = n;
        } else if (name.length === 10 && lowerEquals(name, 'connection')) {
          const value = rawHeaders[i + 1];
          // The usual values name no header: no split for them.
          if (lowerEquals(value, 'keep-alive') || lowerEquals(value, 'close')) continue;
          for (const t of value.toString('latin1').split(',')) { // Buffer or string
            const token = t.trim().toLowerCase();
            if (token !== '' && token !== 'close' && token !== 'keep-alive') (connectionNamed ??= []).push(token);
          }
        }
        continue;
      }
      kept[w++] = name;
      kept[w++] = rawHeaders[i + 1];
    }
    kept.length = w;
    if (connectionNamed !== null) {
      const named = connectionNamed;
      for (let i = kept.length - 2; i >= 0; i -= 2) {
        if (named.includes(kept[i].toString('latin1').toLowerCase())) kept.splice(i, 2);
      }
    }
    const bodiless = ctx.method === 'HEAD' || statusCode === 204 || statusCode === 304;
    startResponse(ctx, statusCode, statusText, kept, length, bodiless);
  }

  onResponseData(controller: DispatchController, chunk: Buffer): void {
    const ctx = this.ctx;
    if (ctx.ended || ctx.aborted) { controller.abort(abortedError()); return; }
    ctx.deadline = coarseNow + ctx.route!.service.idleMs;
    if (writeResponseData(ctx, chunk) === WRITE_FULL) controller.pause();
  }

  onResponseEnd(): void {
    const ctx = this.ctx;
    this.complete = true;
    this.release();
    ctx.upstreamLastByteTime = performance.now();
    endResponse(ctx);
  }

  onResponseError(controller: DispatchController, err: UpstreamError): void {
    const ctx = this.ctx;
    if (this.complete) return;
    // A reused keep-alive connection that closed before any byte of the response: the
    // request was not processed. An idempotent one is sent once more, explicitly here
    // (what undici and browsers do), never hidden in a client.
    if (err.code === 'stale_connection' && this.idempotent && this.sends === 1 && !ctx.ended) {
      this.sends++;
      this.controller = null;
      ctx.route!.service.dispatch(this, this);
      return;
    }
    this.fail(UPSTREAM_ERR[err.code] ?? GW_ERR.upstream_unavailable, flagOfUpstreamError(err.code));
  }

  /** The upstream exchange failed: a 5xx if nothing was answered yet, else a cut connection. */
  fail(spec: GatewayErrorSpec, flag: number): void {
    const ctx = this.ctx;
    this.abort();
    if (ctx.ended) return;
    if (!ctx.responseStarted) {
      ctx.responseFlags |= flag;
      sendLocalReply(ctx, spec, bodyUnreadOf(ctx.body));
    } else {
      abortResponse(ctx, flag);
    }
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
 * `ctx.body` is the fully buffered body, a stream, or null.
 * Hot path: one UpstreamCall (options, handler and upstream leg in one), one head string.
 */
export function forward(ctx: RequestContext): void {
  const body = ctx.body;
  const route = ctx.route!;
  if (route.transcoder !== null) { route.transcoder.forward(ctx); return; }
  const service = route.service;
  const target = service.pick(service.targets);
  const h = ctx.headers;
  h.push('host', route.preserveHost ? ctx.host : target.hostHeader);
  h.push('x-forwarded-for', ctx.forwardedFor === '' ? ctx.clientIp : ctx.forwardedFor + ', ' + ctx.clientIp);
  h.push('x-forwarded-proto', ctx.listener === LISTENER.TLS ? 'https' : 'http');
  h.push('x-forwarded-host', ctx.host);
  h.push(CORRELATION_HEADER, ctx.correlationId);
  if (body !== null) {
    if (ctx.contentLength >= 0) h.push('content-length', String(ctx.contentLength));
  }
  // Every part is checked here, in request-head.ts, whoever made it: the client's headers,
  // the ones above, identity headers from token claims. Nothing unchecked is sent.
  const buffered = body === null || Buffer.isBuffer(body);
  const head = buffered ? encodeRequestHead(ctx.method, ctx.upstreamPath, h) : null;
  if (buffered ? head === null : !isSendable(ctx.method, ctx.upstreamPath, h)) {
    sendLocalReply(ctx, GW_ERR.invalid_header, bodyUnreadOf(body));
    return;
  }
  ctx.target = target;
  target.inFlight++;
  const call = new UpstreamCall(ctx, target, h, body, head);
  ctx.upstream = call;
  ctx.phase = PHASE.CONNECTING;
  ctx.deadline = coarseNow + service.connectMs;
  service.dispatch(call, call);
}

/** Deadline ticker callback: what a passed deadline means depends on the phase. */
export function expireRequest(ctx: RequestContext): void {
  const call = ctx.upstream as UpstreamCall | null;
  if (call === null) { ctx.deadline = 0; return; }
  switch (ctx.phase) {
    case PHASE.CONNECTING: call.fail(GW_ERR.upstream_connect_timeout, RESPONSE_FLAG.UPSTREAM_CONNECT_FAILURE); break;
    case PHASE.SENDING: call.fail(GW_ERR.request_timeout, RESPONSE_FLAG.DOWNSTREAM_PROTOCOL_ERROR); break;
    case PHASE.WAITING: call.fail(GW_ERR.upstream_timeout, RESPONSE_FLAG.UPSTREAM_TIMEOUT); break;
    case PHASE.STREAMING: call.fail(GW_ERR.upstream_timeout, RESPONSE_FLAG.UPSTREAM_TIMEOUT); break;
    default: ctx.deadline = 0;
  }
}

