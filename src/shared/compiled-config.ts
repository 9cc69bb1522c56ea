// The compiled configuration: what the control plane hands the data plane.
// Plain, structured-cloneable data (it crosses to worker threads with postMessage);
// everything a request needs is decided here, at compile time, never per request.
import type { CompiledServerTls, CompiledUpstreamTls, TlsSource } from './tls-config.js';
import type { CompiledBreaker, CompiledBreakerState, CompiledFallback, CompiledOverload } from './breaker-layout.js';
import type { CompiledGrpcService, CompiledTranscode } from '../grpc/compiled.js';
import type { CompiledWebSocket } from './websocket-config.js';

/** One piece of a templated rewrite: literal text, or the value of a captured `{param}`. */
export type RewritePart = { literal: string } | { param: number };

/** Request bodies up to this size (declared by Content-Length) are buffered before they are
 * forwarded (src/data/server.ts); larger and chunked ones are streamed. */
export const BUFFERED_BODY_MAX = 64 * 1024;

export interface CompiledLimits {
  maxUrlBytes: number;
  maxHeaderBytes: number;
  maxBodyBytes: number;
}

/**
 * What a path with `%2F` or `%5C` gets (`server.escaped_slashes`, `routes[].escaped_slashes`;
 * src/data/escaped-slashes.ts): 400, forwarded escaped, or decoded to `/` before routing.
 */
export type EscapedSlashes = 'reject' | 'keep' | 'unescape';

export interface CompiledServer {
  host: string;
  port: number;
  /** Resolved worker-thread count (`auto` already replaced by the core count). */
  workers: number;
  limits: CompiledLimits;
  /** How long SIGTERM waits for in-flight requests before the process exits anyway. */
  drainTimeoutMs: number;
  /** How long SIGTERM keeps serving, with /readyz failing, before the drain starts (0: none). */
  drainDelayMs: number;
  /** For a path with escaped slashes that matches no route (routes carry their own). */
  escapedSlashes: EscapedSlashes;
  /** `server.tls` (null: no HTTPS listener). */
  tls: CompiledServerTls | null;
  /** Its files, resolved (read by the control plane only: src/control/tls-manager.ts). */
  tlsSource: TlsSource | null;
  /** `server.max_connections` and `server.overload` (src/data/overload.ts); null/absent: off. */
  overload?: CompiledOverload | null;
}

export interface CompiledTarget {
  /** Origin for the undici Pool, e.g. `http://127.0.0.1:9001` or `https://10.0.0.5:443` (no path). */
  origin: string;
  /** Host header value sent upstream when the route does not keep the client's (`host:port`). */
  hostHeader: string;
}

export interface CompiledService {
  name: string;
  targets: CompiledTarget[];
  /** TLS settings for the https:// targets (null when there are none). */
  tls: CompiledUpstreamTls | null;
  balance: 'round_robin' | 'least_request';
  timeouts: { connectMs: number; responseMs: number; idleMs: number };
  /** Max keep-alive connections per target. */
  connectionsPerTarget: number;
  /** Max GET/HEAD requests in flight per upstream connection (1 = no pipelining). */
  pipelining: number;
  /** `health_check` and `outlier` (src/control/health-config.ts), null when not configured. */
  healthCheck?: CompiledHealthCheck | null;
  outlier?: CompiledOutlier | null;
  /** Its slots in the health table (src/shared/health-table.ts), set by the supervisor when
   * it publishes; null when the service has no health policy. */
  health?: { serviceSlot: number; targetSlots: number[] } | null;
  /** Some route of the service has a retry policy or a deadline (the retry interceptor is
   * composed only then: src/data/upstream/retry.ts). */
  retryUsed?: boolean;
  /** `circuit_breaker` (src/data/upstream/breaker.ts); null/absent: none. */
  circuitBreaker?: CompiledBreaker | null;
  /** `fallback.cache` (src/data/upstream/fallback-cache.ts); null/absent: none. */
  fallback?: CompiledFallback | null;
  /** The breaker's slot in the instance's shared buffer, set by the supervisor at publish
   * (src/control/breaker-store.ts): by service name, so a reload keeps the state. */
  breakerShared?: { buffer: SharedArrayBuffer; slot: number };
  /** A gRPC service (src/grpc/): its channels and descriptors; `targets` then name its
   * channels (`grpc://host:port`) for /upstreams and metrics, and get no HTTP pool. */
  grpc?: CompiledGrpcService | null;
}

