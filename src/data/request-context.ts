// Per-request state, and the runtime shapes a request meets (route, service, target, filter).
// They are declared together because they refer to each other (a route holds filters, a
// filter takes a context, a context holds its route): one module, no import cycle.
//
// Every RequestContext field is set in the constructor with its final type, so all contexts
// share one hidden class (fast property access, no dictionary mode).
import type { HttpResponse } from './uws.js';
import type { Readable } from 'node:stream';
import type { CompiledConfig, CompiledRetry, CompiledSticky, EscapedSlashes, RewritePart } from '../shared/compiled-config.js';
import type { RouteMatcher } from './route-match.js';
import type { GatewayErrorSpec } from '../shared/errors.js';
import type { DispatchFn, HeaderField, UpstreamTarget } from './upstream/dispatch.js';
import type { ClientPeer } from '../shared/tls-config.js';

/** RequestContext.bodyJson before any filter parsed the body (src/data/request-body.ts). */
export const NOT_PARSED: unique symbol = Symbol('not parsed');

export const NEXT = 0;
export const REPLY = 1;
export const WAIT = 2;
export type Verdict = typeof NEXT | typeof REPLY | typeof WAIT;

/**
 * The response head as a filter's onResponse sees it: the status, and header edits. `set`
 * replaces every header of that name the upstream sent (so an upstream's own `RateLimit` or
 * `Access-Control-Allow-Origin` never goes out twice); `append` adds one more (for list
 * headers such as `Vary`); `remove` drops every copy; `removePrefixed` every header of a family. Names are matched case-insensitively.
 */
export interface ResponseHead {
  readonly status: number;
  set(name: string, value: string): void;
  append(name: string, value: string): void;
  remove(name: string): void;
  /** Drops every header whose name starts with `prefix` (lower-case), in one pass: CORS
   * replaces all of the upstream's `access-control-*` headers. */
  removePrefixed(prefix: string): void;
}

/**
 * A built filter. onRequest runs once per request in chain order; onResponse (optional)
 * once per response in reverse chain order, for an upstream response and a local reply
 * alike, before the status line is written; onEnd (optional) exactly once when the exchange
 * ends, however it ends (response sent, client gone, upstream failure, drain).
 */
export interface Filter {
  readonly name: string;
  onRequest(ctx: RequestContext): Verdict;
  onResponse?(ctx: RequestContext, head: ResponseHead): void;
  onEnd?(ctx: RequestContext): void;
  /** Optional: the exchange became a WebSocket connection (src/data/websocket.ts), once, just
   * after the 101; its onEnd then runs when the connection closes. */
  onWebSocketOpen?(ctx: RequestContext): void;
}

/**
 * Where a filter sits in a route's chain; the chain is ordered by phase, then by the
 * registry's order within a phase. edge: before anything else (CORS preflight, IP rules);
 * authn: who the client is (JWT, API keys); authz: what it may do; policy: rate limits,
 * WAF; transform: request/response rewriting just before the upstream.
 */
export const FILTER_PHASES = ['edge', 'authn', 'authz', 'policy', 'transform'] as const;
export type FilterPhase = (typeof FILTER_PHASES)[number];

export interface RuntimeTarget extends UpstreamTarget {
  readonly origin: string;
  readonly hostHeader: string;
  readonly poolKey: string;
  /** Requests of this worker in flight to this target (least_request reads it). */
  inFlight: number;
  /** Its slot in the health table (src/shared/health-table.ts); -1 when the service has no
   * health policy. */
  readonly healthSlot: number;
}

/** A target for the next request; null only when every target is down (health-aware pickers). */
export type Picker = (targets: readonly RuntimeTarget[]) => RuntimeTarget | null;

