// Control plane: the `metrics` section → CompiledConfig.metrics (labels and bucket bounds for the
// collector) and, per route, where its counters are in a worker's array (src/shared/metrics-layout.ts).
import type { FilterCompilation } from '../../data/chain.js';
import { AUTH_RESULTS, LOCAL_REPLY_CODES, RETRY_SLOTS, WAF_STRIDE, UPSTREAM_ERROR_KINDS, metricsLayout, type CompiledMetrics } from '../../shared/metrics-layout.js';
import type { RawMetrics } from './schema.js';
import { routeVersionSets, type ApiVersionInput, type VersionedRouteIn } from '../api-version/compile.js';

declare module '../../shared/compiled-config.js' {
  interface CompiledFilterRuntimes {
    /** The `metrics` section; absent when `metrics.enabled: false`. */
    metrics?: CompiledMetrics;
  }
}

/** What compile reads of the config. */
export interface MetricsInput {
  metrics: RawMetrics;
  services: Readonly<Record<string, { targets?: readonly unknown[]; grpc?: { targets: readonly unknown[] } }>>;
  routes: readonly ({
    name: string; service?: string; services?: readonly { name: string }[]; mirror?: unknown; auth?: { provider?: string; providers?: string[] }; waf?: unknown; websocket?: unknown;
  } & VersionedRouteIn)[];
  /** Routes with API versioning get lobby_api_version_requests_total counters. */
  versioning?: ApiVersionInput['versioning'];
  /** The WAF's default section: routes with a WAF get lobby_waf_decisions_total counters. */
  waf?: unknown;
  auth?: { providers: readonly { name: string }[] };
  admin?: object;
}

/** Where one route slot's counters are (a route's, or one split member's), and its service's. */
export interface MetricsSlotOffsets {
  requestsAt: number;
  bytesAt: number;
  durationAt: number;
  localRepliesAt: number;
  /** -1 without a service (the unrouted pseudo-route, a split before it chose). */
  upstreamDurationAt: number;
  upstreamErrorsAt: number;
  targetErrorsAt: number;
  /** The service's retry counters (RETRY_SLOTS); -1 without a service. */
  retriesAt?: number;
}

/** A route's (or the unrouted pseudo-route's) recorder: offsets into its worker's array. */
export interface MetricsFilterConfig extends MetricsSlotOffsets {
  routeName: string;
  statusCodes: CompiledMetrics['statusCodes'];
  buckets: number[];
  upstreamBuckets: number[];
  latencyReports: boolean;
  /** -1 when the route has no auth. */
  authAt: number;
  /** A weighted split: each member's slot, by RuntimeRoute.splitMember (the route's own slot
   * above counts the requests refused before the split chose: service="-"). */
  members?: MetricsSlotOffsets[];
  /** -1 when the route has no WAF (metrics-layout.ts WAF_STRIDE counters). */
  wafAt?: number;
  /**
   * Routes with API versioning: by ctx.apiVersionIndex + 1, where that version's status slots
   * of lobby_api_version_requests_total start, -1 for a version the route does not serve
   * (nothing counted). A path-versioned route maps every entry to its own version: the path
   * chose it, also for a request refused before the api-version filter stamped it.
   */
  apiVersionAt?: number[];
  /** Routes with `websocket`: where its lobby_websocket_* counters start (metrics-layout.ts WS_SLOT). */
  websocketAt?: number;
}

