// The control plane's side of the data plane's counters: one SharedArrayBuffer per worker per
// published generation (the layout in src/shared/metrics-layout.ts), and the sums over them.
//
// A generation's buffers live while it may still record: the current one, and each older one
// for RETIRE_AFTER_MS after it was replaced (requests in flight keep their generation and
// record into it when they end). Then its values are folded into `retired`, keyed by labels,
// so counters never go backwards across reloads and memory stays bounded by the config.
import type { CompiledConfig } from '../shared/compiled-config.js';
import {
  AUTH_RESULTS, LOCAL_REPLY_CODES, MIRROR_RESULTS, RETRY_REASONS, RETRY_SLOTS, WAF_DECISIONS, WAF_RULE_IDS, UPSTREAM_ERROR_KINDS, WEBSOCKET_CLOSERS, WEBSOCKET_CLOSE_CODES, WS_SLOT,
  metricsLayout, statusLabel, type CompiledMetrics, type MetricsLayout,
} from '../shared/metrics-layout.js';

/** How long a replaced generation keeps its own buffers before it is folded. */
export const RETIRE_AFTER_MS = 60_000;

/** A label value in the text format: backslash, double quote and newline escaped. */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/**
 * A counter or gauge family: series keyed by their formatted labels (`route="a",code="2xx"`),
 * which is also what the exposition writes, so a scrape formats nothing per series twice.
 */
export class Family {
  readonly series = new Map<string, number>();
  constructor(readonly name: string) {}
  /** Adds to a series; a zero creates none. */
  add(labels: string, value: number): void {
    if (value === 0) return;
    this.series.set(labels, (this.series.get(labels) ?? 0) + value);
  }
  addAll(other: Family): void {
    for (const [labels, v] of other.series) this.add(labels, v);
  }
}

/** A histogram family: per label set, cumulative counts by `le` text, the sum and the count. */
export class HistogramFamily {
  readonly series = new Map<string, { buckets: Map<string, number>; sum: number; count: number }>();
  constructor(readonly name: string) {}
  private entry(labels: string) {
    let e = this.series.get(labels);
    if (e === undefined) { e = { buckets: new Map(), sum: 0, count: 0 }; this.series.set(labels, e); }
    return e;
  }
  /** One label set's slots: non-cumulative counts per bound, the +Inf count, the sum. */
  addSlots(labels: string, les: readonly string[], at: number, sum: (i: number) => number): void {
    let total = 0;
    for (let b = 0; b < les.length; b++) total += sum(at + b);
    if (total === 0) return;
    const e = this.entry(labels);
    let cumulative = 0;
    for (let b = 0; b < les.length; b++) {
      cumulative += sum(at + b);
      e.buckets.set(les[b], (e.buckets.get(les[b]) ?? 0) + cumulative);
    }
    e.sum += sum(at + les.length);
    e.count += total;
  }
  addAll(other: HistogramFamily): void {
    for (const [labels, o] of other.series) {
      const e = this.entry(labels);
      for (const [le, v] of o.buckets) e.buckets.set(le, (e.buckets.get(le) ?? 0) + v);
      e.sum += o.sum;
      e.count += o.count;
    }
  }
}

export interface Snapshot {
  requests: Family;
  apiVersionRequests: Family;
  requestBytes: Family;
  responseBytes: Family;
  duration: HistogramFamily;
  localReplies: Family;
  upstreamDuration: HistogramFamily;
  upstreamErrors: Family;
  targetErrors: Family;
  auth: Family;
  retries: Family;
  retryBudgetExhausted: Family;
  waf: Family;
  mirror: Family;
  websocketConnections: Family;
  websocketOpen: Family;
  websocketMessages: Family;
  websocketBytes: Family;
  websocketCloses: Family;
}

/** Families of the snapshot that are gauges (the rest are counters or histograms). */
const GAUGES: ReadonlySet<keyof Snapshot> = new Set(['websocketOpen']);

