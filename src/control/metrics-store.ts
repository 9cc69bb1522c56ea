// The control plane's side of the data plane's counters: one SharedArrayBuffer per worker per
// published generation (the layout in src/shared/metrics-layout.ts), and the sums over them.
//
// A generation's buffers live while it may still record: the current one, and each older one
// for RETIRE_AFTER_MS after it was replaced (requests in flight keep their generation and
// record into it when they end). Then its values are folded into `retired`, keyed by labels,
// so counters never go backwards across reloads and memory stays bounded by the config.
import type { CompiledConfig } from '../shared/compiled-config.js';
import {
  AUTH_RESULTS, LOCAL_REPLY_CODES, UPSTREAM_ERROR_KINDS, metricsLayout, statusLabel, type CompiledMetrics, type MetricsLayout,
} from '../shared/metrics-layout.js';

/** How long a replaced generation keeps its own buffers before it is folded. */
export const RETIRE_AFTER_MS = 60_000;

/** Label values of one series, in the family's label order. */
export type Labels = readonly string[];

/** One metric family's series: the key joins the label values (a \x00 cannot occur in names). */
export class Family {
  readonly series = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly labelNames: readonly string[]) {}
  /** Adds to a series; a zero creates none unless `keepZero` (histogram buckets). */
  add(labels: Labels, value: number, keepZero = false): void {
    if (value === 0 && !keepZero) return;
    const key = labels.join('\x00');
    const s = this.series.get(key);
    if (s !== undefined) s.value += value;
    else this.series.set(key, { labels, value });
  }
  clone(): Family {
    const copy = new Family(this.name, this.labelNames);
    for (const [key, s] of this.series) copy.series.set(key, { labels: s.labels, value: s.value });
    return copy;
  }
}

/** Every family read from the shared counters. Histograms are three families (_bucket with le, _sum, _count). */
export const FAMILIES = {
  requests: ['lobby_requests_total', ['route', 'service', 'code']],
  requestBytes: ['lobby_request_bytes_total', ['route', 'service']],
  responseBytes: ['lobby_response_bytes_total', ['route', 'service']],
  durationBucket: ['lobby_request_duration_seconds_bucket', ['route', 'service', 'le']],
  durationSum: ['lobby_request_duration_seconds_sum', ['route', 'service']],
  durationCount: ['lobby_request_duration_seconds_count', ['route', 'service']],
  localReplies: ['lobby_local_replies_total', ['route', 'code']],
  upstreamBucket: ['lobby_upstream_duration_seconds_bucket', ['service', 'le']],
  upstreamSum: ['lobby_upstream_duration_seconds_sum', ['service']],
  upstreamCount: ['lobby_upstream_duration_seconds_count', ['service']],
  upstreamErrors: ['lobby_upstream_errors_total', ['service', 'kind']],
  targetErrors: ['lobby_upstream_target_errors_total', ['service', 'target']],
  auth: ['lobby_auth_decisions_total', ['provider', 'result']],
} as const satisfies Record<string, readonly [string, readonly string[]]>;
export type FamilyKey = keyof typeof FAMILIES;
export type Snapshot = Record<FamilyKey, Family>;

function emptySnapshot(): Snapshot {
  const out = {} as Snapshot;
  for (const key of Object.keys(FAMILIES) as FamilyKey[]) out[key] = new Family(FAMILIES[key][0], FAMILIES[key][1]);
  return out;
}

/** `le` label text: Prometheus' float format ("0.005", "1", "+Inf"). */
function le(bound: number): string {
  return String(bound);
}

interface GenerationBuffers {
  generation: number;
  metrics: CompiledMetrics;
  services: { name: string; targets: string[] }[];
  layout: MetricsLayout;
  views: Float64Array[];
  buffers: SharedArrayBuffer[];
  /** Date.now() when a newer generation replaced it; 0 while current (or not yet published). */
  replacedAt: number;
}