export interface RuntimeService {
  readonly name: string;
  readonly targets: readonly RuntimeTarget[];
  readonly pick: Picker;
  /** Whether a target may take requests (the health table's byte; always true without a health policy). */
  readonly isUp: (target: RuntimeTarget) => boolean;
  /** The service's interceptors composed over the target's client, once per generation. */
  readonly dispatch: DispatchFn;
  readonly connectMs: number;
  readonly responseMs: number;
  readonly idleMs: number;
  /** Answers the request from the service's last-good fallback cache (docs/resilience.md#fallback-cache):
   * true = answered; null when the service has no fallback (src/data/upstream/fallback-cache.ts). */
  readonly serveFallback: ((ctx: RequestContext) => boolean) | null;
}

/** A WebSocket route's upstream side (src/data/websocket.ts): forward() hands it an upgrade request. */
export interface WebSocketHook {
  forward(ctx: RequestContext): void;
}

/** Who closed a WebSocket connection (WebSocketLeg.closedBy): CLOSED_BY_NAMES gives the names. */
export const CLOSED_BY = { NONE: 0, CLIENT: 1, UPSTREAM: 2, GATEWAY: 3 } as const;
export const CLOSED_BY_NAMES = ['-', 'client', 'upstream', 'gateway'] as const;

/** What an upgrade request's exchange records of its WebSocket connection, for logs and metrics. */
export interface WebSocketLeg {
  /** The upgrade went through (101 sent): the exchange is a relayed connection. */
  readonly opened: boolean;
  /** Messages relayed client to upstream and upstream to client (their payload bytes are
   * the exchange's bytesIn and bytesOut). */
  readonly messagesIn: number;
  readonly messagesOut: number;
  /** The close code of the client's side (sent or received; 1005: none, 1006: no close frame), 0 while open. */
  readonly closeCode: number;
  /** CLOSED_BY. */
  readonly closedBy: number;
  /**
   * The metrics filter's onWebSocketOpen hands the relay its route's counters (a worker's
   * array and the region's offset: src/shared/metrics-layout.ts WS_SLOT): messages and bytes
   * are counted there as they are relayed, not only when the connection ends.
   */
  countInto(counters: Float64Array, at: number): void;
}

/** A transcoding route's upstream side (src/grpc/runtime.ts): forward() hands it the request. */
export interface TranscoderHook {
  forward(ctx: RequestContext): void;
}

export interface RuntimeRoute {
  readonly index: number;
  readonly name: string;
  /** The route's service; for a route with its own `circuit_breaker` or `fallback`, a copy of
   * it with the route's dispatch chain and serveFallback (generation.ts routeService): same
   * name, targets and balancer, so compare services by name, not by identity. */
  readonly service: RuntimeService;
  readonly filters: readonly Filter[];
  /** Filters with onResponse, in reverse chain order; null when none (one comparison). */
  readonly responseFilters: readonly Filter[] | null;
  /** Filters with onEnd, in chain order; null when none. */
  readonly endFilters: readonly Filter[] | null;
  readonly stripPrefixLength: number;
  readonly rewrite: readonly RewritePart[] | null;
  readonly preserveHost: boolean;
  readonly escapedSlashes: EscapedSlashes;
  /** Retry policy (src/data/upstream/retry.ts), or null; the exchange deadline in ms (0 =
   * none) and the header it goes upstream in ('' = none). */
  readonly retry: CompiledRetry | null;
  readonly deadlineMs: number;
  readonly deadlineHeader: string;
  /** REST/JSON to gRPC for this route, or null (one comparison in forward()). */
  readonly transcoder: TranscoderHook | null;
  /** A weighted split (`services:`), or null (one comparison in forward()). The route as
   * matched then has no service yet (`service` is UNCHOSEN_SERVICE, named '-'): after its
   * request filters, forward() chooses a member and makes that member's RuntimeRoute
   * ctx.route, so everything downstream reads the chosen service, its chain and its policies. */
  readonly split: RuntimeSplit | null;
  /** This route's index among its split's members (the metrics recorder reads it), -1 for a
   * route as matched. */
  readonly splitMember: number;
  /** Copies of the route's requests to another service (`mirror:`), or null. */
  readonly mirror: RuntimeMirror | null;
  /** Relays WebSocket upgrades (`websocket` on the route), or null: they are served as plain HTTP. */
  readonly websocket: WebSocketHook | null;
}