function emptySnapshot(): Snapshot {
  return {
    requests: new Family('lobby_requests_total'),
    apiVersionRequests: new Family('lobby_api_version_requests_total'),
    requestBytes: new Family('lobby_request_bytes_total'),
    responseBytes: new Family('lobby_response_bytes_total'),
    duration: new HistogramFamily('lobby_request_duration_seconds'),
    localReplies: new Family('lobby_local_replies_total'),
    upstreamDuration: new HistogramFamily('lobby_upstream_duration_seconds'),
    upstreamErrors: new Family('lobby_upstream_errors_total'),
    targetErrors: new Family('lobby_upstream_target_errors_total'),
    auth: new Family('lobby_auth_decisions_total'),
    retries: new Family('lobby_upstream_retries_total'),
    retryBudgetExhausted: new Family('lobby_upstream_retry_budget_exhausted_total'),
    waf: new Family('lobby_waf_decisions_total'),
    mirror: new Family('lobby_mirror_requests_total'),
    websocketConnections: new Family('lobby_websocket_connections_total'),
    websocketOpen: new Family('lobby_websocket_connections'),
    websocketMessages: new Family('lobby_websocket_messages_total'),
    websocketBytes: new Family('lobby_websocket_message_bytes_total'),
    websocketCloses: new Family('lobby_websocket_closes_total'),
  };
}

function addSnapshot(into: Snapshot, from: Snapshot): void {
  for (const key of Object.keys(from) as (keyof Snapshot)[]) (into[key] as Family).addAll(from[key] as Family & HistogramFamily);
}

/** `le` texts of bucket bounds, +Inf last (Prometheus' float format: "0.005", "1"). */
function lesOf(bounds: readonly number[]): string[] {
  return [...bounds.map((b) => String(b)), '+Inf'];
}

interface GenerationBuffers {
  generation: number;
  metrics: CompiledMetrics;
  layout: MetricsLayout;
  views: Float64Array[];
  buffers: SharedArrayBuffer[];
  /** Date.now() when a newer generation replaced it; 0 while current (or not yet published). */
  replacedAt: number;
  // Formatted labels, once per generation: per route (+ the unrouted one) `route="r",service="s"`
  // and `route="r"`, per service `service="s"`, per target `service="s",target="t"`.
  routeServiceLabels: string[];
  routeLabels: string[];
  serviceLabels: string[];
  targetLabels: string[][];
  /** Per route with API versioning, per entry of its `versions`: `route="r",version="v"`. */
  versionLabels: (string[] | null)[];
  statusLabels: string[];
  les: string[];
  upstreamLes: string[];
}

function generationBuffers(generation: number, config: CompiledConfig, m: CompiledMetrics, buffers: SharedArrayBuffer[]): GenerationBuffers {
  const services = config.services;
  const q = (v: string) => `"${escapeLabel(v)}"`;
  // Route slots (metrics-layout.ts): the routes, the unrouted one, then the split members'.
  const name = (service: number) => (service >= 0 ? services[service].name : '-');
  const members = m.routes.flatMap((r) => (r.members ?? []).map((service) => ({ route: r.name, service: name(service) })));
  const routeNames = [...m.routes.map((r) => r.name), '-', ...members.map((x) => x.route)];
  const routeServices = [...m.routes.map((r) => name(r.service)), '-', ...members.map((x) => x.service)];
  const slots = metricsLayout(m, services).statusSlots;
  return {
    generation, metrics: m, layout: metricsLayout(m, services), buffers, views: buffers.map((b) => new Float64Array(b)), replacedAt: 0,
    routeServiceLabels: routeNames.map((r, i) => `route=${q(r)},service=${q(routeServices[i])}`),
    routeLabels: routeNames.map((r) => `route=${q(r)}`),
    serviceLabels: services.map((s) => `service=${q(s.name)}`),
    targetLabels: services.map((s) => s.targets.map((t) => `service=${q(s.name)},target=${q(t.origin)}`)),
    versionLabels: m.routes.map((r) => r.versions?.map((v) => `route=${q(r.name)},version=${q(m.versions![v])}`) ?? null),
    statusLabels: Array.from({ length: slots }, (_, i) => `,code=${q(statusLabel(m.statusCodes, i))}`),
    les: lesOf(m.buckets),
    upstreamLes: lesOf(m.upstreamBuckets),
  };
}

