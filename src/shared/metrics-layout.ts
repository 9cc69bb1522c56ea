// The layout of a generation's metric counters: one Float64Array per worker over a
// SharedArrayBuffer the control plane allocates for each published generation
// (src/control/metrics-store.ts). Each worker is the only writer of its own array (plain
// `f[i]++` on the request path, no locks, no messages); the control plane reads every worker's
// array at scrape time and sums them. Indexes are fixed when the config is compiled: routes,
// services, targets, auth providers, API versions and the gateway's error codes, so the number
// of series is bounded by the config, never by request data.
//
// Float64 counters are exact up to 2^53 (9e15 requests).
import { GW_ERR } from './errors.js';
import { WAF_RULES } from '../filters/waf/rules.js';

/** The compiled `metrics` section (CompiledConfig.metrics, absent when metrics are off). */
export interface CompiledMetrics {
  /** `class`: code="2xx"; `code`: code="200". */
  statusCodes: 'class' | 'code';
  /** Upper bounds (seconds) of lobby_request_duration_seconds. */
  buckets: number[];
  /** Upper bounds (seconds) of lobby_upstream_duration_seconds. */
  upstreamBuckets: number[];
  /** Per-route HDR histograms for GET /stats/latency and GET /report. */
  latencyReports: boolean;
  /** Auth provider names (index = provider id in the layout). */
  providers: string[];
  /** Route names and service indexes: what the control plane labels series with (the worker
   * gets the config without routes; these are small). `versions`: the `versioning.versions`
   * indexes a route with API versioning is served as (lobby_api_version_requests_total). */
  routes: {
    name: string; service: number; waf?: boolean; versions?: number[];
    /** A weighted split's member services (`service` is then -1: a request refused before
     * the split chose counts as service="-"). */
    members?: number[];
    mirror?: boolean;
    websocket?: boolean;
  }[];
  /** `versioning.versions` names (index = CompiledVersioning's); absent without versioning. */
  versions?: string[];
}

/** The label of a status that never went out (the client left first). */
export const NO_STATUS = 'none';
/** Status slots: class mode 1xx..5xx + none; code mode 100..599 + none. */
export function statusSlots(mode: CompiledMetrics['statusCodes']): number {
  return mode === 'class' ? 6 : 501;
}
export function statusLabel(mode: CompiledMetrics['statusCodes'], slot: number): string {
  if (mode === 'class') return slot === 5 ? NO_STATUS : `${slot + 1}xx`;
  return slot === 500 ? NO_STATUS : String(slot + 100);
}

/** Gateway error codes in table order, plus `other` (a code outside the table). */
export const LOCAL_REPLY_CODES: readonly string[] = [...Object.keys(GW_ERR), 'other'];
export const LOCAL_REPLY_INDEX: ReadonlyMap<string, number> = new Map(LOCAL_REPLY_CODES.map((c, i) => [c, i]));

/** lobby_upstream_errors_total kinds, from the exchange's response flags. */
export const UPSTREAM_ERROR_KINDS = ['connect_failure', 'timeout', 'reset', 'bad_response', 'overflow'] as const;

/** lobby_upstream_retries_total reasons, in the order of src/data/upstream/retry.ts RETRY_REASON
 * (the per-request 4-bit counters); a service's region has one more slot after them: retries the
 * budget refused (lobby_upstream_retry_budget_exhausted_total). */
export const RETRY_REASONS = ['connect_failure', 'reset', 'timeout', 'status', 'stale_connection'] as const;
export const RETRY_SLOTS = RETRY_REASONS.length + 1;

/** lobby_auth_decisions_total results: ok, or the gateway error code of the refusal. */
export const AUTH_RESULTS = [
  'ok', 'unauthenticated', 'invalid_token', 'insufficient_scope', 'invalid_auth_request', 'auth_unavailable', 'auth_timeout', 'auth_overloaded',
] as const;
export const AUTH_RESULT_INDEX: ReadonlyMap<string, number> = new Map(AUTH_RESULTS.map((c, i) => [c, i]));

