// A generation: everything a worker needs to serve requests under one published config,
// built once when the control plane sends `prepare` (never per request). Requests keep a
// reference to the generation they started on, so a swap never changes an in-flight request.
import type { CompiledConfig, CompiledMirror, CompiledRoute, CompiledService, CompiledSplit } from '../shared/compiled-config.js';
import { memberPolicyName } from '../shared/breaker-layout.js';
import { metricsLayout } from '../shared/metrics-layout.js';
import { RouteMatcher } from './route-match.js';
import { VersionResolver } from './api-version.js';
import { RouteData } from '../shared/route-data.js';
import type { FilterBuilder, WorkerEnv } from './chain.js';
import type { Filter, GenerationView, RuntimeMirror, RuntimeRoute, RuntimeService, RuntimeTarget } from './request-context.js';
import { PoolRegistry } from './upstream/pools.js';
import { healthyLeastRequest, healthyRoundRobin, leastRequest, roundRobin } from './upstream/balancer.js';
import { outlierInterceptor } from './upstream/outlier.js';
import { compose, toTarget, upstreamError, type Interceptor } from './upstream/dispatch.js';
import { undiciDispatch } from './upstream/undici-dispatch.js';
import { retryInterceptor } from './upstream/retry.js';
import { breakerInterceptor, routePolicy, servicePolicy, type BreakerPolicy } from './upstream/breaker.js';
import { fallbackServer, keepFallbackCaches } from './upstream/fallback-cache.js';
import { attachGrpcService, grpcTargets, grpcTranscoder } from '../grpc/runtime.js';
import { webSocketHook } from './websocket.js';
import { upstreamTlsOptions } from './upstream/pools.js';

export type { RuntimeRoute, RuntimeService, RuntimeTarget } from './request-context.js';

export class Generation implements GenerationView {
  readonly poolKeys: ReadonlySet<string>;
  readonly versioning: VersionResolver | null;
  /** onEnd filters of requests that match no route (CompiledConfig.unroutedFilters); null when none. */
  readonly unroutedEndFilters: readonly Filter[] | null;
  /** Routes built so far (by index); the rest are built on their first request. */
  private readonly built: (RuntimeRoute | undefined)[];

  constructor(
    readonly id: number,
    /** The compiled config without its routes (those are in routeData). */
    readonly config: CompiledConfig,
    readonly matcher: RouteMatcher,
    private readonly routeData: RouteData,
    private readonly services: readonly RuntimeService[],
    private readonly env: WorkerEnv,
    /** The filter registry's builder (src/filters/index.ts), passed in by the worker so this
     * module does not import the filters (they import request-context.ts, which names Generation). */
    private readonly buildFilter: FilterBuilder,
  ) {
    const keys = new Set<string>();
    for (const s of services) for (const t of s.targets) keys.add(t.poolKey);
    this.poolKeys = keys;
    this.versioning = config.versioning?.constrained ? new VersionResolver(config.versioning) : null;
    this.built = new Array(routeData.count);
    const unrouted = (config.unroutedFilters ?? []).map((f) => buildFilter(f, env)).filter((f) => f.onEnd !== undefined);
    this.unroutedEndFilters = unrouted.length > 0 ? unrouted : null;
  }

  /** The services of this generation (GET /upstreams reads their targets). */
  get serviceList(): readonly RuntimeService[] {
    return this.services;
  }

  /** Hot path: an array read once a route has served a request. */
  route(index: number): RuntimeRoute {
    const route = this.built[index];
    return route !== undefined ? route : this.buildRoute(index);
  }

  private buildRoute(index: number): RuntimeRoute {
    const compiled = this.routeData.route(index);
    const route = buildRoute(index, compiled, this.services, this.config, this.env, this.buildFilter);
    this.built[index] = route;
    return route;
  }
}