/** Adds one generation's counters (every worker's array) to `into`. */
function readGeneration(g: GenerationBuffers, into: Snapshot): void {
  const { layout, metrics: m, views } = g;
  const sum = views.length === 1 ? (i: number): number => views[0][i] : (i: number): number => {
    let total = 0;
    for (let w = 0; w < views.length; w++) total += views[w][i];
    return total;
  };
  for (let r = 0; r < layout.routeSlotCount; r++) {
    const rs = g.routeServiceLabels[r];
    const base = layout.requests + r * layout.statusSlots;
    let any = false;
    for (let s = 0; s < layout.statusSlots; s++) {
      const v = sum(base + s);
      if (v !== 0) { any = true; into.requests.add(rs + g.statusLabels[s], v); }
    }
    if (!any) continue; // a route without requests has nothing else either
    const versions = r < layout.routeCount ? g.versionLabels[r] : null;
    if (versions !== null) {
      const at = layout.apiVersions[r];
      for (let k = 0; k < versions.length; k++) {
        for (let s = 0; s < layout.statusSlots; s++) {
          const v = sum(at + k * layout.statusSlots + s);
          if (v !== 0) into.apiVersionRequests.add(versions[k] + g.statusLabels[s], v);
        }
      }
    }
    into.requestBytes.add(rs, sum(layout.bytes + r * 2));
    into.responseBytes.add(rs, sum(layout.bytes + r * 2 + 1));
    into.duration.addSlots(rs, g.les, layout.duration + r * layout.durationStride, sum);
    const lr = layout.localReplies + r * LOCAL_REPLY_CODES.length;
    for (let c = 0; c < LOCAL_REPLY_CODES.length; c++) {
      const v = sum(lr + c);
      if (v !== 0) into.localReplies.add(`${g.routeLabels[r]},code="${LOCAL_REPLY_CODES[c]}"`, v);
    }
  }
  // WebSocket routes: read whether or not a request ended there yet (a connection is counted
  // as a request when it closes).
  for (let r = 0; r < layout.websocket.length; r++) {
    const at = layout.websocket[r];
    if (at < 0) continue;
    const rl = g.routeLabels[r];
    const opened = sum(at + WS_SLOT.OPENED);
    if (opened === 0) continue;
    into.websocketConnections.add(rl, opened);
    into.websocketMessages.add(`${rl},direction="client_to_upstream"`, sum(at + WS_SLOT.MESSAGES_IN));
    into.websocketMessages.add(`${rl},direction="upstream_to_client"`, sum(at + WS_SLOT.MESSAGES_OUT));
    into.websocketBytes.add(`${rl},direction="client_to_upstream"`, sum(at + WS_SLOT.BYTES_IN));
    into.websocketBytes.add(`${rl},direction="upstream_to_client"`, sum(at + WS_SLOT.BYTES_OUT));
    let closed = 0;
    for (let k = 0; k < WEBSOCKET_CLOSE_CODES.length; k++) {
      for (let b = 0; b < WEBSOCKET_CLOSERS.length; b++) {
        const v = sum(at + WS_SLOT.CLOSES + k * WEBSOCKET_CLOSERS.length + b);
        closed += v;
        if (v !== 0) into.websocketCloses.add(`${rl},code="${WEBSOCKET_CLOSE_CODES[k]}",closed_by="${WEBSOCKET_CLOSERS[b]}"`, v);
      }
    }
    // Shown at 0 too once the route had a connection: "none open" is a value worth graphing.
    into.websocketOpen.series.set(rl, (into.websocketOpen.series.get(rl) ?? 0) + opened - closed);
  }
  for (let s = 0; s < layout.serviceCount; s++) {
    const sl = g.serviceLabels[s];
    into.upstreamDuration.addSlots(sl, g.upstreamLes, layout.upstreamDuration + s * layout.upstreamStride, sum);
    for (let k = 0; k < UPSTREAM_ERROR_KINDS.length; k++) {
      const v = sum(layout.upstreamErrors + s * UPSTREAM_ERROR_KINDS.length + k);
      if (v !== 0) into.upstreamErrors.add(`${sl},kind="${UPSTREAM_ERROR_KINDS[k]}"`, v);
    }
    const targets = g.targetLabels[s];
    for (let t = 0; t < targets.length; t++) into.targetErrors.add(targets[t], sum(layout.targetErrors + layout.targetBase[s] + t));
    const rt = layout.retries + s * RETRY_SLOTS;
    for (let k = 0; k < RETRY_REASONS.length; k++) {
      const v = sum(rt + k);
      if (v !== 0) into.retries.add(`${sl},reason="${RETRY_REASONS[k]}"`, v);
    }
    const refused = sum(rt + RETRY_REASONS.length);
    if (refused !== 0) into.retryBudgetExhausted.add(sl, refused);
  }
  for (let p = 0; p < m.providers.length; p++) {
    for (let a = 0; a < AUTH_RESULTS.length; a++) {
      const v = sum(layout.auth + p * AUTH_RESULTS.length + a);
      if (v !== 0) into.auth.add(`provider="${escapeLabel(m.providers[p])}",result="${AUTH_RESULTS[a]}"`, v);
    }
  }
  for (let r = 0; r < layout.mirror.length; r++) {
    const at = layout.mirror[r];
    if (at < 0) continue;
    for (let k = 0; k < MIRROR_RESULTS.length; k++) into.mirror.add(`${g.routeLabels[r]},result="${MIRROR_RESULTS[k]}"`, sum(at + k));
  }
  for (let r = 0; r < layout.waf.length; r++) {
    const at = layout.waf[r];
    if (at < 0) continue;
    for (let k = 0; k < WAF_RULE_IDS.length; k++) {
      for (let d = 0; d < WAF_DECISIONS.length; d++) {
        const v = sum(at + k * WAF_DECISIONS.length + d);
        if (v !== 0) into.waf.add(`${g.routeLabels[r]},rule="${WAF_RULE_IDS[k]}",decision="${WAF_DECISIONS[d]}"`, v);
      }
    }
  }
}

