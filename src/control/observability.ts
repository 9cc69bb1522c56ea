// The control plane's observability endpoints (docs/observability.md):
//   GET /metrics        the data plane's shared counters summed at scrape time (metrics-store.ts),
//                       and a prom-client Registry: the Node process metrics and custom
//                       collectors reading the upstream pools, the rate-limit table, the JWKS
//                       fetchers, the config store and the supervisor at scrape time;
//   GET /stats/latency  the workers' per-route HDR histograms, merged: p50/p90/p99/p99.9/max;
//   GET /report         the same as the load test's HTML percentile plot;
//   GET /upstreams      every service's targets: in flight, pooled connections, recent errors.
import * as hdr from 'hdr-histogram-js';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { UpstreamsSnapshot } from '../shared/messages.js';
import { REPORT_STYLE, escapeHtml, histogramDistribution, percentileChartSvg, type ChartSeries } from '../shared/percentile-chart.js';
import { decodeRouteHistogram, newRouteHistogram } from '../filters/metrics/latency.js';
import type { ConfigStore } from './config-store.js';
import { escapeLabel, formatSnapshot } from './metrics-store.js';
import type { Supervisor } from './supervisor.js';
import type { BreakerStatus } from './breaker-store.js';

type MetricType = 'counter' | 'gauge' | 'histogram';
interface Value { labels: Record<string, string>; value: number; metricName?: string }

/** A prom-client metric whose values come from `values()` at scrape time (Registry.registerMetric). */
class Collected {
  readonly aggregator = 'sum';
  constructor(readonly name: string, readonly help: string, readonly type: MetricType, private readonly values: () => Value[]) {}
  async get() {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.values() };
  }
}

/** Recent errors per target: totals sampled every SAMPLE_MS, the difference over RECENT_MS. */
const SAMPLE_MS = 10_000;
const RECENT_MS = 60_000;

/** What the endpoints read of the supervisor and the config store (benches give real parts without workers). */
export type ObservedSupervisor = Pick<Supervisor, 'metrics' | 'ask' | 'rateLimits' | 'jwks' | 'restarts' | 'workerLag' | 'startedAt'> & Partial<Pick<Supervisor, 'health' | 'breakers' | 'introspection'>>;
export type ObservedStore = Pick<ConfigStore, 'current' | 'changeCounts'>;

export interface LatencyRow { route: string; count: number; p50_ms: number; p90_ms: number; p99_ms: number; p999_ms: number; max_ms: number }

export class Observability {
  readonly registry = new Registry();
  private upstreamsSnap: { worker: number; services: UpstreamsSnapshot[] }[] = [];
  private readonly errorSamples: { at: number; totals: Map<string, number> }[] = [];
  private readonly sampler: NodeJS.Timeout;