function buildRoute(
  index: number, route: CompiledRoute, services: readonly RuntimeService[], config: CompiledConfig, env: WorkerEnv, buildFilter: FilterBuilder,
): RuntimeRoute {
  const service = services[route.service];
  const filters: Filter[] = route.filters.map((f) => {
    try {
      return buildFilter(f, env);
    } catch (err) {
      throw new Error(`route ${route.name}: ${(err as Error).message}`, { cause: err });
    }
  });
  // Phase lists are null when empty (fastify's hooks do this): an unused phase costs one compare.
  const responseFilters = filters.filter((f) => f.onResponse !== undefined).reverse();
  const endFilters = filters.filter((f) => f.onEnd !== undefined);
  const built: RuntimeRoute = {
    index,
    name: route.name,
    service: route.split !== undefined ? UNCHOSEN_SERVICE
      : route.circuitBreaker === undefined && route.fallback === undefined ? service
      : routeService(route, route.service, service, config, env),
    filters,
    responseFilters: responseFilters.length > 0 ? responseFilters : null,
    endFilters: endFilters.length > 0 ? endFilters : null,
    stripPrefixLength: route.stripPrefix === null || route.stripPrefix === '/' ? 0 : route.stripPrefix.length,
    rewrite: route.rewrite,
    preserveHost: route.preserveHost,
    escapedSlashes: route.escapedSlashes,
    retry: route.retry ?? null,
    deadlineMs: route.split !== undefined ? splitDeadlineMs(route.split) : route.deadline?.ms ?? 0,
    deadlineHeader: route.deadline?.header ?? '',
    transcoder: route.transcode ? grpcTranscoder(service, route.transcode, route.name) : null,
    split: null,
    splitMember: -1,
    mirror: route.mirror ? routeMirror(route, route.mirror, services, config, env) : null,
    websocket: route.websocket ? webSocketHook(route.websocket, upstreamTlsOptions(config.services[route.service].tls), config.server.workers) : null,
  };
  if (route.split === undefined) return built;
  const split = route.split;
  // Each member: the route as its requests see it from the choice on (split.ts).
  const members = split.members.map((m, k): RuntimeRoute => {
    const memberService = services[m.service];
    const own = { name: memberPolicyName(route.name, memberService.name), circuitBreaker: m.circuitBreaker, fallback: m.fallback, breakerSlot: m.breakerSlot };
    return {
      ...built,
      service: m.circuitBreaker === undefined && m.fallback === undefined ? memberService : routeService(own, m.service, memberService, config, env),
      retry: m.retry ?? null,
      deadlineMs: m.deadline?.ms ?? 0,
      deadlineHeader: m.deadline?.header ?? '',
      splitMember: k,
    };
  });
  let last = 0;
  split.members.forEach((m, k) => { if (m.weight > 0) last = k; });
  return {
    ...built,
    split: { members, cumulative: Float64Array.from(split.cumulative), total: split.total, last, sticky: split.sticky },
  };
}

/**
 * The exchange deadline of a split route until a member is chosen (a filter waiting, a body
 * arriving): the longest of its members', none when one has none. The choice then sets the
 * chosen member's (proxy.ts forward), still counted from when the request was accepted.
 */
function splitDeadlineMs(split: CompiledSplit): number {
  let ms = 0;
  for (const m of split.members) {
    const d = m.deadline?.ms ?? 0;
    if (d === 0) return 0;
    if (d > ms) ms = d;
  }
  return ms;
}

/**
 * The service of a split route as matched, before its filters ran and a member was chosen
 * (RuntimeRoute.split): never dispatched to (forward() chooses first); it only names the
 * service of a request refused before the choice: '-' in the access log and the metrics.
 */
const UNCHOSEN_SERVICE: RuntimeService = {
  name: '-', targets: [], pick: () => null, isUp: () => false,
  dispatch: (_options, handler) => handler.onResponseError?.(UNCHOSEN_CONTROLLER, upstreamError('connect_failed', 'a split route dispatched before choosing a service')),
  connectMs: 1000, responseMs: 1000, idleMs: 1000, serveFallback: null,
};
const UNCHOSEN_CONTROLLER = { abort() {}, pause() {}, resume() {}, aborted: true, paused: false };

/** Per worker, by route name: the in-flight count of a route's mirror, across generations. */
const mirrorInFlight = new Map<string, { n: number }>();

/** A route's mirror in this worker: the mirror service, its bounds and its counters. */
function routeMirror(route: CompiledRoute, mirror: CompiledMirror, services: readonly RuntimeService[], config: CompiledConfig, env: WorkerEnv): RuntimeMirror {
  let inFlight = mirrorInFlight.get(route.name);
  if (inFlight === undefined) { inFlight = { n: 0 }; mirrorInFlight.set(route.name, inFlight); }
  const at = config.metrics !== undefined && env.metrics !== undefined ? mirrorCountersAt(config, route.name) : -1;
  return {
    routeName: route.name,
    service: services[mirror.service],
    percent: mirror.percent,
    maxBodyBytes: mirror.maxBodyBytes,
    maxInFlight: mirror.maxInFlight,
    inFlight,
    counters: at >= 0 ? new Float64Array(env.metrics!) : null,
    countersAt: at,
  };
}

/** Where the route's lobby_mirror_requests_total counters are in a worker's metrics array (-1: none). */
function mirrorCountersAt(config: CompiledConfig, routeName: string): number {
  const m = config.metrics!;
  const r = m.routes.findIndex((x) => x.name === routeName);
  return r < 0 ? -1 : metricsLayout(m, config.services).mirror[r];
}

