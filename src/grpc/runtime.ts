// The transcoder in a data-plane worker: a gRPC service's targets and descriptors, a
// route's binding table, and one GrpcCall per request, which is at once the dispatch options,
// the dispatch handler and the exchange's view of the upstream (as proxy.ts's UpstreamCall).
//
//   forward (proxy.ts, when the route has `transcode`) → transcode():
//     body read → binding matched (404 / 405 + Allow) → path, query and body into the request
//     message → metadata from the allowlist → service.dispatch(call, call) (the service's
//     interceptors over client.ts's HTTP/2 session) → response messages printed as JSON
//     (unary) or NDJSON / SSE records (server streaming) through the exchange.
import { performance } from 'node:perf_hooks';
import type protobuf from 'protobufjs';
import { GW_ERR, UPSTREAM_ERR, type GatewayErrorSpec } from '../shared/errors.js';
import { isFieldValueBytes, isHeaderName } from '../shared/http-syntax.js';
import { coarseNow } from '../data/deadlines.js';
import {
  PHASE, RESPONSE_FLAG, type HeaderField, type RequestContext, type RuntimeService, type RuntimeTarget, type TranscoderHook, type UpstreamLeg,
} from '../data/request-context.js';
import { WRITE_FULL, abortResponse, endResponse, startResponse, writeResponseData, lowerEquals } from '../data/exchange.js';
import { CORRELATION_HEADER } from '../data/correlation-id.js';
import { logRequestFault } from '../data/faults.js';
import { abortedError, isIdempotentMethod, noHealthyUpstream } from '../data/upstream/proxy.js';
import { remainingMs } from '../data/upstream/deadline.js';
import { RETRY_REASON, pickRetryTarget, retryDelay, type RetryBudget, type RetryCall } from '../data/upstream/retry.js';
import type { DispatchController, DispatchFn, DispatchHandler, UpstreamError } from '../data/upstream/dispatch.js';
import type { CompiledRetry } from '../shared/compiled-config.js';
import type { CompiledGrpcService, CompiledTranscode } from './compiled.js';
import { grpcDispatch, grpcPoolKey, type GrpcDispatchOptions } from './client.js';
import { rootFromJson } from './descriptors.js';
import { buildBindings, type GrpcMethod } from './transcoder.js';
import type { RuleMatcher, CompiledBinding } from './http-rule.js';
import { queryValues } from './query.js';
import { encodeRequest, printMessage, TranscodeInputError, type BoundValue, type PrintOptions } from './codec.js';
import { PercentError } from './percent.js';
import { gatewayStatusJson, httpStatusOf, upstreamStatusJson } from './status.js';
import { fetchDescriptors } from './reflection.js';
import { DescriptorBundle, codecPool, type CodecResult, type CodecTask } from './pool.js';

/** A gRPC service of a generation, in one worker: its descriptors (now, or once reflection answered). */
interface GrpcServiceState {
  compiled: CompiledGrpcService;
  root: protobuf.Root | null;
  /** Reflection in progress (null once settled, or for .proto descriptors). */
  loading: Promise<void> | null;
  error: string | null;
  /** The descriptors for the codec pool's threads, made on the first offloaded message. */
  bundle: DescriptorBundle | null;
}

const stateOf = new WeakMap<RuntimeService, GrpcServiceState>();

/** The runtime targets of a gRPC service: each one's two clients are its client.ts dispatch. */
export function grpcTargets(svc: CompiledGrpcService): RuntimeTarget[] {
  return svc.targets.map((t) => {
    const dispatch = grpcDispatch(t.address, svc.tls);
    return { origin: `${svc.tls === null ? 'grpc' : 'grpcs'}://${t.address}`, hostHeader: t.address, fast: dispatch, general: dispatch, poolKey: grpcPoolKey(t.address, svc.tls), inFlight: 0, healthSlot: -1 };
  });
}