  constructor(private readonly supervisor: ObservedSupervisor, private readonly store: ObservedStore) {
    collectDefaultMetrics({ register: this.registry });
    const metrics: Collected[] = [
      new Collected('lobby_upstream_active_requests', 'Requests in flight to a service (all workers).', 'gauge', () => this.upstreamGauge('inFlight', false)),
      new Collected('lobby_upstream_connections', 'Open upstream connections, by service and target (all workers).', 'gauge', () => this.upstreamGauge('connections', true)),
      new Collected('lobby_ratelimit_decisions_total', 'Rate-limit decisions, by limit: admitted, limited, reported (mode report), unavailable (Redis down, deny), full (table full).', 'counter', () => this.rateLimitValues()),
      new Collected('lobby_jwks_fetches_total', 'JWKS fetches, by URI and result.', 'counter', () => [...supervisor.jwks.fetchTotals].flatMap(([uri, t]) => [
        { labels: { uri, result: 'ok' }, value: t.ok }, { labels: { uri, result: 'error' }, value: t.error },
      ])),
      new Collected('lobby_introspection_calls_total', 'Token introspection calls (RFC 7662) by the control plane, by provider and result.', 'counter', () =>
        [...(supervisor.introspection?.callTotals ?? [])].flatMap(([provider, t]) => [
          { labels: { provider, result: 'ok' }, value: t.ok }, { labels: { provider, result: 'error' }, value: t.error },
        ])),
      new Collected('lobby_config_reloads_total', 'Config changes applied (ok) and refused (error), by source.', 'counter', () => [...store.changeCounts.values()].flatMap((c) => [
        { labels: { source: c.source, result: 'ok' }, value: c.ok }, { labels: { source: c.source, result: 'error' }, value: c.error },
      ])),
      new Collected('lobby_config_info', 'The applied config: its version and content hash (value 1).', 'gauge', () => [
        { labels: { version: String(store.current.version), hash: store.current.hash }, value: 1 },
      ]),
      new Collected('lobby_worker_restarts_total', 'Data-plane workers replaced after a crash.', 'counter', () => [{ labels: {}, value: supervisor.restarts }]),
      new Collected('lobby_worker_event_loop_lag_seconds', 'Event-loop delay of each data-plane worker over the last second (mean, p99, max).', 'gauge', () => supervisor.workerLag().flatMap((w) => [
        { labels: { worker: String(w.worker), stat: 'mean' }, value: w.mean },
        { labels: { worker: String(w.worker), stat: 'p99' }, value: w.p99 },
        { labels: { worker: String(w.worker), stat: 'max' }, value: w.max },
      ])),
      // Upstream health (health-checker.ts): read from the health table at scrape time.
      new Collected('lobby_upstream_healthy', 'Whether a target may take requests (1) or is out: failing its health checks or ejected (0). Services with health_check or outlier only.', 'gauge', () => supervisor.health?.metricValues().healthy ?? []),
      new Collected('lobby_upstream_ejections_total', 'Outlier ejections of a target.', 'counter', () => supervisor.health?.metricValues().ejections ?? []),
      new Collected('lobby_upstream_health_checks_total', 'Active health checks of a target, by result: ok, bad_status (not in expect_status), timeout, error (connect or TLS failure).', 'counter', () => supervisor.health?.metricValues().checks ?? []),
      // Circuit breakers (src/control/breaker-store.ts): read from the shared buffer at scrape time.
      new Collected('lobby_breaker_state', 'Circuit breaker state, by service (and route, for a route\'s own breaker): 0 closed, 1 open, 2 half-open (shared by all workers).', 'gauge', () => supervisor.breakers?.stateValues() ?? []),
      new Collected('lobby_breaker_transitions_total', 'Circuit breaker transitions, by service (and route, for a route\'s own breaker) and the state entered.', 'counter', () => supervisor.breakers?.transitionValues() ?? []),
      new Collected('lobby_breaker_rejected_total', 'Tries refused by a circuit breaker, by service (and route, for a route\'s own breaker) and reason (open, overflow: max_concurrent / max_pending).', 'counter', () => supervisor.breakers?.rejectedValues() ?? []),
      new Collected('lobby_fallback_served_total', 'Answers from the last-good fallback cache while a breaker was open, by service (and route, for a route\'s own breaker).', 'counter', () => supervisor.breakers?.fallbackValues() ?? []),
    ];
    for (const m of metrics) this.registry.registerMetric(m as never);
    this.sampler = setInterval(() => this.sampleErrors(), SAMPLE_MS).unref();
  }

  close(): void {
    clearInterval(this.sampler);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * GET /metrics: Prometheus text format. The shared counters' families (by far the most
   * series: per route) are formatted by metrics-store.ts; the registry adds the rest.
   */
  async metricsText(): Promise<string> {
    this.upstreamsSnap = await this.supervisor.ask('upstreams');
    const counters = formatSnapshot(this.supervisor.metrics.snapshot());
    return counters + '\n' + await this.registry.metrics();
  }

  private upstreamGauge(field: 'inFlight' | 'connections', byTarget: boolean): Value[] {
    const sums = new Map<string, Value>();
    for (const answer of this.upstreamsSnap) {
      for (const s of answer.services) {
        for (const t of s.targets) {
          const key = byTarget ? `${s.service}\x00${t.origin}` : s.service;
          let v = sums.get(key);
          if (v === undefined) { v = { labels: byTarget ? { service: s.service, target: t.origin } : { service: s.service }, value: 0 }; sums.set(key, v); }
          v.value += t[field];
        }
      }
    }
    return [...sums.values()];
  }

  private rateLimitValues(): Value[] {
    const status = this.supervisor.rateLimits.status() as { limits: { name: string; admitted: number; limited: number; reported: number; full: number; unavailable: number }[] };
    return status.limits.flatMap((l) => (['admitted', 'limited', 'reported', 'unavailable', 'full'] as const).map((decision) => ({ labels: { limit: l.name, decision }, value: l[decision] })));
  }

  // --- latency ---------------------------------------------------------------------------

  /** Every route's histogram, merged over the workers (microseconds). */
  private async mergedLatency(): Promise<Map<string, hdr.Histogram>> {
    const merged = new Map<string, hdr.Histogram>();
    for (const answer of await this.supervisor.ask('latency')) {
      for (const { route, histogram } of answer.routes) {
        let into = merged.get(route);
        if (into === undefined) { into = newRouteHistogram(); merged.set(route, into); }
        into.add(decodeRouteHistogram(histogram));
      }
    }
    return merged;
  }