/** Active health checks of a service's targets, run by the control plane (health-checker.ts). */
export interface CompiledHealthCheck {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  unhealthyAfter: number;
  healthyAfter: number;
  expectStatus: number[];
  /** Host header of the checks; null = the target's host:port. */
  host: string | null;
}

/** Passive outlier ejection (src/data/upstream/outlier.ts); a threshold of 0 turns its rule off. */
export interface CompiledOutlier {
  consecutive5xx: number;
  consecutiveConnectFailures: number;
  ejectS: number;
  maxEjectS: number;
  maxEjectPercent: number;
}

/** A route's resolved retry policy (src/control/retry-config.ts; docs/resilience.md#retries). */
export interface CompiledRetry {
  /** Sends in all, the first included. */
  attempts: number;
  onConnectFailure: boolean;
  onReset: boolean;
  /** A try that passed per_try_timeout_ms. */
  onTimeout: boolean;
  /** Retried 5xx statuses, ascending. */
  statuses: number[];
  /** gRPC services: the retried gRPC status codes, bit n for code n (0 for HTTP services). */
  grpcCodes: number;
  /** Methods (src/shared/methods.ts bits) repeated once the request reached the upstream. */
  methodMask: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  budgetPercent: number;
  budgetMinRetries: number;
  /** 0 = none: a try is bounded by the phase timeouts and the deadline only. */
  perTryTimeoutMs: number;
}

/** A route's deadline for the whole exchange, and the header it goes upstream in ('' = none). */
export interface CompiledDeadline {
  ms: number;
  header: string;
}

/** Path match kinds. `template` paths contain `{param}` segments and match the whole path. */
export type MatchKind = 'exact' | 'prefix' | 'template';

/** A filter of a route's chain: its factory name (src/filters/index.ts) and the config its
 * factory's compile() produced (plain data, typed by that factory; the registry's lookup by
 * name is what pairs the two again in the worker). */
export interface CompiledFilter {
  name: string;
  config: unknown;
}

/**
 * Instance-level compiled data of filters (one per config, e.g. the rate-limit table size and
 * Redis sync). Empty here: a filter that has some adds its optional field from its own folder
 * by declaration merging (`declare module '../../shared/compiled-config.js'`), and its
 * compile() returns it as FilterCompilation.runtime.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled by declaration merging
export interface CompiledFilterRuntimes {}

export interface CompiledRoute {
  name: string;
  /** Index into CompiledConfig.services. */
  service: number;
  match: {
    kind: MatchKind;
    /** Normalized path (exact/template) or prefix; always starts with `/`. No trailing `/` except the root. */
    path: string;
    /** Lower-case host without port, or null for any host. */
    host: string | null;
    /** Bit mask from src/shared/methods.ts. */
    methodMask: number;
    /**
     * API versions the route serves (`match.version`): bit i = `versioning.versions`' i-th
     * version (src/shared/api-version.ts). Absent or -1: every version (no constraint).
     */
    versionMask?: number;
  };
  /** Param names of a template path, in segment order (index = param index in the match result). */
  paramNames: string[];
  /** Removed from the front of the path before forwarding (segment-aligned), or null. */
  stripPrefix: string | null;
  /** Templated rewrite of the path (the query string is kept), or null. */
  rewrite: RewritePart[] | null;
  /** Keep the client's Host header upstream (default: send the target's host). */
  preserveHost: boolean;
  /** The route's `escaped_slashes`, else the server's (resolved at compile time). */
  escapedSlashes: EscapedSlashes;
  /** The route's filter chain, in order. */
  filters: CompiledFilter[];
  /** Retries and deadline, the route's keys over its service's (null: none). */
  retry?: CompiledRetry | null;
  deadline?: CompiledDeadline | null;
  /** REST/JSON to gRPC (src/grpc/), or absent/null. */
  transcode?: CompiledTranscode | null;
  /** The route's own circuit breaker in place of its service's, or false: none on this
   * route; absent: the service's (docs/resilience.md#per-route-overrides). */
  circuitBreaker?: CompiledBreaker | false;
  /** The route's own fallback cache, or false: none on this route; absent: the service's. */
  fallback?: CompiledFallback | false;
  /** The own breaker's slot in the instance's shared buffer (CompiledConfig.breakerState),
   * set by the supervisor at publish (src/control/breaker-store.ts): keyed `route:<name>`, so
   * a reload keeps the state. A slot, not the buffer: routes cross to workers in routeData
   * (v8.serialize), which cannot hold a SharedArrayBuffer. */
  breakerSlot?: number;
  /** `services:` (a weighted split, docs/traffic-splitting.md): absent for a route with one
   * `service`. `service` above is then its first member, and the route's own retry, deadline,
   * circuit_breaker and fallback are resolved per member (in `split.members`), not on the route. */
  split?: CompiledSplit;
  /** `mirror:` (docs/traffic-splitting.md#mirroring), or absent. */
  mirror?: CompiledMirror;
  /** The route relays WebSocket upgrades (docs/websocket.md), or absent: it takes none. */
  websocket?: CompiledWebSocket;
}