/** Called by generation.ts once the RuntimeService exists: descriptors revived or fetched. */
export function attachGrpcService(service: RuntimeService, svc: CompiledGrpcService): void {
  const state: GrpcServiceState = { compiled: svc, root: null, loading: null, error: null, bundle: null };
  if (svc.descriptorJson !== null) {
    state.root = rootFromJson(svc.descriptorJson);
  } else {
    // Reflection: asked once per generation per worker (so a reload refreshes it).
    state.loading = fetchDescriptors(svc.targets[0].address, svc.tls).then(
      (root) => { state.root = root; state.loading = null; },
      (err: Error) => { state.error = err.message; state.loading = null; },
    );
  }
  stateOf.set(service, state);
}

/** A route's transcoder hook (RuntimeRoute.transcoder), built on the route's first request. */
export function grpcTranscoder(service: RuntimeService, config: CompiledTranscode, routeName: string): TranscoderHook {
  const state = stateOf.get(service);
  if (state === undefined) throw new Error(`route ${routeName}: transcode needs a service with grpc`);
  let matcher: RuleMatcher<GrpcMethod> | null = null;
  const requestHeaders = new Set(config.requestHeaders);
  const responseHeaders = new Set(config.responseHeaders);
  const route: RouteTranscoder = {
    config,
    print: { emitDefaults: config.print.emitDefaults, protoFieldNames: config.print.protoFieldNames, enumsAsNumbers: config.print.enumsAsNumbers },
    requestHeaders,
    responseHeaders,
    get root() { return state.root; },
    bundle() { return (state.bundle ??= new DescriptorBundle(state.root!)); },
    matcher() {
      if (matcher === null && state.root !== null) {
        // For reflected descriptors this is where the rules are compiled (once); problems were
        // reported for .proto descriptors at config load, so none are left here.
        matcher = buildBindings(state.root, config, () => {});
      }
      return matcher;
    },
  };
  return {
    forward(ctx) {
      if (state.root !== null) {
        try {
          route.matcher();
        } catch (err) {
          // Reflected descriptors the rules cannot be compiled from: the service is unusable.
          state.root = null;
          state.error = `the reflected descriptors cannot be used: ${(err as Error).message}`;
        }
      }
      if (state.root !== null) { transcode(ctx, route); return; }
      if (state.loading === null) { replyGatewayError(ctx, GW_ERR.grpc_descriptors_unavailable, state.error ?? ''); return; }
      void state.loading.then(() => guarded(ctx, () => {
        if (ctx.ended) return;
        if (state.root !== null) transcode(ctx, route);
        else replyGatewayError(ctx, GW_ERR.grpc_descriptors_unavailable, state.error ?? '');
      }));
    },
  };
}

interface RouteTranscoder {
  config: CompiledTranscode;
  print: PrintOptions;
  requestHeaders: ReadonlySet<string>;
  responseHeaders: ReadonlySet<string>;
  readonly root: protobuf.Root | null;
  bundle(): DescriptorBundle;
  matcher(): RuleMatcher<GrpcMethod> | null;
}

/** Runs a codec task in the pool; a pool failure is an internal error, never a crash. */
function offload(ctx: RequestContext, task: CodecTask, then: (result: CodecResult) => void): void {
  codecPool().run(task).then(
    (result) => guarded(ctx, () => then(result)),
    (err: Error) => guarded(ctx, () => then({ ok: false, message: err.message, kind: 'internal' })),
  );
}

function inputErrorSpec(kind: 'invalid' | 'unknown_query' | 'conflict'): GatewayErrorSpec {
  return kind === 'conflict' ? GW_ERR.grpc_bound_field_conflict : kind === 'unknown_query' ? GW_ERR.grpc_unknown_query_parameter : GW_ERR.grpc_invalid_request;
}

// --- replies ------------------------------------------------------------------------------

/** A JSON response through the exchange (status line, filters' headers, correlation id). */
function replyJson(ctx: RequestContext, status: number, body: string, extra: readonly string[] | null): void {
  if (ctx.ended || ctx.aborted || ctx.responseStarted || ctx.pendingHeaders !== null) return;
  const headers: HeaderField[] = ['content-type', 'application/json'];
  if (extra !== null) for (const h of extra) headers.push(h);
  const bytes = Buffer.from(body, 'utf8');
  startResponse(ctx, status, '', headers, bytes.length, ctx.method === 'HEAD');
  if (ctx.method === 'HEAD') endResponse(ctx);
  else writeResponseData(ctx, bytes);
}

