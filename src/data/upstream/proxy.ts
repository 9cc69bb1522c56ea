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
import type { DispatchController, DispatchFn, DispatchHandler, DispatchOptions, UpstreamError } from './dispatch.js';
import type { CompiledRetry } from '../../shared/compiled-config.js';
import {
  RETRY_REASON, countRetry, pickRetryTarget, reasonOfError, retryAfterMs, retryDelay, type RetryBudget, type RetryCall,
} from './retry.js';
import { pushDeadlineHeader, remainingMs } from './deadline.js';
import { chooseMember } from './split.js';
import { mirrorRequest } from './mirror.js';

/** Bodies up to this size (declared by Content-Length) are buffered, then sent in one write. */
export { BUFFERED_BODY_MAX } from '../../shared/compiled-config.js';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** Whether a request of this method may be sent again (DispatchOptions.idempotent). */
export function isIdempotentMethod(method: string): boolean {
  return IDEMPOTENT.has(method);
}

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
/** The reason a call the gateway ended gives its controller (also the gRPC calls'). */
export function abortedError(): Error {
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
    case 'queue_full': case 'overflow': return RESPONSE_FLAG.UPSTREAM_OVERFLOW;
    case 'circuit_open': return RESPONSE_FLAG.CIRCUIT_OPEN;
    default: return RESPONSE_FLAG.UPSTREAM_RESET;
  }
}

export class UpstreamCall implements DispatchOptions, DispatchHandler, UpstreamLeg, RetryCall {
  readonly method: string;
  readonly path: string;
  readonly idempotent: boolean;
  controller: DispatchController | null = null;
  complete = false;
  /** Sends so far: a stale keep-alive connection earns one more (onResponseError). */
  private sends = 1;
  // --- retries and the deadline (retry.ts, deadline.ts): counters, no object of their own ---
  readonly policy: CompiledRetry | null;
  retryNext: DispatchFn | null = null;
  budget: RetryBudget | null = null;
  tries = 1;
  relayed = false;
  /** A retryable status is being read to its end (dropped), then the retry waits `retryWait` ms. */
  private draining = false;
  private retryWait = 0;
  /** Coarse-clock end of the current try's per_try_timeout_ms (0 = none). */
  private tryDeadline = 0;
  /** Indexes in `headers` of the Host value (-1: the client's Host is kept) and of the
   * deadline header's value (-1: none), rewritten for a retry. */
  hostAt = -1;
  deadlineAt = -1;

  constructor(
    readonly ctx: RequestContext,
    public target: RuntimeTarget,
    readonly headers: string[],
    readonly body: DispatchOptions['body'],
    public head: RequestHead | null,
  ) {
    this.method = ctx.method;
    this.path = ctx.upstreamPath;
    this.idempotent = isIdempotentMethod(ctx.method);
    this.policy = ctx.route!.retry;
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

  /** The target's in-flight count drops once, when the upstream side (or a try) is done. */
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
      if (this.tryDeadline !== 0 && this.tryDeadline < ctx.deadline) ctx.deadline = this.tryDeadline;
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
    // A status the policy retries is read to its end and dropped, unless this try is the last.
    if (statusCode >= 500 && this.policy !== null && this.policy.statuses.includes(statusCode)) {
      const wait = retryDelay(this, RETRY_REASON.STATUS, retryAfterMs(rawHeaders));
      if (wait >= 0) {
        this.draining = true;
        this.retryWait = wait;
        ctx.phase = PHASE.STREAMING;
        ctx.deadline = coarseNow + ctx.route!.service.idleMs;
        return;
      }
    }
    this.relayed = true;
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
    if (this.draining) return;
    if (writeResponseData(ctx, chunk) === WRITE_FULL) controller.pause();
  }

  onResponseEnd(): void {
    const ctx = this.ctx;
    if (this.draining) { this.awaitRetry(this.retryWait); return; }
    this.complete = true;
    this.release();
    ctx.upstreamLastByteTime = performance.now();
    endResponse(ctx);
  }