  /** GET /stats/latency. */
  async latency(): Promise<{ unit: 'ms'; since: string; routes: LatencyRow[] }> {
    const merged = await this.mergedLatency();
    const ms = (h: hdr.Histogram, p: number) => h.getValueAtPercentile(p) / 1000;
    const routes = [...merged].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([route, h]) => ({
      route, count: h.totalCount, p50_ms: ms(h, 50), p90_ms: ms(h, 90), p99_ms: ms(h, 99), p999_ms: ms(h, 99.9), max_ms: h.maxValue / 1000,
    }));
    return { unit: 'ms', since: new Date(this.supervisor.startedAt).toISOString(), routes };
  }

  /** GET /report: the per-route percentile plot, a self-contained page. */
  async reportHtml(): Promise<string> {
    const merged = await this.mergedLatency();
    const palette = ['#d9480f', '#1864ab', '#2b8a3e', '#7048e8', '#000000', '#0c8599', '#e67700', '#c2255c', '#5c940d', '#364fc7'];
    const series: ChartSeries[] = [...merged].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([route, h], i) => ({
      name: route, color: palette[i % palette.length], dash: i < palette.length ? '' : '6 3', count: h.totalCount, points: histogramDistribution(h),
    }));
    const rows = (await this.latency()).routes;
    const html: string[] = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
      `<title>Lobby live latency · ${escapeHtml(this.store.current.hash.slice(0, 12))}</title>`, `<style>${REPORT_STYLE}</style></head><body>`,
      '<h1>Lobby live latency</h1>',
      `<p class="meta">Total request time per route (accept to end of exchange), every worker merged, since ${escapeHtml(new Date(this.supervisor.startedAt).toISOString())}; generated ${escapeHtml(new Date().toISOString())}; config version ${this.store.current.version}.</p>`,
      '<table><thead><tr><th>route</th><th>requests</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr></thead><tbody>'];
    for (const r of rows) {
      html.push(`<tr><td>${escapeHtml(r.route)}</td><td>${r.count}</td><td>${r.p50_ms.toFixed(3)}</td><td>${r.p90_ms.toFixed(3)}</td><td>${r.p99_ms.toFixed(3)}</td><td>${r.p999_ms.toFixed(3)}</td><td>${r.max_ms.toFixed(3)}</td></tr>`);
    }
    html.push('</tbody></table>');
    if (series.length === 0) html.push('<p class="meta">No requests recorded yet.</p>');
    else {
      html.push(percentileChartSvg(series, { title: 'Latency percentile distribution per route', logY: false }));
      html.push(percentileChartSvg(series, { title: 'Same, latency on a log scale', logY: true }));
    }
    html.push('</body></html>');
    return html.join('\n') + '\n';
  }

  // --- upstreams -------------------------------------------------------------------------

  private targetErrorTotals(): Map<string, number> {
    // Keyed by the series' labels, `service="s",target="t"`.
    return new Map(this.supervisor.metrics.snapshot().targetErrors.series);
  }

  private sampleErrors(): void {
    const now = Date.now();
    this.errorSamples.push({ at: now, totals: this.targetErrorTotals() });
    while (this.errorSamples.length > 1 && now - this.errorSamples[1].at >= RECENT_MS) this.errorSamples.shift();
  }

  /** GET /upstreams (Envoy's /clusters): every service's targets, summed over the workers. */
  async upstreams(): Promise<{ recent_errors_window_s: number; services: unknown[] }> {
    const answers = await this.supervisor.ask('upstreams');
    const totals = this.targetErrorTotals();
    const base = this.errorSamples[0]?.totals ?? new Map<string, number>();
    const services = this.store.current.compiled.services.map((svc) => ({
      name: svc.name,
      balance: svc.balance,
      targets: svc.targets.map((t) => {
        const key = `service="${escapeLabel(svc.name)}",target="${escapeLabel(t.origin)}"`;
        const row = { target: t.origin, in_flight: 0, connections: 0, idle_connections: 0, queued: 0 };
        for (const a of answers) {
          for (const t2 of a.services.find((s) => s.service === svc.name)?.targets.filter((x) => x.origin === t.origin) ?? []) {
            row.in_flight += t2.inFlight; row.connections += t2.connections; row.idle_connections += t2.idle; row.queued += t2.queued;
          }
        }
        const total = totals.get(key) ?? 0;
        const health = this.supervisor.health?.target(svc.name, t.origin) ?? null;
        return { ...row, errors_total: total, recent_errors: total - (base.get(key) ?? 0), ...(health === null ? {} : health) };
      }),
      ...(svc.circuitBreaker ? { circuit_breaker: this.supervisor.breakers?.statusOf(svc.name) ?? null } : {}),
      ...routeBreakers(this.supervisor.breakers?.routesOf(svc.name) ?? []),
    }));
    return { recent_errors_window_s: RECENT_MS / 1000, services };
  }
}

/** The own breakers of a service's routes (`routes[].circuit_breaker`), under /upstreams'
 * service: absent when none of its routes has one. */
function routeBreakers(breakers: readonly BreakerStatus[]): { route_circuit_breakers?: readonly BreakerStatus[] } {
  return breakers.length === 0 ? {} : { route_circuit_breakers: breakers };
}