/** Whether a generation's WebSocket routes have connections open (opened minus closed). */
function hasOpenWebSockets(g: GenerationBuffers): boolean {
  for (const at of g.layout.websocket) {
    if (at < 0) continue;
    let open = 0;
    for (const v of g.views) {
      open += v[at + WS_SLOT.OPENED];
      for (let k = 0; k < WEBSOCKET_CLOSE_CODES.length * WEBSOCKET_CLOSERS.length; k++) open -= v[at + WS_SLOT.CLOSES + k];
    }
    if (open > 0) return true;
  }
  return false;
}

/** HELP and TYPE of the families the shared counters make. */
const HELP: Record<keyof Snapshot, string> = {
  requests: 'Requests finished, by route, service and status (class or code; "none": the client left before a response).',
  apiVersionRequests: 'Requests finished on routes with API versioning, by route, the API version served and status (as lobby_requests_total).',
  requestBytes: 'Request body bytes received, by route.',
  responseBytes: 'Response body bytes sent, by route.',
  duration: 'Time from accepting a request to the end of its exchange, by route.',
  localReplies: 'Responses the gateway answered itself, by route and gateway error code (docs/errors.md).',
  upstreamDuration: 'Time from a connection assigned to the last response byte, by service.',
  upstreamErrors: 'Upstream failures, by service and kind.',
  targetErrors: 'Upstream failures, by service and target.',
  auth: 'Authentication decisions, by provider and result (ok or the refusal code).',
  retries: 'Upstream requests sent again, by service and reason (docs/resilience.md#retries).',
  retryBudgetExhausted: 'Retries the retry budget refused, by service.',
  waf: 'WAF rules that fired, by route, rule id and decision (blocked, reported: over the threshold in report mode, scored: under it).',
  mirror: 'Copies of requests to a route\'s mirror service, by route and result (sent: answered, failed, dropped: over max_in_flight, skipped_body: body streamed or over max_body_bytes).',
  websocketConnections: 'WebSocket connections opened (upgraded), by route.',
  websocketOpen: 'WebSocket connections open now, by route.',
  websocketMessages: 'WebSocket messages relayed, by route and direction (client_to_upstream, upstream_to_client).',
  websocketBytes: 'WebSocket message payload bytes relayed, by route and direction.',
  websocketCloses: 'WebSocket connections closed, by route, close code (1000-1015, 3xxx, 4xxx, other) and who closed: client, upstream or gateway (limits, idle, drain).',
};