/** A gateway error on a transcoded route: google.rpc.Status JSON (ErrorInfo with the code). */
function replyGatewayError(ctx: RequestContext, spec: GatewayErrorSpec, detail: string, extra: readonly string[] | null = null): void {
  ctx.responseFlags |= RESPONSE_FLAG.LOCAL_REPLY;
  if (spec.status === 400 || spec.status === 413) ctx.responseFlags |= RESPONSE_FLAG.DOWNSTREAM_PROTOCOL_ERROR;
  ctx.replySpec = spec;
  ctx.upstream?.abort();
  replyJson(ctx, spec.status, gatewayStatusJson(spec, ctx.correlationId, detail), extra);
}

// --- the request side ---------------------------------------------------------------------

/** The request body, whole: buffered by server.ts up to 64 KiB, else read here (server.ts
 * caps it at server.limits.max_body_bytes). */
function withBody(ctx: RequestContext, then: (body: Buffer | null) => void): void {
  const body = ctx.body;
  if (body === null || Buffer.isBuffer(body)) { then(body); return; }
  const chunks: Buffer[] = [];
  body.on('data', (c: Buffer) => chunks.push(c));
  body.on('end', () => { if (!ctx.ended) guarded(ctx, () => then(Buffer.concat(chunks))); });
  body.on('error', () => { /* the exchange ends the request */ });
}

function headerValue(ctx: RequestContext, lower: string): string {
  const h = ctx.headers;
  for (let i = 0; i < h.length; i += 2) if (lowerEquals(h[i], lower)) return h[i + 1];
  return '';
}


/** Work that resumes outside the chain's fault handler (a body read, reflection, the pool):
 * a throw is a bug, answered 500 and logged, never a worker crash. */
function guarded(ctx: RequestContext, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    logRequestFault(ctx, err);
    ctx.upstream?.abort();
    // Nothing answered yet: a 500; a response under way is cut (never completed silently).
    if (!ctx.responseStarted && ctx.pendingHeaders === null) replyGatewayError(ctx, GW_ERR.internal_error, '');
    else abortResponse(ctx, 0);
  }
}

/** The request's metadata: the allowlisted headers (names compile.ts checked) and the
 * correlation id. Their values are checked once, where client.ts writes them (a value gRPC
 * metadata cannot carry is not sent). */
function metadataOf(ctx: RequestContext, allow: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const h = ctx.headers;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i].toLowerCase();
    if (allow.has(name)) out.push(name, h[i + 1]);
  }
  out.push(CORRELATION_HEADER, ctx.correlationId);
  return out;
}

function transcode(ctx: RequestContext, route: RouteTranscoder): void {
  withBody(ctx, (body) => {
    const matcher = route.matcher()!;
    const found = matcher.match(ctx.method, ctx.path);
    if (found.binding === null) {
      if (found.allow.length > 0) replyGatewayError(ctx, GW_ERR.method_not_allowed, '', ['allow', found.allow.join(', ')]);
      else replyGatewayError(ctx, GW_ERR.grpc_method_not_found, '');
      return;
    }
    const binding = found.binding;
    const method = binding.target;
    let values: BoundValue[];
    const requestBody = binding.body === '' ? null : body;
    try {
      const bound: BoundValue[] = found.bound.map((b) => ({ fieldPath: b.fieldPath, value: b.value, source: 'path' as const }));
      const query = queryValues(ctx.query, method.requestType, bound, binding.body, route.config.rejectUnknownQuery);
      if (binding.body === '' && body !== null && body.length > 0) {
        throw new TranscodeInputError('this method takes no request body (its http rule has no "body")');
      }
      values = [...bound, ...query];
      if (requestBody !== null && requestBody.length >= route.config.offloadBytes) {
        // A large body: parsed and encoded in the pool (pool.ts).
        offload(ctx, { op: 'encode', bundle: route.bundle().id, data: route.bundle().data, type: method.requestType.fullName.slice(1), body: requestBody, bodyField: binding.body, bound: values }, (result) => {
          if (ctx.ended) return;
          if (!result.ok) {
            replyGatewayError(ctx, result.kind === 'internal' ? GW_ERR.internal_error : inputErrorSpec(result.kind), result.kind === 'internal' ? '' : result.message);
            return;
          }
          const v = result.value as Uint8Array;
          dispatchCall(ctx, route, binding, Buffer.from(v.buffer, v.byteOffset, v.byteLength));
        });
        return;
      }
      const encoded = encodeRequest(method.requestType, requestBody, binding.body, values);
      dispatchCall(ctx, route, binding, Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength));
    } catch (err) {
      if (err instanceof TranscodeInputError) { replyGatewayError(ctx, inputErrorSpec(err.kind), err.message); return; }
      if (err instanceof PercentError) { replyGatewayError(ctx, GW_ERR.grpc_invalid_request, err.message); return; }
      throw err;
    }
  });
}