/** A route's split, built once per route per generation (generation.ts); chosen from in split.ts. */
export interface RuntimeSplit {
  /** The route as each member's requests see it: the same filters and name, the member's
   * service (with the route's own breaker chain over it, if any), retry policy and deadline. */
  readonly members: readonly RuntimeRoute[];
  /** cumulative[i] = the weights of members 0..i; a point in [0, total) falls in one member. */
  readonly cumulative: Float64Array;
  readonly total: number;
  /** Member taken when rounding puts a point at `total`: the last one with a weight. */
  readonly last: number;
  readonly sticky: CompiledSticky | null;
}

/** A route's mirror in one worker (src/data/upstream/mirror.ts). */
export interface RuntimeMirror {
  readonly routeName: string;
  readonly service: RuntimeService;
  readonly percent: number;
  readonly maxBodyBytes: number;
  readonly maxInFlight: number;
  /** Mirrored requests of the route in flight in this worker: shared by the route's mirrors
   * of every generation, so a reload does not lift the bound. */
  readonly inFlight: { n: number };
  /** This worker's lobby_mirror_requests_total counters of the route (MIRROR_RESULTS order)
   * at `countersAt`, or null when metrics are off. */
  readonly counters: Float64Array | null;
  readonly countersAt: number;
}

/** The upstream side of a forwarded request, as the exchange drives it (proxy.ts). */
export interface UpstreamLeg {
  /** Every response byte arrived (finishing must not close a reusable connection). */
  readonly complete: boolean;
  /** Stops the upstream request (closes its connection unless the response was complete). */
  abort(): void;
  /** The client connection drained: read more of the upstream response. */
  resume(): void;
  /** Every body byte the response declared went to the client: the upstream side is done
   * without closing a connection that may be reused. */
  settle(): void;
  // What the deadline ticker drives (proxy.ts expireRequest), for both kinds of call (the
  // HTTP UpstreamCall and the gRPC GrpcCall):
  /** The exchange failed: `spec` answered if nothing was, else the response is cut. */
  fail(spec: GatewayErrorSpec, flag: number): void;
  /** The try's response deadline passed: retried when the route's policy allows, else `spec`. */
  timedOut(spec: GatewayErrorSpec, flag: number): void;
  /** A retry's backoff (PHASE.RETRY_WAIT) is over: the next try goes out. */
  sendTry(): void;
}

/** What a request reads of its generation (generation.ts implements it). */
export interface GenerationView {
  readonly id: number;
  readonly config: CompiledConfig;
  readonly matcher: RouteMatcher;
  /** API version resolution, or null when no route has match.version (one comparison). */
  readonly versioning?: VersionRouting | null;
  /** onEnd filters of a request that matched no route (the access log's 404 line), or null. */
  readonly unroutedEndFilters: readonly Filter[] | null;
  route(index: number): RuntimeRoute;
}

/** Routing under the request's API version (api-version.ts VersionResolver implements it). */
export interface VersionRouting {
  /** Route index, or a negative route-match / escaped-slashes code; sets ctx.apiVersion*. */
  route(ctx: RequestContext, url: string): number;
  /** The error for VERSION_NOT_SERVED, and the Vary header pair to send with it (or null). */
  versionError(ctx: RequestContext): GatewayErrorSpec;
  varyFor(ctx: RequestContext): readonly string[] | null;
}

/** Where the request is in its life; the deadline ticker reads it. */
export const PHASE = {
  /** Not forwarded yet (front door, filters, reading a buffered body). */
  ACCEPTED: 0,
  /** Routed, waiting for an upstream connection. */
  CONNECTING: 1,
  /** Connected, request body still streaming from the client. */
  SENDING: 2,
  /** Request sent, waiting for response headers. */
  WAITING: 3,
  /** Response headers received, body streaming to the client. */
  STREAMING: 4,
  /** Response finished or connection gone. */
  DONE: 5,
  /** Between two tries: the backoff before a retry (src/data/upstream/retry.ts). */
  RETRY_WAIT: 6,
} as const;