/** lobby_waf_decisions_total: one series per route with a WAF, rule (the rule set's ids, in
 * table order) and decision: blocked (refused), reported (over the threshold in report mode,
 * admitted), scored (fired, under the threshold). Bounded by the rule set. */
export const WAF_RULE_IDS: readonly number[] = WAF_RULES.map((r) => r.id);
export const WAF_RULE_INDEX: ReadonlyMap<number, number> = new Map(WAF_RULE_IDS.map((id, i) => [id, i]));
export const WAF_DECISIONS = ['blocked', 'reported', 'scored'] as const;
export const WAF_STRIDE = WAF_RULE_IDS.length * WAF_DECISIONS.length;

/** lobby_mirror_requests_total results (src/data/upstream/mirror.ts): the mirror answered
 * (any status); it failed (connect, timeout, reset); dropped over max_in_flight; not mirrored
 * because the body was streamed or over max_body_bytes. */
export const MIRROR_RESULTS = ['sent', 'failed', 'dropped', 'skipped_body'] as const;
export const MIRROR_RESULT = { SENT: 0, FAILED: 1, DROPPED: 2, SKIPPED_BODY: 3 } as const;

/**
 * lobby_websocket_* (docs/websocket.md#metrics): one region per route with `websocket`. The
 * close codes are labelled by value for the codes RFC 6455 defines (1000-1015) and by range for
 * the applications' (3xxx registered, 4xxx private), so the series stay bounded by the config.
 */
export const WEBSOCKET_CLOSE_CODES: readonly string[] = [
  ...Array.from({ length: 16 }, (_, i) => String(1000 + i)), '3xxx', '4xxx', 'other',
];
/** Who closed: CLOSED_BY (src/data/request-context.ts) minus its NONE. */
export const WEBSOCKET_CLOSERS = ['client', 'upstream', 'gateway'] as const;
/** Offsets in a route's region: opened, messages and payload bytes each way (client to
 * upstream = in), then closes by code slot and closer. */
export const WS_SLOT = { OPENED: 0, MESSAGES_IN: 1, MESSAGES_OUT: 2, BYTES_IN: 3, BYTES_OUT: 4, CLOSES: 5 } as const;
export const WEBSOCKET_STRIDE = WS_SLOT.CLOSES + WEBSOCKET_CLOSE_CODES.length * WEBSOCKET_CLOSERS.length;

/** Slot of a close code in WEBSOCKET_CLOSE_CODES. */
export function closeCodeSlot(code: number): number {
  if (code >= 1000 && code <= 1015) return code - 1000;
  if (code >= 3000 && code <= 3999) return 16;
  if (code >= 4000 && code <= 4999) return 17;
  return 18;
}

/**
 * Offsets of every region in a worker's array. Route `routes.length` is the pseudo-route of
 * requests no route took (404, 400 before routing, ...), labelled route="-". After it come the
 * route slots of split members: route="r",service="<member>" (memberSlots).
 */