function dispatchCall(ctx: RequestContext, route: RouteTranscoder, binding: CompiledBinding<GrpcMethod>, message: Buffer): void {
  const service = ctx.route!.service;
  const target = service.pick(service.targets);
  // Only a health-aware picker gives none; gRPC services take no health_check (compile.ts).
  if (target === null) { noHealthyUpstream(ctx); return; }
  const streaming = binding.target.serverStreaming;
  const sse = streaming && headerValue(ctx, 'accept').includes('text/event-stream');
  const call = new GrpcCall(ctx, route, binding, target, metadataOf(ctx, route.requestHeaders), message, streaming, sse);
  ctx.target = target;
  target.inFlight++;
  ctx.upstream = call;
  call.startTry();
  service.dispatch(call, call);
}

const GRPC_DEADLINE_EXCEEDED = 4;
/** client.ts's deadline timer may fire this much before Date.now() reaches the deadline it was
 * given (timers run on the loop's clock, rounded to ms). */
const DEADLINE_SLACK_MS = 5;

// --- the call -----------------------------------------------------------------------------

/**
 * One transcoded call: dispatch options, handler and upstream leg, as proxy.ts's UpstreamCall,
 * and the same RetryCall (src/data/upstream/retry.ts), so the one retry policy decides for it
 * too: the service's retry interceptor gives it the dispatch its retries go through and the
 * budget, and retryDelay() says whether and when a failed try goes out again (to another
 * target: pickRetryTarget). A unary call only: its request message is whole (the transcoder
 * built it) and nothing is relayed before its status arrives, while a stream's records go to
 * the client as they come.
 */
export class GrpcCall implements GrpcDispatchOptions, DispatchHandler, UpstreamLeg, RetryCall {
  readonly method = 'POST';
  readonly path: string;
  readonly head = null;
  readonly idempotent: boolean;
  controller: DispatchController | null = null;
  complete = false;
  /** The try's gRPC deadline (Date.now() ms, sent as grpc-timeout; 0 = none), and whether
   * it is the exchange's deadline_ms (else the service's response_ms) that set it. */
  deadline = 0;
  private deadlineIsExchange = false;
  private initial: HeaderField[] = [];
  private unary: Buffer | null = null;
  private records = 0;
  private released = false;
  // --- retries (retry.ts RetryCall): counters, no object of their own ---
  readonly policy: CompiledRetry | null;
  retryNext: DispatchFn | null = null;
  budget: RetryBudget | null = null;
  tries = 1;
  relayed = false;

  constructor(
    readonly ctx: RequestContext,
    private readonly route: RouteTranscoder,
    private readonly binding: CompiledBinding<GrpcMethod>,
    public target: RuntimeTarget,
    readonly headers: readonly string[],
    readonly body: Buffer,
    private readonly streaming: boolean,
    private readonly sse: boolean,
  ) {
    this.path = binding.target.path;
    // What a retry may repeat is decided by the client's method, as on HTTP: the verb of a
    // google.api.http rule says what the gRPC method does (GET reads, POST creates).
    this.idempotent = isIdempotentMethod(ctx.method);
    this.policy = streaming ? null : ctx.route!.retry;
  }