/**
 * Why an exchange ended the way it did (Envoy's response flags), a bit mask on the context
 * for logs and metrics. RESPONSE_FLAG_NAMES gives their short names.
 */
export const RESPONSE_FLAG = {
  /** NR: no route matched. */
  NO_ROUTE: 1 << 0,
  /** UF: connecting to the upstream failed (refused or timed out). */
  UPSTREAM_CONNECT_FAILURE: 1 << 1,
  /** UT: the upstream did not answer within its timeout. */
  UPSTREAM_TIMEOUT: 1 << 2,
  /** UC: the upstream connection closed or reset mid-exchange. */
  UPSTREAM_RESET: 1 << 3,
  /** UPE: the upstream's response broke HTTP. */
  UPSTREAM_PROTOCOL_ERROR: 1 << 4,
  /** UO: too many requests waiting for an upstream connection. */
  UPSTREAM_OVERFLOW: 1 << 5,
  /** RL: a rate limit refused the request. */
  RATE_LIMITED: 1 << 6,
  /** UAEX: authentication or authorization refused the request. */
  UNAUTHORIZED: 1 << 7,
  /** DC: the client went away before the response was complete. */
  DOWNSTREAM_CLOSED: 1 << 8,
  /** LR: the gateway answered the request itself. */
  LOCAL_REPLY: 1 << 9,
  /** DPE: the request broke HTTP or the gateway's limits (400, 413, 414, 431). */
  DOWNSTREAM_PROTOCOL_ERROR: 1 << 10,
  /** SI: the request's exchange was ended by a shutdown (drain deadline). */
  DRAINED: 1 << 11,
  /** UH: no target of the service was healthy (health checks, outlier ejection). */
  NO_HEALTHY_UPSTREAM: 1 << 12,
  /** URX: a try failed in a retryable way and the retry policy's attempts were used up. */
  UPSTREAM_RETRY_LIMIT_EXCEEDED: 1 << 13,
  /** CO: the service's circuit breaker was open: refused without trying the upstream. */
  CIRCUIT_OPEN: 1 << 14,
  /** SF: answered from the last-good fallback cache (stale-if-error) instead of the upstream. */
  FALLBACK_SERVED: 1 << 15,
  /** OL: refused by overload protection (server.max_connections, server.overload). */
  OVERLOADED: 1 << 16,
} as const;

export const RESPONSE_FLAG_NAMES: readonly [number, string][] = [
  [RESPONSE_FLAG.NO_ROUTE, 'NR'], [RESPONSE_FLAG.UPSTREAM_CONNECT_FAILURE, 'UF'],
  [RESPONSE_FLAG.UPSTREAM_TIMEOUT, 'UT'], [RESPONSE_FLAG.UPSTREAM_RESET, 'UC'],
  [RESPONSE_FLAG.UPSTREAM_PROTOCOL_ERROR, 'UPE'], [RESPONSE_FLAG.UPSTREAM_OVERFLOW, 'UO'],
  [RESPONSE_FLAG.RATE_LIMITED, 'RL'], [RESPONSE_FLAG.UNAUTHORIZED, 'UAEX'],
  [RESPONSE_FLAG.DOWNSTREAM_CLOSED, 'DC'], [RESPONSE_FLAG.LOCAL_REPLY, 'LR'],
  [RESPONSE_FLAG.DOWNSTREAM_PROTOCOL_ERROR, 'DPE'], [RESPONSE_FLAG.DRAINED, 'SI'],
  [RESPONSE_FLAG.NO_HEALTHY_UPSTREAM, 'UH'],
  [RESPONSE_FLAG.UPSTREAM_RETRY_LIMIT_EXCEEDED, 'URX'],
  [RESPONSE_FLAG.CIRCUIT_OPEN, 'CO'], [RESPONSE_FLAG.FALLBACK_SERVED, 'SF'], [RESPONSE_FLAG.OVERLOADED, 'OL'],
];