/**
 * The service as a route with its own `circuit_breaker` or `fallback` reaches it (or a split
 * member of such a route: `route` then names the member, memberPolicyName): the same
 * targets, balancer and timeouts, with the route's dispatch chain (the service's interceptors
 * with the route's breaker and cache in place of the service's) and fallback, built once when
 * the route is built. Everything that sends a request of the route reads
 * `ctx.route.service.dispatch` (proxy.ts, its retries and resends, the gRPC transcoder), so
 * a route without overrides keeps the service itself and pays nothing.
 */
function routeService(
  route: Pick<CompiledRoute, 'name' | 'circuitBreaker' | 'fallback' | 'breakerSlot'>, serviceIndex: number, service: RuntimeService,
  config: CompiledConfig, env: WorkerEnv,
): RuntimeService {
  const compiledService = config.services[serviceIndex];
  const policy = routePolicy(route, compiledService, config.breakerState?.buffer ?? null);
  return {
    ...service,
    dispatch: compose(toTarget, serviceInterceptors(compiledService, env, policy)),
    serveFallback: fallbackServer(policy.cache),
  };
}

export function buildGeneration(
  id: number, table: SharedArrayBuffer, routeData: SharedArrayBuffer, config: CompiledConfig, pools: PoolRegistry, env: WorkerEnv,
  buildFilter: FilterBuilder,
): Generation {
  keepFallbackCaches(config);
  const services: RuntimeService[] = config.services.map((svc) => runtimeService(svc, servicePolicy(svc), pools, config, env));
  config.services.forEach((svc, i) => { if (svc.grpc) attachGrpcService(services[i], svc.grpc); });
  // Filters read the generation's instance-level data (CompiledFilterRuntimes) through their env.
  return new Generation(id, config, new RouteMatcher(table), new RouteData(routeData), services, { ...env, runtimes: config }, buildFilter);
}

function runtimeService(svc: CompiledService, policy: BreakerPolicy, pools: PoolRegistry, config: CompiledConfig, env: WorkerEnv): RuntimeService {
  return {
    name: svc.name,
    targets: svc.grpc ? grpcTargets(svc.grpc) : svc.targets.map((t, i): RuntimeTarget => {
      const pooled = pools.acquire(svc, t, config.server.workers);
      return {
        origin: t.origin, hostHeader: t.hostHeader, fast: pooled.fast.dispatch, general: undiciDispatch(() => pooled.pool), poolKey: pooled.key, inFlight: 0,
        healthSlot: svc.health && env.healthTable ? svc.health.targetSlots[i] : -1,
      };
    }),
    dispatch: compose(toTarget, serviceInterceptors(svc, env, policy)),
    pick: picker(svc, env),
    isUp: upTest(svc, env),
    connectMs: svc.timeouts.connectMs,
    responseMs: svc.timeouts.responseMs,
    idleMs: svc.timeouts.idleMs,
    serveFallback: fallbackServer(policy.cache),
  };
}

/**
 * A service's upstream policies, outermost first, composed over its targets' clients once
 * per generation (issue 14: retry -> breaker -> outlier -> client), written once for both
 * clients. `env` gives them the instance's shared tables (absent outside a worker);
 * `policy` is the breaker and fallback cache of the chain: the service's, or a route's
 * (routeService).
 */
export function serviceInterceptors(service: CompiledService, env?: WorkerEnv, policy: BreakerPolicy = servicePolicy(service)): Interceptor[] {
  const interceptors: Interceptor[] = [];
  // Outermost: retries and the deadline; each try goes through the ones inside.
  if (service.retryUsed === true) interceptors.push(retryInterceptor(service));
  // Then the circuit breaker and the fallback capture: each try counts.
  const breaker = breakerInterceptor(policy);
  if (breaker !== null) interceptors.push(breaker);
  // Innermost, just above the client: outlier ejection counts each try's own outcome.
  const outlier = outlierInterceptor(service, env?.healthTable, env?.workerIndex ?? 0);
  if (outlier !== null) interceptors.push(outlier);
  return interceptors;
}

const ALWAYS_UP = (): boolean => true;

/** Whether a target of the service may take requests (retries choosing another target ask). */
function upTest(svc: CompiledService, env: WorkerEnv): (target: RuntimeTarget) => boolean {
  const down = svc.health && env.healthTable ? env.healthTable.down : null;
  return down === null ? ALWAYS_UP : (t) => t.healthSlot < 0 || down[t.healthSlot] === 0;
}

/** The service's balancer: skipping down targets only when it has a health policy. */
function picker(svc: CompiledService, env: WorkerEnv) {
  const down = svc.health && env.healthTable ? env.healthTable.down : null;
  if (svc.balance === 'least_request') return down === null ? leastRequest() : healthyLeastRequest(down);
  return down === null ? roundRobin() : healthyRoundRobin(down);
}