  onResponseError(controller: DispatchController, err: UpstreamError): void {
    const ctx = this.ctx;
    if (this.complete) return;
    // The dropped body of a retried status was cut: the retry was decided already.
    if (this.draining) { this.awaitRetry(this.retryWait); return; }
    // A reused keep-alive connection that closed before any byte of the response: the
    // request was not processed. An idempotent one is sent once more, explicitly here
    // (what undici and browsers do), never hidden in a client. Under a retry policy it is one
    // of the attempts (the upstream may have read the request before it closed), outside the
    // budget (it is the ordinary cost of keep-alive), and like any retry it goes to another
    // target: the connection may be stale because its target died.
    if (err.code === 'stale_connection' && this.idempotent && this.sends === 1 && !ctx.ended &&
      (this.policy === null || this.tries < this.policy.attempts)) {
      this.sends++;
      countRetry(ctx, RETRY_REASON.STALE_CONNECTION);
      if (this.policy !== null) { this.awaitRetry(0); return; }
      this.controller = null;
      this.startTry(ctx.route!.service.connectMs);
      ctx.route!.service.dispatch(this, this);
      return;
    }
    if (this.policy !== null) {
      const reason = reasonOfError(this.policy, err.code);
      if (reason >= 0) {
        const wait = retryDelay(this, reason, -1);
        if (wait >= 0) { this.awaitRetry(wait); return; }
      }
    }
    // A policy's refusal may carry headers for the reply (the breaker's Retry-After).
    this.fail(UPSTREAM_ERR[err.code] ?? GW_ERR.upstream_unavailable, flagOfUpstreamError(err.code), (err as { headers?: readonly string[] }).headers ?? null);
  }

  /** A try timed out (the deadline ticker): retried when the policy allows, else `spec`. */
  timedOut(spec: GatewayErrorSpec, flag: number): void {
    if (this.draining) { this.controller?.abort(abortedError()); this.awaitRetry(this.retryWait); return; }
    if (this.policy !== null && this.policy.onTimeout) {
      const wait = retryDelay(this, RETRY_REASON.TIMEOUT, -1);
      if (wait >= 0) {
        this.controller?.abort(abortedError()); // closes the try's connection; it is not told
        this.awaitRetry(wait);
        return;
      }
    }
    this.fail(spec, flag);
  }

  /** Between two tries: the try's target is released, the ticker sends the next (sendTry). */
  private awaitRetry(wait: number): void {
    const ctx = this.ctx;
    this.draining = false;
    this.controller = null;
    this.release();
    ctx.phase = PHASE.RETRY_WAIT;
    ctx.deadline = coarseNow + wait;
  }

  /** The next try: another target when there is one, its Host and the time left re-encoded. */
  sendTry(): void {
    const ctx = this.ctx;
    const service = ctx.route!.service;
    const target = pickRetryTarget(service, this.target);
    const h = this.headers;
    if (this.hostAt >= 0) h[this.hostAt] = target.hostHeader;
    if (this.deadlineAt >= 0) h[this.deadlineAt] = String(remainingMs(ctx));
    if (this.head !== null && (this.hostAt >= 0 || this.deadlineAt >= 0)) {
      // Checked again like the first head (request-head.ts): a target's Host is config, the
      // deadline digits; nothing else changed.
      const head = encodeRequestHead(this.method, this.path, h);
      if (head === null) { this.fail(GW_ERR.invalid_header, RESPONSE_FLAG.LOCAL_REPLY); return; }
      this.head = head;
    }
    this.target = target;
    ctx.target = target;
    target.inFlight++;
    this.released = false;
    this.tries++;
    this.startTry(service.connectMs);
    (this.retryNext ?? service.dispatch)(this, this);
  }

  /** Phase and deadlines of a try about to be dispatched. */
  startTry(connectMs: number): void {
    const ctx = this.ctx;
    ctx.phase = PHASE.CONNECTING;
    ctx.deadline = coarseNow + connectMs;
    const perTry = this.policy === null ? 0 : this.policy.perTryTimeoutMs;
    this.tryDeadline = perTry === 0 ? 0 : coarseNow + perTry;
  }