/** Short names of a flag mask, comma-separated ('-' for none), as an access log writes them. */
export function responseFlagNames(flags: number): string {
  if (flags === 0) return '-';
  let out = '';
  for (const [bit, name] of RESPONSE_FLAG_NAMES) if (flags & bit) out = out === '' ? name : out + ',' + name;
  return out;
}

export class RequestContext {
  readonly res: HttpResponse;
  gen: GenerationView;
  route: RuntimeRoute | null = null;
  target: RuntimeTarget | null = null;
  /** Method as sent by the client (case-sensitive). */
  method = '';
  methodBit = 0;
  /** Normalized path (no query). */
  path = '';
  /** Raw query string without `?` ('' when absent). */
  query = '';
  /** Host header as sent ('' when absent). */
  host = '';
  /** Lower-case host without port, for routing. */
  hostName = '';
  clientIp = '';
  /** The listener it arrived on: shared/tls-config.ts LISTENER (plain, TLS, plain-to-redirect). */
  listener = 0;
  /** The client's TLS connection on the mTLS listener (src/data/mtls-listener.ts), else null. */
  peer: ClientPeer | null = null;
  correlationId = '';
  /** Client's correlation id header ('' when absent). */
  clientCorrelationId = '';
  /** Client's X-Forwarded-For ('' when absent). */
  forwardedFor = '';
  /** Tokens of the client's Connection header other than keep-alive/close, or ''. */
  connectionTokens = '';
  /** The client's Connection header says `close`: uWS closes after the response but does not
   * say so, so the exchange writes `Connection: close` (exchange.ts). */
  clientClose = false;
  /** Request headers to forward, flat [name, value, ...] byte strings, end-to-end only. */
  readonly headers: string[] = [];
  headerBytes = 0;
  /** Header fields the client sent, and the request target's length (path, ?, query): the
   * front door counts them for the per-route limits (src/filters/route-limits). */
  headerCount = 0;
  requestTargetBytes = 0;
  /** Declared Content-Length, or -1. */
  contentLength = -1;
  chunked = false;
  /** Path (and query) to request upstream, computed right after routing. */
  upstreamPath = '';
  /** Request body to forward: a buffer (small bodies), a stream (large/chunked) or null. */
  body: Buffer | Readable | null = null;
  /** The streamed body's reading from the client is paused (backpressure). */
  clientPaused = false;
  /** The upstream request, once forwarded (proxy.ts). */
  upstream: UpstreamLeg | null = null;
  /** A WebSocket upgrade request on a route that relays them (src/data/websocket.ts), else null. */
  websocket: WebSocketLeg | null = null;
  /** The upstream response head waiting to be written with the first body bytes (one
   * corked write), or null: its status line text and flat raw headers. */
  pendingStatusText = '';
  pendingHeaders: HeaderField[] | null = null;
  /** Response body length to relay (tryEnd), -1 when unknown (chunked). */
  responseLength = -1;
  /** HEAD, 204 or 304: no body goes to the client. */
  bodiless = false;
  /** Part of a chunk uWS could not take yet (tryEnd under backpressure). */
  pendingChunk: Buffer | null = null;
  pendingOffset = 0;
  /** The rate-limit filter's RateLimit header value for this request ('' = it sends none), and
   * its X-RateLimit-Limit/-Remaining/-Reset values: set in onRequest, sent by onResponse. */
  rateLimit = '';
  rateLimitLimit = '';
  rateLimitRemaining = '';
  rateLimitReset = '';
  /** The API version the request is served as (docs/configuration.md#api-versioning): a
   * declared `versioning.versions` name, '' when none (versioning off, or a version the config
   * does not declare): a bounded set, fit for a metrics label and the access log. */
  apiVersion = '';
  /** Where it came from: VERSION_SOURCE (src/shared/api-version.ts; VERSION_SOURCE_NAMES). */
  apiVersionSource = 0;
  /** Index of apiVersion in `versioning.versions`, -1 when none. */
  apiVersionIndex = -1;
  /** The cors filter's Access-Control-Allow-Origin for this request ('' = no CORS headers),
   * and whether the request is a preflight it answers: set in onRequest, sent by onResponse. */
  corsOrigin = '';
  corsPreflight = false;
  /** The WAF's fired rule ids, comma-separated ('' = none or no WAF), and whether they
   * reached the threshold (refused in block mode, admitted in report mode): src/filters/waf. */
  wafRules = '';
  wafBlocked = false;
  /** The buffered body parsed as JSON, once, by whichever filter needs it first
   * (src/data/request-body.ts jsonBodyOf); NOT_PARSED until then. */
  bodyJson: unknown = NOT_PARSED;
  /** The request body limit in force (bytes): the server's, or the route's max_body_bytes
   * (src/filters/route-limits); -1 until a body is read. A streamed body past it gets 413. */
  bodyLimit = -1;
  /** Index of the next filter in the route's chain (see chain.ts). */
  nextFilter = 0;
  phase = 0;
  /** Absolute deadline (coarse clock ms) for the current phase; 0 = none. */
  deadline = 0;
  /** Absolute deadline of the whole exchange (the route's deadline_ms from routing); 0 = none. */
  exchangeDeadline = 0;
  /** The client connection is gone: never touch `res` again. */
  aborted = false;
  /** The response status line has been written to the client. */
  responseStarted = false;
  /** The exchange ended (exchange.ts endExchange): onEnd ran, nothing more is written. */
  ended = false;
  /** Intrusive list of open requests (deadlines.ts). */
  prevOpen: RequestContext | null = null;
  nextOpen: RequestContext | null = null;