  // UpstreamLeg
  abort(): void {
    if (this.complete) return;
    this.complete = true;
    this.release();
    this.controller?.abort(abortedError());
  }
  resume(): void { if (!this.complete) this.controller?.resume(); }
  settle(): void { this.complete = true; this.release(); }
  private release(): void {
    if (this.released) return;
    this.released = true;
    this.target.inFlight--;
  }

  /** A try's deadlines: the client's, sent upstream as `grpc-timeout`, and the deadline ticker's
   * (a backstop: client.ts's timer ends the call first, and cancels it on the server). A unary
   * call is bounded by response_ms, a stream only between messages (idle_ms, the ticker); the
   * time left of the exchange's deadline_ms bounds both, as the deadline header does on HTTP. */
  startTry(): void {
    const ctx = this.ctx;
    const service = ctx.route!.service;
    // A try of a unary call: also per_try_timeout_ms (this.policy is null for a stream).
    const perTry = this.policy === null ? 0 : this.policy.perTryTimeoutMs;
    const tryMs = perTry !== 0 && perTry < service.responseMs ? perTry : service.responseMs;
    let ms = this.streaming ? 0 : tryMs;
    this.deadlineIsExchange = false;
    if (ctx.exchangeDeadline !== 0) {
      const left = remainingMs(ctx);
      if (ms === 0 || left < ms) { ms = Math.max(left, 1); this.deadlineIsExchange = true; }
    }
    this.deadline = ms === 0 ? 0 : Date.now() + ms;
    ctx.phase = PHASE.WAITING;
    ctx.deadline = coarseNow + tryMs;
  }

  /** A try's response deadline (response_ms, per_try_timeout_ms, idle_ms) passed, by the
   * ticker or client.ts's timer: retried when the policy's `on` has `timeout`, else `spec`. */
  timedOut(spec: GatewayErrorSpec, flag: number): void {
    if (this.policy !== null && this.policy.onTimeout && this.records === 0) {
      const wait = retryDelay(this, RETRY_REASON.TIMEOUT, -1);
      if (wait >= 0) {
        this.controller?.abort(abortedError()); // cancels the try upstream; its status is not told
        this.awaitRetry(wait);
        return;
      }
    }
    this.fail(spec, flag);
  }

  /** The try ended with a status the policy retries: true when a retry was scheduled. The
   * server's `grpc-retry-pushback-ms` trailer (gRPC's Retry-After, gRFC A6) replaces the
   * backoff, up to backoff_ms.max; one that is not a count of ms asks for no retry. */
  private retryOnStatus(code: number, trailers: readonly HeaderField[]): boolean {
    const policy = this.policy;
    if (policy === null || code > 30 || ((policy.grpcCodes >>> code) & 1) === 0) return false;
    const pushback = trailerValue(trailers, 'grpc-retry-pushback-ms');
    let pushbackMs = -1;
    if (pushback !== undefined) {
      const text = String(pushback);
      if (!/^\d{1,9}$/.test(text)) return false;
      pushbackMs = Number(text);
    }
    const wait = retryDelay(this, RETRY_REASON.STATUS, pushbackMs);
    if (wait < 0) return false;
    this.awaitRetry(wait);
    return true;
  }

  /** Between two tries: the try's target is released; the ticker sends the next (sendTry). */
  private awaitRetry(wait: number): void {
    const ctx = this.ctx;
    this.controller = null;
    this.release();
    this.initial = [];
    this.unary = null;
    ctx.phase = PHASE.RETRY_WAIT;
    ctx.deadline = coarseNow + wait;
  }

  /** The next try: another target when there is one, with the time left as its deadline. */
  sendTry(): void {
    const ctx = this.ctx;
    const service = ctx.route!.service;
    const target = pickRetryTarget(service, this.target);
    this.target = target;
    ctx.target = target;
    target.inFlight++;
    this.released = false;
    this.tries++;
    this.startTry();
    (this.retryNext ?? service.dispatch)(this, this);
  }