/**
 * The exposition of a snapshot (Prometheus text format 0.0.4). Written here rather than by
 * prom-client's Registry, which formats each sample's labels from an object (about 6 µs a
 * line: 130 ms for the 19,000 lines of 1,000 routes); these labels are formatted once per
 * generation.
 */
export function formatSnapshot(snap: Snapshot): string {
  const out: string[] = [];
  for (const key of Object.keys(HELP) as (keyof Snapshot)[]) {
    const f = snap[key];
    const histogram = f instanceof HistogramFamily;
    out.push(`# HELP ${f.name} ${HELP[key]}`, `# TYPE ${f.name} ${histogram ? 'histogram' : GAUGES.has(key) ? 'gauge' : 'counter'}`);
    if (histogram) {
      for (const [labels, e] of f.series) {
        for (const [le, v] of e.buckets) out.push(`${f.name}_bucket{${labels},le="${le}"} ${v}`);
        out.push(`${f.name}_sum{${labels}} ${e.sum}`, `${f.name}_count{${labels}} ${e.count}`);
      }
    } else {
      for (const [labels, v] of f.series) out.push(`${f.name}{${labels}} ${v}`);
    }
  }
  return out.join('\n') + '\n';
}

export class MetricsStore {
  private readonly live = new Map<number, GenerationBuffers>();
  private retired = emptySnapshot();
  private current = 0;

  /** Buffers for a generation about to be published (one per worker), or null when metrics are off. */
  allocate(generation: number, config: CompiledConfig): SharedArrayBuffer[] | null {
    const m = config.metrics;
    if (m === undefined) return null;
    const size = metricsLayout(m, config.services).size;
    const buffers = Array.from({ length: config.server.workers }, () => new SharedArrayBuffer(size * 8));
    this.live.set(generation, generationBuffers(generation, config, m, buffers));
    return buffers;
  }

  /** The generation is live on every worker: older ones start their retirement clock. */
  activate(generation: number): void {
    const now = Date.now();
    for (const g of this.live.values()) if (g.generation !== generation && g.replacedAt === 0 && g.generation < generation) g.replacedAt = now;
    this.current = generation;
    this.sweep(now);
  }

  /** A publish that failed: its buffers never recorded anything. */
  discard(generation: number): void {
    if (generation !== this.current) this.live.delete(generation);
  }

  /** Folds generations replaced more than RETIRE_AFTER_MS ago (called on every scrape and
   * publish), unless a WebSocket connection of theirs is still open: it records into them until
   * it closes. */
  sweep(now = Date.now()): void {
    for (const [id, g] of this.live) {
      if (g.replacedAt !== 0 && now - g.replacedAt >= RETIRE_AFTER_MS && !hasOpenWebSockets(g)) {
        readGeneration(g, this.retired);
        this.live.delete(id);
      }
    }
  }

  /** Every family, summed over workers and generations. */
  snapshot(): Snapshot {
    this.sweep();
    const out = emptySnapshot();
    addSnapshot(out, this.retired);
    for (const g of this.live.values()) readGeneration(g, out);
    return out;
  }

  /** Generations with their own buffers (GET /status, tests). */
  get liveGenerations(): number {
    return this.live.size;
  }
}