export interface MetricsLayout {
  readonly routeCount: number;
  /** Route slots in all: the routes, the unrouted one, one per member of each split. */
  readonly routeSlotCount: number;
  /** Per route with a split: the route slot of its first member (the others follow); -1 for others. */
  readonly memberSlots: readonly number[];
  readonly serviceCount: number;
  /** First target slot of each service (targets numbered in service order). */
  readonly targetBase: readonly number[];
  readonly statusSlots: number;
  /** Per route: statusSlots counters. */
  readonly requests: number;
  /** Per route: 2 (request bytes, response bytes). */
  readonly bytes: number;
  /** Per route: buckets.length + 2 (non-cumulative counts per bucket, the +Inf count, the sum). */
  readonly duration: number;
  readonly durationStride: number;
  /** Per route: LOCAL_REPLY_CODES.length. */
  readonly localReplies: number;
  /** Per service: upstreamBuckets.length + 2. */
  readonly upstreamDuration: number;
  readonly upstreamStride: number;
  /** Per service: UPSTREAM_ERROR_KINDS.length. */
  readonly upstreamErrors: number;
  /** Per target: upstream failures (any kind). */
  readonly targetErrors: number;
  /** Per provider: AUTH_RESULTS.length. */
  readonly auth: number;
  /** Per service: RETRY_SLOTS. */
  readonly retries: number;
  /** Per route with a WAF: WAF_STRIDE counters (-1 for a route without). */
  readonly waf: readonly number[];
  /**
   * lobby_api_version_requests_total{route,version,code}. Per route with API versioning
   * (match.version or its own `version`): one statusSlots block per entry of its `versions`
   * (-1 for a route without). A route is only ever served as the versions it declares, so
   * this is (versions of the route) × statusSlots: a route serving two versions costs what two
   * routes cost in lobby_requests_total. That is why the family keeps the `code` dimension
   * (as metrics.status_codes sets it, so an error rate per version is the query it is per
   * route) rather than only {route,version}: even by code it stays bounded by the config.
   */
  readonly apiVersions: readonly number[];
  /** Per route with a mirror: MIRROR_RESULTS.length counters (-1 for a route without). */
  readonly mirror: readonly number[];
  /** Per route with `websocket`: WEBSOCKET_STRIDE counters (-1 for a route without). */
  readonly websocket: readonly number[];
  /** Float64 slots in all. */
  readonly size: number;
}

export function metricsLayout(m: CompiledMetrics, services: readonly { targets: readonly unknown[] }[]): MetricsLayout {
  let routeSlots = m.routes.length + 1;
  const memberSlots = m.routes.map((r) => {
    if (r.members === undefined) return -1;
    const first = routeSlots;
    routeSlots += r.members.length;
    return first;
  });
  const slots = statusSlots(m.statusCodes);
  const durationStride = m.buckets.length + 2;
  const upstreamStride = m.upstreamBuckets.length + 2;
  const targetBase: number[] = [];
  let targets = 0;
  for (const s of services) { targetBase.push(targets); targets += s.targets.length; }
  let at = 0;
  const take = (n: number) => { const start = at; at += n; return start; };
  const requests = take(routeSlots * slots);
  const bytes = take(routeSlots * 2);
  const duration = take(routeSlots * durationStride);
  const localReplies = take(routeSlots * LOCAL_REPLY_CODES.length);
  const upstreamDuration = take(services.length * upstreamStride);
  const upstreamErrors = take(services.length * UPSTREAM_ERROR_KINDS.length);
  const targetErrors = take(targets);
  const auth = take(m.providers.length * AUTH_RESULTS.length);
  const retries = take(services.length * RETRY_SLOTS);
  const waf = m.routes.map((r) => (r.waf === true ? take(WAF_STRIDE) : -1));
  const apiVersions = m.routes.map((r) => (r.versions !== undefined && r.versions.length > 0 ? take(r.versions.length * slots) : -1));
  const mirror = m.routes.map((r) => (r.mirror === true ? take(MIRROR_RESULTS.length) : -1));
  const websocket = m.routes.map((r) => (r.websocket === true ? take(WEBSOCKET_STRIDE) : -1));
  return {
    routeCount: m.routes.length, routeSlotCount: routeSlots, memberSlots, serviceCount: services.length, targetBase, statusSlots: slots,
    requests, bytes, duration, durationStride, localReplies, upstreamDuration, upstreamStride, upstreamErrors, targetErrors, auth, retries, waf, apiVersions, mirror, websocket, size: at,
  };
}

/** Index of a bucket for `value` in ascending `bounds` (bounds.length = the +Inf slot). */
export function bucketIndex(bounds: Float64Array | readonly number[], value: number): number {
  let i = 0;
  while (i < bounds.length && value > bounds[i]) i++;
  return i;
}

/** Slots of the per-worker stats block (WorkerBoot.workerStats): event-loop delay, seconds. */
export const WORKER_STATS = { LAG_MEAN: 0, LAG_P99: 1, LAG_MAX: 2, SIZE: 3 } as const;