  // DispatchHandler
  onRequestStart(controller: DispatchController): void {
    this.controller = controller;
    if (this.ctx.ended) { this.abort(); return; }
    this.ctx.upstreamStartTime = performance.now();
  }

  onResponseStart(_c: DispatchController, _status: number, headers: HeaderField[]): void {
    this.ctx.upstreamFirstByteTime = performance.now();
    this.initial = headers;
  }

  // Called from the HTTP/2 stream's events, outside the chain's fault handler: guarded.
  onResponseData(controller: DispatchController, message: Buffer): void {
    guarded(this.ctx, () => this.responseData(controller, message));
  }

  onResponseEnd(controller: DispatchController, trailers: HeaderField[] | null): void {
    guarded(this.ctx, () => this.responseEnd(controller, trailers));
  }

  private responseData(controller: DispatchController, message: Buffer): void {
    const ctx = this.ctx;
    if (ctx.ended || ctx.aborted) { this.abort(); return; }
    ctx.deadline = coarseNow + ctx.route!.service.idleMs;
    if (!this.streaming) { this.unary ??= message; return; }
    let json: string;
    try { json = this.print(message); } catch (err) { this.abort(); this.badResponse((err as Error).message); return; }
    if (this.records === 0) {
      this.relayed = true;
      ctx.phase = PHASE.STREAMING;
      startResponse(ctx, 200, '', this.responseHead(this.sse ? 'text/event-stream' : 'application/x-ndjson'), -1, false);
    }
    this.records++;
    const record = this.sse ? `data: ${json}\n\n` : json + '\n';
    if (writeResponseData(ctx, Buffer.from(record, 'utf8')) === WRITE_FULL) controller.pause();
  }

  private responseEnd(_c: DispatchController, trailers: HeaderField[] | null): void {
    const ctx = this.ctx;
    ctx.upstreamLastByteTime = performance.now();
    if (ctx.ended) { this.settle(); return; }
    const t = trailers ?? [];
    const code = Number(trailerValue(t, 'grpc-status') ?? '2');
    if (code === GRPC_DEADLINE_EXCEEDED && this.deadline !== 0 && Date.now() >= this.deadline - DEADLINE_SLACK_MS) {
      // The gateway's own deadline, reached by client.ts's timer (or the server's, on the
      // grpc-timeout it was sent) before the ticker: answered as the ticker would, and without
      // the status message (a server's may name its own address).
      if (this.deadlineIsExchange) this.fail(GW_ERR.deadline_exceeded, RESPONSE_FLAG.UPSTREAM_TIMEOUT);
      else this.timedOut(GW_ERR.upstream_timeout, RESPONSE_FLAG.UPSTREAM_TIMEOUT);
      return;
    }
    if (code !== 0 && this.retryOnStatus(code, t)) return;
    this.complete = true;
    this.release();
    if (code !== 0) {
      // The server's grpc-message comes as its bytes (client.ts decoded the escapes): text
      // here, where it goes into JSON, U+FFFD for what is not UTF-8.
      const m = trailerValue(t, 'grpc-message');
      const message = m === undefined ? '' : typeof m === 'string' ? m : m.toString('utf8');
      const bin = trailerValue(t, 'grpc-status-details-bin');
      // client.ts hands -bin metadata on decoded (a value that is not base64 left out).
      const status = upstreamStatusJson(code, message, Buffer.isBuffer(bin) ? bin : null, this.route.root);
      this.failWith(status, code);
      return;
    }
    if (!this.streaming) {
      if (this.unary === null) { this.failWith(JSON.stringify({ code: 13, message: 'the upstream answered a unary call without a message', details: [] }), 13); return; }
      const message = this.unary;
      if (message.length >= this.route.config.offloadBytes) {
        // A large response: printed in the pool (pool.ts).
        const bundle = this.route.bundle();
        offload(ctx, { op: 'print', bundle: bundle.id, data: bundle.data, type: this.binding.target.responseType.fullName.slice(1), bytes: message, print: this.route.print, field: this.binding.responseBody }, (result) => {
          if (ctx.ended) return;
          if (result.ok) this.sendUnary(result.value as string);
          else this.badResponse(result.message);
        });
        return;
      }
      let json: string;
      try { json = this.print(message); } catch (err) { this.badResponse((err as Error).message); return; }
      this.sendUnary(json);
      return;
    }
    // An empty stream is a 200 with no records.
    if (this.records === 0) startResponse(ctx, 200, '', this.responseHead(this.sse ? 'text/event-stream' : 'application/x-ndjson'), -1, false);
    endResponse(ctx);
  }