  // --- what the exchange records (exchange.ts), for logs and metrics ---------------------
  /** performance.now() when the request was accepted. */
  readonly startTime: number;
  /** Status sent to the client (0 until the head is written). */
  status = 0;
  /** Request body bytes received from the client. */
  bytesIn = 0;
  /** Response body bytes handed to the client connection. */
  bytesOut = 0;
  /** performance.now() of the upstream milestones (0 = not reached): request on its way
   * (a connection assigned), first response byte (head parsed), last response byte. */
  upstreamStartTime = 0;
  upstreamFirstByteTime = 0;
  upstreamLastByteTime = 0;
  /** RESPONSE_FLAG bits. */
  responseFlags = 0;
  /** The gateway error a local reply answered with (its code labels metrics), or null. */
  replySpec: GatewayErrorSpec | null = null;
  /** Upstream resends (retries, and the resend after a stale keep-alive connection), and
   * per reason a 4-bit count plus the budget-exhausted bit (src/data/upstream/retry.ts). */
  retries = 0;
  retryReasons = 0;
  /** Authenticated subject (the token's `sub`; '' when none): auth-jwt sets it, key-auth
   * sets it to the consumer's name when no token did. */
  subject = '';
  /** The consumer whose API key authenticated the request ('' = none): key-auth sets it, the
   * rate limiter's `key: consumer` reads it, with the consumer's own rate (null: the limit's). */
  consumer = '';
  consumerRate: { readonly ratePerMs: number; readonly burst: number; readonly burstText: string } | null = null;
  /** performance.now() when the chain finished and the request went to the upstream
   * (0 = not recorded: only the access-log and server-timing filters record it). */
  dispatchTime = 0;
  /** performance.now() when the authn phase finished (server-timing's mark; 0 = none). */
  authDoneTime = 0;

  // --- trace context (src/filters/tracing/): '' when tracing is off for the route ----------
  /** W3C trace id (32 lower-case hex), this hop's span id and the caller's (16 hex; '' when
   * the trace started here). */
  traceId = '';
  spanId = '';
  parentSpanId = '';
  /** The trace's sampled flag (traceparent flags bit 0). */
  traceSampled = false;

  constructor(res: HttpResponse, gen: GenerationView, startTime: number) {
    this.res = res;
    this.gen = gen;
    this.startTime = startTime;
  }
}

export type { HeaderField };