/**
 * A route's weighted split over several services: each request goes to one member, chosen
 * after the route's request filters by a point in [0, total): random, or the sticky value's
 * hash (src/data/upstream/split.ts). Precomputed here so the choice is a scan of `cumulative`.
 */
export interface CompiledSplit {
  members: CompiledSplitMember[];
  /** cumulative[i] = the weights of members 0..i; the last one is the total. */
  cumulative: number[];
  total: number;
  /** Where the value that keeps one client on one member comes from, or null: random. */
  sticky: CompiledSticky | null;
}

/** `sticky:` of a split. A claim is read from ctx.subject (`sub`) or from the identity header
 * the route's auth provider injects it as (claims_to_headers), never from a client's header. */
export type CompiledSticky =
  | { kind: 'header'; header: string }
  | { kind: 'cookie'; cookie: string }
  | { kind: 'claim'; claim: string; header: string };

/** One member of a split: its service and weight, and the route's policies over that service's. */
export interface CompiledSplitMember {
  /** Index into CompiledConfig.services. */
  service: number;
  weight: number;
  retry?: CompiledRetry | null;
  deadline?: CompiledDeadline | null;
  /** As CompiledRoute's: the route's own breaker / fallback over this member's service's. */
  circuitBreaker?: CompiledBreaker | false;
  fallback?: CompiledFallback | false;
  /** Slot of the own breaker, keyed `route:<route>/<service>` (src/control/breaker-store.ts). */
  breakerSlot?: number;
}

/** A route's `mirror:` (src/data/upstream/mirror.ts): copies of its requests to another service. */
export interface CompiledMirror {
  /** Index into CompiledConfig.services. */
  service: number;
  /** Share of the requests mirrored, 0 < percent <= 100. */
  percent: number;
  /** Larger (or streamed) bodies are not mirrored. */
  maxBodyBytes: number;
  /** Mirrored requests in flight per worker beyond which copies are dropped. */
  maxInFlight: number;
}

export interface CompiledConfig extends CompiledFilterRuntimes {
  /** File the config came from (for messages). */
  source: string;
  server: CompiledServer;
  services: CompiledService[];
  routes: CompiledRoute[];
  /** Filters whose onEnd runs for requests that match no route (FilterCompilation.unrouted). */
  unroutedFilters?: CompiledFilter[];
  /** The instance's shared breaker/overload buffer, set by the supervisor when it publishes
   * (src/control/breaker-store.ts); absent in a config not published yet. */
  breakerState?: CompiledBreakerState;
  /** Names of the routes with a fallback cache of their own (CompiledRoute.fallback): a
   * worker keeps those caches across reloads and drops the others (fallback-cache.ts). The
   * routes themselves travel in routeData, decoded only on a route's first request. */
  routeFallbacks?: string[];
  /** Some route relays WebSocket upgrades: the listeners' upgrade handler routes them; absent:
   * an upgrade request is served as plain HTTP, as by any route without `websocket`. */
  websocketRoutes?: true;
}