  private sendUnary(json: string): void {
    const ctx = this.ctx;
    this.relayed = true;
    const bytes = Buffer.from(json, 'utf8');
    startResponse(ctx, 200, '', this.responseHead('application/json'), bytes.length, ctx.method === 'HEAD');
    if (ctx.method === 'HEAD') endResponse(ctx); else writeResponseData(ctx, bytes);
  }

  /** A response message the codec cannot print (malformed bytes, an Any of an unknown type). */
  private badResponse(detail: string): void {
    const ctx = this.ctx;
    ctx.responseFlags |= RESPONSE_FLAG.UPSTREAM_PROTOCOL_ERROR;
    if (this.records === 0) replyGatewayError(ctx, GW_ERR.upstream_bad_response, detail);
    else this.endStreamWithError(gatewayStatusJson(GW_ERR.upstream_bad_response, ctx.correlationId, detail));
  }

  onResponseError(_c: DispatchController, err: UpstreamError): void {
    if (this.complete) return;
    // A policy's refusal (the breaker's) may carry headers for the reply (its Retry-After).
    this.fail(UPSTREAM_ERR[err.code] ?? GW_ERR.upstream_unavailable, RESPONSE_FLAG.UPSTREAM_RESET, (err as { headers?: readonly string[] }).headers ?? null);
  }

  /** The gateway ends the call (deadline ticker, an upstream failure): as proxy.ts's fail. */
  fail(spec: GatewayErrorSpec, flag: number, extraHeaders: readonly string[] | null = null): void {
    const ctx = this.ctx;
    this.abort();
    if (ctx.ended) return;
    ctx.responseFlags |= flag;
    if (this.records === 0) replyGatewayError(ctx, spec, '', extraHeaders);
    else this.endStreamWithError(gatewayStatusJson(spec, ctx.correlationId));
  }

  /** An error status: the mapped HTTP status and the Status body before any record; after
   * one, a final error record (the client never takes a cut stream for a complete one). */
  private failWith(statusJson: string, code: number): void {
    const ctx = this.ctx;
    this.relayed = true;
    if (this.records === 0) {
      replyJson(ctx, httpStatusOf(code), statusJson, this.responseHeaderList());
    } else {
      this.endStreamWithError(statusJson);
    }
  }

  private endStreamWithError(statusJson: string): void {
    const ctx = this.ctx;
    const record = this.sse ? `event: error\ndata: ${statusJson}\n\n` : `{"error":${statusJson}}\n`;
    writeResponseData(ctx, Buffer.from(record, 'utf8'));
    endResponse(ctx);
  }

  private print(message: Buffer): string {
    return printMessage(this.binding.target.responseType, message, this.route.print, this.binding.responseBody);
  }

  private responseHead(contentType: string): HeaderField[] {
    const h: HeaderField[] = ['content-type', contentType];
    for (const x of this.responseHeaderList()) h.push(x);
    return h;
  }

  /** The upstream's initial metadata that the allowlist names and that may be written as is. */
  private responseHeaderList(): string[] {
    const out: string[] = [];
    const allow = this.route.responseHeaders;
    if (allow.size === 0) return out;
    const md = this.initial;
    for (let i = 0; i < md.length; i += 2) {
      const name = String(md[i]);
      const value = md[i + 1];
      if (typeof value !== 'string' || !allow.has(name) || !isHeaderName(name) || !isFieldValueBytes(value)) continue;
      out.push(name, value);
    }
    return out;
  }
}

function trailerValue(list: readonly HeaderField[], lower: string): HeaderField | undefined {
  for (let i = 0; i < list.length; i += 2) if (lowerEquals(list[i], lower)) return list[i + 1];
  return undefined;
}