/** Adds one generation's counters (every worker's array) to `into`. */
function readGeneration(g: GenerationBuffers, into: Snapshot): void {
  const { layout, metrics: m, views } = g;
  const routeCount = layout.routeCount;
  const sum = (i: number): number => {
    let total = 0;
    for (let w = 0; w < views.length; w++) total += views[w][i];
    return total;
  };
  const serviceName = (s: number) => (s >= 0 ? g.services[s].name : '-');
  for (let r = 0; r <= routeCount; r++) {
    const route = r < routeCount ? m.routes[r].name : '-';
    const service = r < routeCount ? serviceName(m.routes[r].service) : '-';
    const base = layout.requests + r * layout.statusSlots;
    let any = false;
    for (let s = 0; s < layout.statusSlots; s++) {
      const v = sum(base + s);
      if (v !== 0) { any = true; into.requests.add([route, service, statusLabel(m.statusCodes, s)], v); }
    }
    if (!any) continue; // a route without requests has nothing else either
    into.requestBytes.add([route, service], sum(layout.bytes + r * 2));
    into.responseBytes.add([route, service], sum(layout.bytes + r * 2 + 1));
    histogram(into.durationBucket, into.durationSum, into.durationCount, [route, service], m.buckets, layout.duration + r * layout.durationStride, sum);
    const lr = layout.localReplies + r * LOCAL_REPLY_CODES.length;
    for (let c = 0; c < LOCAL_REPLY_CODES.length; c++) into.localReplies.add([route, LOCAL_REPLY_CODES[c]], sum(lr + c));
  }
  for (let s = 0; s < layout.serviceCount; s++) {
    const name = g.services[s].name;
    histogram(into.upstreamBucket, into.upstreamSum, into.upstreamCount, [name], m.upstreamBuckets, layout.upstreamDuration + s * layout.upstreamStride, sum);
    for (let k = 0; k < UPSTREAM_ERROR_KINDS.length; k++) into.upstreamErrors.add([name, UPSTREAM_ERROR_KINDS[k]], sum(layout.upstreamErrors + s * UPSTREAM_ERROR_KINDS.length + k));
    const targets = g.services[s].targets;
    for (let t = 0; t < targets.length; t++) into.targetErrors.add([name, targets[t]], sum(layout.targetErrors + layout.targetBase[s] + t));
  }
  for (let p = 0; p < m.providers.length; p++) {
    for (let a = 0; a < AUTH_RESULTS.length; a++) into.auth.add([m.providers[p], AUTH_RESULTS[a]], sum(layout.auth + p * AUTH_RESULTS.length + a));
  }
}

/** A histogram's slots (non-cumulative counts, +Inf, sum) as Prometheus' cumulative buckets. */
function histogram(bucket: Family, sumFamily: Family, count: Family, labels: Labels, bounds: readonly number[], at: number, sum: (i: number) => number): void {
  let total = 0;
  for (let b = 0; b <= bounds.length; b++) total += sum(at + b);
  if (total === 0) return;
  let cumulative = 0;
  for (let b = 0; b <= bounds.length; b++) {
    cumulative += sum(at + b);
    // Every le of a series that exists, zeros included: histogram_quantile interpolates between them.
    bucket.add([...labels, b < bounds.length ? le(bounds[b]) : '+Inf'], cumulative, true);
  }
  sumFamily.add(labels, sum(at + bounds.length + 1), true);
  count.add(labels, total);
}

export class MetricsStore {
  private readonly live = new Map<number, GenerationBuffers>();
  private retired = emptySnapshot();
  private current = 0;

  /** Buffers for a generation about to be published (one per worker), or null when metrics are off. */
  allocate(generation: number, config: CompiledConfig): SharedArrayBuffer[] | null {
    const m = config.metrics;
    if (m === undefined) return null;
    const layout = metricsLayout(m, config.services);
    const buffers = Array.from({ length: config.server.workers }, () => new SharedArrayBuffer(layout.size * 8));
    this.live.set(generation, {
      generation, metrics: m, layout, buffers, views: buffers.map((b) => new Float64Array(b)), replacedAt: 0,
      services: config.services.map((s) => ({ name: s.name, targets: s.targets.map((t) => t.origin) })),
    });
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

  /** Folds generations replaced more than RETIRE_AFTER_MS ago (called on every scrape and publish). */
  sweep(now = Date.now()): void {
    for (const [id, g] of this.live) {
      if (g.replacedAt !== 0 && now - g.replacedAt >= RETIRE_AFTER_MS) {
        readGeneration(g, this.retired);
        this.live.delete(id);
      }
    }
  }

  /** Every family, summed over workers and generations. */
  snapshot(): Snapshot {
    this.sweep();
    const out = {} as Snapshot;
    for (const key of Object.keys(this.retired) as FamilyKey[]) out[key] = this.retired[key].clone();
    for (const g of this.live.values()) readGeneration(g, out);
    return out;
  }

  /** Generations with their own buffers (GET /status, tests). */
  get liveGenerations(): number {
    return this.live.size;
  }
}