  /** The upstream exchange failed: a 5xx if nothing was answered yet, else a cut connection. */
  fail(spec: GatewayErrorSpec, flag: number, extraHeaders: readonly string[] | null = null): void {
    const ctx = this.ctx;
    this.abort();
    if (ctx.ended) return;
    if (!ctx.responseStarted) {
      ctx.responseFlags |= flag;
      sendLocalReply(ctx, spec, bodyUnreadOf(ctx.body), extraHeaders);
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

/** The gateway's own request headers, Host first: what every request (and WebSocket handshake)
 * takes upstream besides the client's end-to-end headers. */
export function pushForwardingHeaders(ctx: RequestContext, route: RuntimeRoute, target: RuntimeTarget, h: string[]): void {
  h.push('host', route.preserveHost ? ctx.host : target.hostHeader);
  h.push('x-forwarded-for', ctx.forwardedFor === '' ? ctx.clientIp : ctx.forwardedFor + ', ' + ctx.clientIp);
  h.push('x-forwarded-proto', ctx.listener === LISTENER.TLS ? 'https' : 'http');
  h.push('x-forwarded-host', ctx.host);
  h.push(CORRELATION_HEADER, ctx.correlationId);
}

/**
 * Sends the request to a target of the route's service. Called once the filter chain passed.
 * `ctx.body` is the fully buffered body, a stream, or null.
 * Hot path: one UpstreamCall (options, handler and upstream leg in one), one head string.
 */
export function forward(ctx: RequestContext): void {
  const body = ctx.body;
  let route = ctx.route!;
  if (route.split !== null) {
    // The one place a split's member is chosen (split.ts): from here on ctx.route is the
    // member's, so its service, chain, retries, deadline, logs and metrics are the chosen ones.
    route = chooseMember(ctx, route.split);
    ctx.route = route;
    ctx.exchangeDeadline = route.deadlineMs !== 0 ? ctx.startTime + route.deadlineMs : 0;
  }
  if (route.transcoder !== null) { route.transcoder.forward(ctx); return; }
  // Set only for an upgrade request on a route that relays them (server.ts): one comparison.
  if (ctx.websocket !== null) { route.websocket!.forward(ctx); return; }
  const service = route.service;
  const target = service.pick(service.targets);
  if (target === null) { noHealthyUpstream(ctx); return; }
  const h = ctx.headers;
  // First: it may drop the client's copy, which moves what follows it.
  const deadlineAt = route.deadlineHeader !== '' && ctx.exchangeDeadline !== 0 ? pushDeadlineHeader(ctx, h, route.deadlineHeader) : -1;
  const hostAt = h.length + 1;
  pushForwardingHeaders(ctx, route, target, h);
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
  if (!route.preserveHost) call.hostAt = hostAt;
  call.deadlineAt = deadlineAt;
  ctx.upstream = call;
  call.startTry(service.connectMs);
  service.dispatch(call, call);
  if (route.mirror !== null) mirrorRequest(ctx, route.mirror, h, route.preserveHost ? -1 : hostAt);
}

/**
 * Every target of the request's service is down (health checks, outlier ejection): fail
 * fast with 503 `no_healthy_upstream`, flag UH. The one point where a service without a
 * healthy target is answered: from the fallback cache when the service has one and holds the
 * answer, else 503.
 */
export function noHealthyUpstream(ctx: RequestContext): void {
  ctx.responseFlags |= RESPONSE_FLAG.NO_HEALTHY_UPSTREAM;
  // The last good answer, when the service keeps them (fallback-cache.ts; flag SF).
  const serveFallback = ctx.route!.service.serveFallback;
  if (serveFallback !== null && serveFallback(ctx)) return;
  sendLocalReply(ctx, GW_ERR.no_healthy_upstream, bodyUnreadOf(ctx.body));
}

/** Deadline ticker callback: what a passed deadline means depends on the phase. */
export function expireRequest(ctx: RequestContext): void {
  const call = ctx.upstream;
  if (ctx.exchangeDeadline !== 0 && coarseNow >= ctx.exchangeDeadline) {
    // The whole exchange's deadline (deadline.ts): before forwarding too (a filter waiting,
    // a body still arriving), and while a response streams (it is cut).
    ctx.exchangeDeadline = 0;
    if (call !== null) call.fail(GW_ERR.deadline_exceeded, RESPONSE_FLAG.UPSTREAM_TIMEOUT);
    else {
      ctx.responseFlags |= RESPONSE_FLAG.UPSTREAM_TIMEOUT;
      const unread = ctx.body === null ? ctx.contentLength > 0 || ctx.chunked : bodyUnreadOf(ctx.body);
      sendLocalReply(ctx, GW_ERR.deadline_exceeded, unread);
    }
    return;
  }
  if (call === null) { ctx.deadline = 0; return; }
  switch (ctx.phase) {
    case PHASE.CONNECTING: call.fail(GW_ERR.upstream_connect_timeout, RESPONSE_FLAG.UPSTREAM_CONNECT_FAILURE); break;
    case PHASE.SENDING: call.fail(GW_ERR.request_timeout, RESPONSE_FLAG.DOWNSTREAM_PROTOCOL_ERROR); break;
    case PHASE.WAITING: call.timedOut(GW_ERR.upstream_timeout, RESPONSE_FLAG.UPSTREAM_TIMEOUT); break;
    case PHASE.STREAMING: call.timedOut(GW_ERR.upstream_timeout, RESPONSE_FLAG.UPSTREAM_TIMEOUT); break;
    case PHASE.RETRY_WAIT: call.sendTry(); break;
    default: ctx.deadline = 0;
  }
}