export function compileMetrics(config: MetricsInput): FilterCompilation<MetricsFilterConfig> {
  const m = config.metrics;
  // Without an admin listener nobody can read them: recording would be waste.
  if (!(m.enabled ?? config.admin !== undefined)) return { route: () => null };
  const serviceNames = Object.keys(config.services);
  const serviceIndex = new Map(serviceNames.map((name, i) => [name, i]));
  const providers = (config.auth?.providers ?? []).map((p) => p.name);
  const providerIndex = new Map(providers.map((name, i) => [name, i]));
  const versionNames = config.versioning ? Object.keys(config.versioning.versions) : [];
  const versionSets = routeVersionSets(config);
  const compiled: CompiledMetrics = {
    statusCodes: m.status_codes,
    buckets: m.buckets,
    upstreamBuckets: m.upstream_buckets ?? m.buckets,
    latencyReports: m.latency_reports,
    providers,
    // A route naming an unknown service is refused by compile.ts; -1 keeps the indexes valid here.
    routes: config.routes.map((r, i) => ({
      name: r.name, service: r.service === undefined ? -1 : serviceIndex.get(r.service) ?? -1, waf: r.waf === false ? false : r.waf !== undefined || config.waf !== undefined,
      ...(versionSets[i] !== null ? { versions: versionSets[i] } : {}),
      ...(r.services !== undefined ? { members: r.services.map((m) => serviceIndex.get(m.name) ?? -1) } : {}),
      ...(r.mirror !== undefined ? { mirror: true } : {}),
      ...(r.websocket !== undefined && r.websocket !== false ? { websocket: true } : {}),
    })),
    ...(versionNames.length > 0 ? { versions: versionNames } : {}),
  };
  // A gRPC service's targets are its grpc.targets (src/grpc/).
  const layout = metricsLayout(compiled, serviceNames.map((name) => ({ targets: config.services[name].targets ?? config.services[name].grpc?.targets ?? [] })));
  /** MetricsFilterConfig.apiVersionAt of a route with API versioning. */
  const apiVersionTable = (route: number): number[] => {
    const served = compiled.routes[route].versions!;
    const at = (k: number) => layout.apiVersions[route] + k * layout.statusSlots;
    // A path-versioned route: its own version, whatever the request context says.
    if (config.routes[route].version !== undefined) return Array.from({ length: versionNames.length + 1 }, () => at(0));
    const table = Array.from({ length: versionNames.length + 1 }, () => -1);
    served.forEach((version, k) => { table[version + 1] = at(k); });
    return table;
  };
  const slotOffsets = (slot: number, service: number): MetricsSlotOffsets => ({
    requestsAt: layout.requests + slot * layout.statusSlots,
    bytesAt: layout.bytes + slot * 2,
    durationAt: layout.duration + slot * layout.durationStride,
    localRepliesAt: layout.localReplies + slot * LOCAL_REPLY_CODES.length,
    upstreamDurationAt: service < 0 ? -1 : layout.upstreamDuration + service * layout.upstreamStride,
    upstreamErrorsAt: service < 0 ? -1 : layout.upstreamErrors + service * UPSTREAM_ERROR_KINDS.length,
    targetErrorsAt: service < 0 ? -1 : layout.targetErrors + layout.targetBase[service],
    retriesAt: service < 0 ? -1 : layout.retries + service * RETRY_SLOTS,
  });
  const of = (route: number, routeName: string, service: number, provider: number): MetricsFilterConfig => {
    const members = route < compiled.routes.length ? compiled.routes[route].members : undefined;
    return {
      routeName,
      statusCodes: compiled.statusCodes,
      buckets: compiled.buckets,
      upstreamBuckets: compiled.upstreamBuckets,
      latencyReports: compiled.latencyReports && (service >= 0 || members !== undefined),
      ...slotOffsets(route, service),
      authAt: provider < 0 ? -1 : layout.auth + provider * AUTH_RESULTS.length,
      wafAt: route < layout.waf.length ? layout.waf[route] : -1,
      ...(route < layout.apiVersions.length && layout.apiVersions[route] >= 0 ? { apiVersionAt: apiVersionTable(route) } : {}),
      ...(members !== undefined ? { members: members.map((member, k) => slotOffsets(layout.memberSlots[route] + k, member)) } : {}),
      ...(route < layout.websocket.length && layout.websocket[route] >= 0 ? { websocketAt: layout.websocket[route] } : {}),
    };
  };
  return {
    runtime: { metrics: compiled },
    route: (index) => {
      const r = config.routes[index];
      const provider = r.auth === undefined ? -1 : providerIndex.get(r.auth.provider ?? r.auth.providers?.[0] ?? '') ?? -1;
      return of(index, r.name, compiled.routes[index].service, provider);
    },
    unrouted: of(config.routes.length, '-', -1, -1),
  };
}
