// RawConfig → CompiledConfig. Runs the schema first (so a config built in code or submitted
// through an API gets exactly the checks a YAML file gets), then the rules that relate
// values to each other, collecting every problem before throwing.

import { effectiveServerLimits } from '../filters/route-limits/index.js';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import type {
  CompiledConfig,
  CompiledFilter,
  CompiledRoute,
  CompiledServer,
  CompiledService,
  RewritePart,
} from '../shared/compiled-config.js';
import { methodBit, methodMask, methodsInMask, OTHER_METHOD_BIT, DEFAULT_METHOD_MASK } from '../shared/methods.js';
import { ConfigError, formatKeyPath, issueAt, unknownNameMessage, type ConfigIssue, type KeyPath, type LineLocator } from './config-error.js';
import {
  parsePathPattern,
  parseRewrite,
  parseStripPrefix,
  parseTarget,
  parseRawConfig,
  type Parsed,
  type PathPattern,
  type RawConfig,
  type RawConfigInput,
  type RawRoute,
  type RawService,
  type SchemaIssue,
} from './config-schema.js';
import { FILTERS_IN_CHAIN_ORDER } from '../filters/index.js';
import { routeVersionMasks, versionNames } from '../filters/api-version/compile.js';
import type { FilterMend } from '../data/chain.js';
import { isMapping, mendNamedEntry, type Mapping } from './schema-kit.js';
import { checkServerTls, compileServerTls, compileUpstreamTls, tlsSource } from './tls-config.js';
import { compileHealthCheck, compileOutlier } from './health-config.js';
import { checkRetryOn, compileRouteResilience } from './retry-config.js';
import { clientCertHeaderNames, compileBreaker, compileFallback, compileOverload, compileRouteBreaker } from './breaker-config.js';
import { clientIdentityHeaders } from '../filters/identity-headers.js';
import { compileMirror, compileSplit, type TrafficContext } from './traffic-config.js';
import { memberPolicyName } from '../shared/breaker-layout.js';
import { compileRouteWebSocket } from './websocket-config.js';

/** `{ [key]: value }`, or nothing for a null value (a section that is not configured). */
function optional<K extends string, V>(key: K, value: V | null): { [k in K]?: V } {
  return (value === null ? {} : { [key]: value }) as { [k in K]?: V };
}
import { compileGrpcService, compileTranscode, type GrpcRoots } from '../grpc/compile.js';

/** Value of a rule that the schema has already enforced. */
function validated<T>(parsed: Parsed<T>): T {
  if (!parsed.ok) throw new Error(`internal: schema let an invalid value through: ${parsed.error}`);
  return parsed.value;
}

type Report = (path: KeyPath, message: string) => void;

/**
 * Validates and compiles a config. `file` names the source in messages; `locate` maps key
 * paths to line numbers when the config came from a file. Throws ConfigError.
 */
export function compileConfig(raw: RawConfigInput, file: string, locate?: LineLocator): CompiledConfig {
  return compileValidatedConfig(validateConfig(raw, file, locate), file, locate);
}

/**
 * compileConfig for a config that validateConfig returned (the admin API validates first
 * to compare instance keys; this skips a second schema pass, ~20 ms for 10,000 routes).
 * Relative paths (keys_file) resolve against `baseDir`: the config file's folder, also for a
 * config submitted through the admin API, whose `file` only names it in messages.
 */
export function compileValidatedConfig(config: RawConfig, file: string, locate?: LineLocator, baseDir = dirname(file)): CompiledConfig {
  const issues: ConfigIssue[] = [];
  const report: Report = (path, message) => issues.push(issueAt(file, path, message, locate));

  const grpcRoots: GrpcRoots = new Map();
  const identityHeaders = [...clientIdentityHeaders(config), ...clientCertHeaderNames(config.server.tls?.client_auth?.headers)];
  const services = Object.entries(config.services).map(([name, service]) => compileService(name, service, baseDir, report, identityHeaders, grpcRoots));
  const serviceIndexByName = new Map(services.map((service, index) => [service.name, index]));
  const traffic: TrafficContext = {
    serviceIndexByName,
    isGrpc: (name) => config.services[name]?.grpc !== undefined,
    claimHeaders: (provider) => config.auth?.providers.find((p) => p.name === provider)?.claims_to_headers,
    report,
  };
  const routes = config.routes.map((route, index) => compileRoute(route, index, serviceIndexByName, config.server, traffic, report));
  routes.forEach((route, index) => route && resolvePolicies(route, config.routes[index], config.services, services, identityHeaders, index, report));
  // Routes (and split members: src/shared/breaker-layout.ts memberPolicyName) with a fallback cache of their own.
  const routeFallbacks = routes.flatMap((route) => !route ? []
    : route.split === undefined ? (route.fallback ? [route.name] : [])
    : route.split.members.filter((m) => m.fallback).map((m) => memberPolicyName(route.name, services[m.service].name)));
  routes.forEach((route, index) => route && resolveWebSocket(route, config.routes[index], services[route.service], index, report));
  const websocketRoutes = routes.some((route) => route?.websocket !== undefined);
  // transcode: checked against the route's service's descriptors (src/grpc/compile.ts).
  config.routes.forEach((route, index) => {
    if (route.transcode !== undefined && route.service !== undefined && routes[index]) {
      routes[index]!.transcode = compileTranscode(route.transcode, index, route.service, grpcRoots, config.auth, report);
    }
  });
  // match.version: the route table's version constraint (src/filters/api-version/compile.ts).
  const versionMasks = routeVersionMasks(config, report);
  routes.forEach((route, index) => {
    if (route && versionMasks[index] !== -1) route.match.versionMask = versionMasks[index];
  });
  checkRouteSet(config.routes, report, versionMasks, (mask) => versionNames(config, mask).join(', '));
  // Each registered filter compiles the whole config once (in chain order, so a route's
  // filters come out ordered by phase); RawConfig must hold what each one reads.
  let filterRuntimes = {};
  const unroutedFilters: CompiledFilter[] = [];
  for (const factory of FILTERS_IN_CHAIN_ORDER) {
    const compiled = factory.compile(config, { report, baseDir });
    filterRuntimes = { ...filterRuntimes, ...compiled.runtime };
    if (compiled.unrouted != null) unroutedFilters.push({ name: factory.name, config: compiled.unrouted });
    routes.forEach((route, index) => {
      const filterConfig = route ? compiled.route(index) : null;
      if (route && filterConfig !== null) route.filters.push({ name: factory.name, config: filterConfig });
    });
  }
  checkAdminListen(config, report);
  checkSelfTargets(config, report);
  checkServerTls(config.server.tls, baseDir, report);

  if (issues.length > 0) throw new ConfigError(issues);
  return {
    source: file,
    server: { ...compileServer(config.server, baseDir), limits: effectiveServerLimits(config.server.limits, config.routes) },
    services,
    // compileRoute returns null only after reporting an issue, so nothing is dropped here.
    routes: routes.filter((route): route is CompiledRoute => route !== null),
    ...(unroutedFilters.length > 0 ? { unroutedFilters } : {}),
    ...(routeFallbacks.length > 0 ? { routeFallbacks } : {}),
    ...(websocketRoutes ? { websocketRoutes: true as const } : {}),
    ...filterRuntimes,
  };
}

function compileServer(server: RawConfig['server'], baseDir: string): CompiledServer {
  return {
    host: server.host,
    port: server.port,
    workers: server.workers === 'auto' ? availableParallelism() : server.workers,
    limits: {
      maxUrlBytes: server.limits.max_url_bytes,
      maxHeaderBytes: server.limits.max_header_bytes,
      maxBodyBytes: server.limits.max_body_bytes,
    },
    drainTimeoutMs: server.drain_timeout_ms,
    drainDelayMs: server.drain_delay_ms,
    escapedSlashes: server.escaped_slashes,
    tls: server.tls === undefined ? null : compileServerTls(server.tls),
    tlsSource: server.tls === undefined ? null : tlsSource(server.tls, baseDir),
    ...optional('overload', compileOverload(server.max_connections, server.overload)),
  };
}

function compileService(name: string, service: RawService, baseDir: string, report: Report, identityHeaders: readonly string[], grpcRoots: GrpcRoots): CompiledService {
  const grpc = compileGrpcService(name, service, baseDir, report, grpcRoots);
  const targets = grpc !== null
    ? grpc.targets.map((t) => ({ origin: `${grpc.tls === null ? 'grpc' : 'grpcs'}://${t.address}`, hostHeader: t.address }))
    : (service.targets ?? []).map((target) => validated(parseTarget(target)));
  // A repeated target would silently get double the traffic; say so instead.
  const firstIndexByOrigin = new Map<string, number>();
  targets.forEach((target, index) => {
    const first = firstIndexByOrigin.get(target.origin);
    if (first === undefined) firstIndexByOrigin.set(target.origin, index);
    else report(['services', name, 'targets', index], `${target.origin} is already listed as targets[${first}]`);
  });
  // Its routes' `on` are checked with the route (retry-config.ts compileRouteResilience).
  checkRetryOn(service.retry?.on, service.grpc !== undefined, ['services', name, 'retry', 'on'], report);
  const secure = targets.some((t) => t.origin.startsWith('https:'));
  if (service.tls !== undefined && !secure) report(['services', name, 'tls'], 'applies to https:// targets, and this service has none');
  const tls = secure ? compileUpstreamTls(service.tls, baseDir, ['services', name, 'tls'], report) : null;
  return {
    name,
    targets,
    tls,
    balance: service.balance,
    timeouts: {
      connectMs: service.timeouts.connect_ms,
      responseMs: service.timeouts.response_ms,
      idleMs: service.timeouts.idle_ms,
    },
    connectionsPerTarget: service.connections,
    pipelining: service.pipelining,
    // Present only when configured: a service without them compiles as before.
    ...healthPolicies(name, service, report),
    // Absent when not configured (the compiled config stays as it was for other services).
    ...optional('circuitBreaker', compileBreaker(service.circuit_breaker)),
    ...optional('fallback', compileFallback(service.fallback, identityHeaders)),
    ...(grpc !== null ? { grpc } : {}),
  };
}

/** The service's `health_check` and `outlier`, as fields of its CompiledService (absent when not configured). */
function healthPolicies(name: string, service: RawService, report: Report): Pick<CompiledService, 'healthCheck' | 'outlier'> {
  // The checks are HTTP GETs and the outlier rules read HTTP statuses: a gRPC service has neither.
  if (service.grpc !== undefined) {
    for (const key of ['health_check', 'outlier'] as const) {
      if (service[key] !== undefined) report(['services', name, key], 'is for HTTP services; a gRPC service (grpc:) takes no health_check or outlier yet');
    }
    // gRPC has its own header for it (src/grpc/runtime.ts GrpcCall.startTry).
    if (service.deadline_header !== undefined) report(['services', name, 'deadline_header'], 'does not apply to a gRPC service: the time left of deadline_ms always goes upstream as grpc-timeout');
    return {};
  }
  const healthCheck = compileHealthCheck(service.health_check, ['services', name, 'health_check'], report);
  const outlier = compileOutlier(service.outlier, ['services', name, 'outlier'], report);
  return { ...(healthCheck === null ? {} : { healthCheck }), ...(outlier === null ? {} : { outlier }) };
}

/** True when `prefix` is `path` or a whole-segment prefix of it (`/v1` of `/v1/users`, not `/v1/us`). */
function isSegmentPrefix(prefix: string, path: string): boolean {
  return path === prefix || path.startsWith(prefix + '/');
}

interface CompiledMatch {
  match: CompiledRoute['match'];
  pattern: PathPattern;
}

/** The route's match, or null when it has neither or both of prefix and path (reported by compileRoute). */
function compileMatch(match: RawRoute['match']): CompiledMatch | null {
  if ((match.prefix === undefined) === (match.path === undefined)) return null;
  const pattern = validated(
    match.prefix !== undefined ? parsePathPattern(match.prefix, 'prefix') : parsePathPattern(match.path!, 'path'),
  );
  return {
    pattern,
    match: {
      kind: pattern.kind,
      path: pattern.path,
      host: match.host === undefined ? null : match.host.toLowerCase(),
      methodMask: methodMask(match.methods),
    },
  };
}

function compileRoute(
  route: RawRoute,
  index: number,
  serviceIndexByName: ReadonlyMap<string, number>,
  server: RawConfig['server'],
  traffic: TrafficContext,
  report: Report,
): CompiledRoute | null {
  const at = (...keys: (string | number)[]): KeyPath => ['routes', index, ...keys];
  let valid = true;
  const fail: Report = (path, message) => {
    valid = false;
    report(path, message);
  };

  const compiled = compileMatch(route.match);
  const pattern = compiled?.pattern ?? null;
  const patternKey = route.match.prefix !== undefined ? 'prefix' : 'path';
  if (!compiled) {
    fail(
      at('match'),
      route.match.prefix !== undefined
        ? 'has both prefix and path; use exactly one (prefix matches a subtree, path one path)'
        : 'needs a prefix or a path',
    );
  }

  // One service, or a weighted split whose first member stands for the route where one
  // service is read at compile time (src/control/traffic-config.ts).
  const split = compileSplit(route, at(), { ...traffic, report: fail });
  let service: number | undefined;
  if (split.split !== null) service = split.split.members[0].service;
  else if (route.services !== undefined) service = undefined;
  else if (route.service === undefined) fail(at('service'), 'is required: the service the route sends to (or services: [...] for a weighted split)');
  else {
    service = serviceIndexByName.get(route.service);
    if (service === undefined) {
      fail(at('service'), unknownNameMessage('service', route.service, [...serviceIndexByName.keys()], 'no services are defined'));
    }
  }
  const mirror = compileMirror(route, at(), { ...traffic, report: fail });

  if (route.strip_prefix !== undefined && route.rewrite !== undefined) {
    fail(at('rewrite'), 'cannot be combined with strip_prefix (a rewrite already sets the whole path)');
  }

  let stripPrefix: string | null = null;
  if (route.strip_prefix !== undefined) {
    stripPrefix = validated(parseStripPrefix(route.strip_prefix));
    if (pattern && !isSegmentPrefix(stripPrefix, pattern.path)) {
      fail(
        at('strip_prefix'),
        `${JSON.stringify(stripPrefix)} is not a whole-segment prefix of match.${patternKey} ${JSON.stringify(pattern.path)}`,
      );
    }
  }

  let rewrite: RewritePart[] | null = null;
  if (route.rewrite !== undefined) {
    rewrite = [];
    const paramNames = pattern?.paramNames ?? [];
    for (const part of validated(parseRewrite(route.rewrite))) {
      if ('literal' in part) {
        rewrite.push(part);
        continue;
      }
      const param = paramNames.indexOf(part.param);
      if (param >= 0) rewrite.push({ param });
      else if (pattern?.kind === 'template') {
        const captured = paramNames.map((name) => `{${name}}`).join(', ');
        fail(at('rewrite'), `"{${part.param}}" is not a parameter of match.path ${JSON.stringify(pattern.path)} (it has ${captured})`);
      } else if (pattern) {
        fail(at('rewrite'), `"{${part.param}}" is not captured: only a match.path with {name} segments captures parameters`);
      }
    }
  }

  if (!valid || !compiled || service === undefined) return null;
  return {
    name: route.name,
    service,
    match: compiled.match,
    paramNames: compiled.pattern.paramNames,
    stripPrefix,
    rewrite,
    preserveHost: route.preserve_host,
    escapedSlashes: route.escaped_slashes ?? server.escaped_slashes,
    filters: [],
    // Present only when configured: a route without them compiles as before.
    ...(split.split !== null ? { split: split.split } : {}),
    ...(mirror !== null ? { mirror } : {}),
  };
}

/**
 * A route's retry, deadline, circuit breaker and fallback: the route's keys over its service's,
 * or, for a split, over each member's service's (a member's own chain: retries, breaker and
 * cache of the service a request was sent to).
 */
function resolvePolicies(
  route: CompiledRoute, raw: RawRoute, rawServices: RawConfig['services'], services: CompiledService[], identityHeaders: readonly string[], index: number, report: Report,
): void {
  if (route.split === undefined) {
    const rawService = rawServices[raw.service!];
    resolveRetry(route, raw, rawService, services[route.service], index, report);
    resolveBreaker(route, raw, rawService, services[route.service].name, route.match.methodMask, identityHeaders, index, report);
    return;
  }
  // The members' services may agree: one problem of the route's keys is reported once.
  const seen = new Set<string>();
  const once: Report = (path, message) => {
    const key = `${formatKeyPath(path)}\x00${message}`;
    if (!seen.has(key)) { seen.add(key); report(path, message); }
  };
  for (const member of route.split.members) {
    const service = services[member.service];
    resolveRetry(member, raw, rawServices[service.name], service, index, once);
    resolveBreaker(member, raw, rawServices[service.name], service.name, route.match.methodMask, identityHeaders, index, once);
  }
}

/** A route's (or a split member's) retry policy and deadline over its service's (src/control/retry-config.ts). */
function resolveRetry(route: Pick<CompiledRoute, 'retry' | 'deadline'>, raw: RawRoute, rawService: RawService, service: CompiledService, index: number, report: Report): void {
  const { retry, deadline } = compileRouteResilience(raw, rawService, ['routes', index], report);
  // Set only when there is one: a route without them compiles as it always did.
  if (retry !== null) route.retry = retry;
  if (deadline !== null) route.deadline = deadline;
  if (retry !== null || deadline !== null) service.retryUsed = true;
}

/** A route's (or a split member's) own circuit breaker and fallback, or none, over its service's (src/control/breaker-config.ts). */
function resolveBreaker(
  route: Pick<CompiledRoute, 'circuitBreaker' | 'fallback'>, raw: RawRoute, rawService: RawService, serviceName: string, methodMask: number,
  identityHeaders: readonly string[], index: number, report: Report,
): void {
  const overrides = compileRouteBreaker(raw, rawService, identityHeaders);
  // Set only when there is one: a route without them shares its service's dispatch chain.
  if (overrides.circuitBreaker !== undefined) route.circuitBreaker = overrides.circuitBreaker;
  const b = overrides.circuitBreaker;
  if (b && b.consecutiveFailures === 0 && b.failureRate === 0 && b.maxConcurrent === 0 && b.maxPending === 0) {
    report(['routes', index, 'circuit_breaker'], `sets no rule (consecutive_failures, failure_rate, max_concurrent or max_pending), and service ${serviceName} has no circuit_breaker to take them from: the breaker would never refuse a try`);
  }
  if (overrides.fallback !== undefined) route.fallback = overrides.fallback;
  // The cache keeps and serves answers to GET only: on a route that takes no GET it would stay empty.
  if (overrides.fallback && (methodMask & methodBit('GET')) === 0) {
    report(['routes', index, 'fallback'], `keeps answers to GET only, and the route matches ${describeMethods(methodMask)}: it would never serve; remove it`);
  }
}

/** A route's `websocket` policy (src/control/websocket-config.ts); set only when the route takes upgrades. */
function resolveWebSocket(route: CompiledRoute, raw: RawRoute, service: CompiledService, index: number, report: Report): void {
  const policy = compileRouteWebSocket(raw, service.grpc != null, route.match.methodMask, methodBit('GET'), ['routes', index], report);
  if (policy === null) return;
  // The relay's upstream TLS and handshake are built per route from one service.
  if (route.split !== undefined || route.mirror !== undefined) {
    report(['routes', index, 'websocket'], `cannot be combined with ${route.split !== undefined ? 'services (a weighted split)' : 'mirror'}: a WebSocket route names one service and is not mirrored`);
    return;
  }
  route.websocket = policy;
}

function describeMethods(mask: number): string {
  if (mask === DEFAULT_METHOD_MASK) return 'any method';
  const names = methodsInMask(mask);
  if (mask & OTHER_METHOD_BIT) names.push('non-standard methods');
  return names.join(', ');
}

/** The admin API never shares the data-plane listener (issue #4). */
function checkAdminListen(config: RawConfig, report: Report): void {
  const tls = config.server.tls;
  if (tls && tls.port === config.server.port && tls.plain_http !== 'off') {
    report(['server', 'tls', 'port'], `${tls.port} is server.port (the plain-HTTP listener); HTTPS needs its own port, or set server.tls.plain_http: off`);
  }
  const admin = config.admin;
  if (!admin) return;
  const wildcard = (host: string) => host === '0.0.0.0' || host === '::';
  const shared = admin.host === config.server.host || wildcard(admin.host) || wildcard(config.server.host);
  if (admin.port === config.server.port && shared) {
    report(['admin', 'port'], `${admin.port} is the data-plane port (server.port); the admin API needs its own port`);
  } else if (tls && admin.port === tls.port && shared) {
    report(['admin', 'port'], `${admin.port} is the HTTPS data-plane port (server.tls.port); the admin API needs its own port`);
  }
}

/**
 * Target hosts that connect to a listener on `host`: itself, and for a loopback or wildcard
 * listener the names of this machine's loopback (a wildcard listener accepts connections to
 * 127.x; `::` also IPv4 ones; connecting to 0.0.0.0 or :: reaches the loopback).
 */
function hostsReaching(host: string): (target: string) => boolean {
  const h = host.toLowerCase();
  const ipv4Loopback = (t: string) => /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(t);
  const any4 = (t: string) => ipv4Loopback(t) || t === 'localhost' || t === '0.0.0.0';
  const any6 = (t: string) => t === '::1' || t === 'localhost' || t === '::';
  if (h === '0.0.0.0') return any4;
  if (h === '::') return (t) => any4(t) || any6(t);
  if (h === 'localhost') return (t) => t === '127.0.0.1' || t === '0.0.0.0' || any6(t);
  if (h === '127.0.0.1') return (t) => t === h || t === 'localhost' || t === '0.0.0.0';
  if (h === '::1') return any6;
  return (t) => t === h;
}

/** No service target is Lobby's own admin API or data-plane listener (a request loop). */
function checkSelfTargets(config: RawConfig, report: Report): void {
  const listeners = [
    { reaches: hostsReaching(config.server.host), port: config.server.port,
      what: `Lobby's own listener (server.host ${config.server.host}, server.port ${config.server.port}): every request would loop through the gateway` },
  ];
  if (config.server.tls) {
    listeners.push({ reaches: hostsReaching(config.server.host), port: config.server.tls.port,
      what: `Lobby's own HTTPS listener (server.tls.port ${config.server.tls.port}): every request would loop through the gateway` });
  }
  if (config.admin) {
    listeners.push({ reaches: hostsReaching(config.admin.host), port: config.admin.port,
      what: `Lobby's own admin API (admin.host ${config.admin.host}, admin.port ${config.admin.port}): requests would reach the admin listener, not an upstream` });
  }
  for (const [name, service] of Object.entries(config.services)) {
    (service.targets ?? []).forEach((raw, index) => {
      const url = new URL(raw); // the schema checked it (parseTarget)
      const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
      const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
      const listener = listeners.find((l) => l.port === port && l.reaches(host));
      if (listener) report(['services', name, 'targets', index], `${raw} is ${listener.what}`);
    });
  }
}

/**
 * Rules across routes: unique names, and no two routes that would match the same requests
 * (same path, a shared method and a shared API version: a route without match.version serves
 * every version).
 */
function checkRouteSet(routes: readonly RawRoute[], report: Report, versionMasks: readonly number[], describeVersions: (mask: number) => string): void {
  const firstIndexByName = new Map<string, number>();
  // Routes that could collide: same host, kind and path shape (`{id}` and `{uid}` match
  // the same requests, so param names are ignored).
  const earlierBySlot = new Map<string, { index: number; methodMask: number; versionMask: number }[]>();

  routes.forEach((route, index) => {
    const first = firstIndexByName.get(route.name);
    if (first === undefined) firstIndexByName.set(route.name, index);
    else report(['routes', index, 'name'], `duplicate route name ${JSON.stringify(route.name)} (also routes[${first}])`);

    const compiled = compileMatch(route.match);
    if (!compiled) return;
    const { host, kind, path, methodMask: mask } = compiled.match;
    const slot = `${host ?? '*'} ${kind} ${path.replace(/\{[^}]*\}/g, '{}')}`;
    const earlier = earlierBySlot.get(slot) ?? [];
    for (const other of earlier) {
      const shared = mask & other.methodMask;
      const versions = versionMasks[index] & other.versionMask;
      if (shared === 0 || versions === 0) continue;
      const versionNote = versions === -1 ? ''
        : versionMasks[index] === -1 || other.versionMask === -1
          ? ` and versions (a route without match.version serves every version, so both serve ${describeVersions(versions)})`
          : ` and versions (both serve ${describeVersions(versions)})`;
      report(
        ['routes', index, 'match'],
        `ambiguous with routes[${other.index}] (${JSON.stringify(routes[other.index].name)}): same host (${host ?? '*'}), ` +
          `${kind} ${path} and methods (both match ${describeMethods(shared)})${versionNote}`,
      );
    }
    earlier.push({ index, methodMask: mask, versionMask: versionMasks[index] ?? -1 });
    earlierBySlot.set(slot, earlier);
  });
}

// ---------------------------------------------------------------------------------------
// Every error in one pass. When the schema fails, the rules between values still run, on a
// copy of the config in which each part that failed is replaced by a neutral stand-in:
//   - an unknown key is dropped (it changes nothing);
//   - a service that failed becomes a placeholder under its name, so references to it
//     resolve, and nothing is reported under it;
//   - a route keeps the fields that passed; a field that failed is dropped, and nothing is
//     reported under it (nor under the route keys whose rules read it: a filter's
//     FilterMend.routeKeyReads);
//   - a failed server.host/port, admin or redis section takes part in no rule;
//   - a filter's section is mended by the filter (FilterMend.sections in src/data/chain.ts):
//     the same stand-ins and suppressions, for its named entries and the references to them.
// Issues that could be echoes of a schema issue (a route naming a service whose name failed)
// are left out, so every issue reported is a real, separate mistake.

/**
 * The schema, whose ConfigError also lists the issues between values (see above). Relative
 * paths in those checks resolve against `baseDir`, as compileValidatedConfig's do.
 */
export function validateConfig(value: unknown, file: string, locate?: LineLocator, baseDir = dirname(file)): RawConfig {
  const result = parseRawConfig(value);
  if (result.ok) return result.config;
  const issues = result.issues.map((issue) => issueAt(file, issue.path, issue.message, locate));
  throw new ConfigError([...issues, ...issuesBetweenValues(value, result.issues, file, locate, baseDir)]);
}

// Stand-ins that pass the schema and the rules between values on their own.
const placeholderService = (): Mapping => ({ targets: ['http://placeholder.invalid:1'] });
// `.` cannot start a name people write in YAML without meaning it, so no real route collides.
const placeholderRouteName = (index: number) => `.unparsed-route-${index}`;

/** The registered filters as this pass sees them: the sections each owns, and its mend if any. */
type MendingFilter = { readonly sections: object; readonly mend?: FilterMend };
const mendingFilters: readonly MendingFilter[] = FILTERS_IN_CHAIN_ORDER;
const filterBySection = new Map(mendingFilters.flatMap((f) => Object.keys(f.sections).map((key) => [key, f] as const)));

/** Whether `path` lies under one of `prefixes` (formatted key paths), or is one. */
const isUnder = (prefixes: readonly string[], path: string) =>
  prefixes.some((prefix) => path === prefix || path.startsWith(`${prefix}.`) || path.startsWith(`${prefix}[`));

function issuesBetweenValues(input: unknown, schemaIssues: readonly SchemaIssue[], file: string, locate: LineLocator | undefined, baseDir: string): ConfigIssue[] {
  if (!isMapping(input)) return [];
  const value = structuredClone(input);
  const suppressed: KeyPath[] = [];
  const suppress = (path: KeyPath) => void suppressed.push(path);
  const failedServices = new Set<string>();
  const failedInFilter = new Map<MendingFilter, KeyPath[]>(mendingFilters.map((f) => [f, []]));
  const touchedRoutes = new Set<number>();
  let neutralListen = false;

  for (const issue of schemaIssues) {
    const [section, key, field] = issue.path;
    if (issue.unknownKey) {
      const parent = issue.path.slice(0, -1).reduce<unknown>((node, segment) => (node as Mapping | undefined)?.[segment], value);
      if (isMapping(parent)) delete parent[issue.path[issue.path.length - 1]];
      continue;
    }
    switch (section) {
      case 'server':
        if (key === undefined || key === 'host' || key === 'port') neutralListen = true;
        if (key === undefined || !isMapping(value.server)) value.server = {};
        else delete value.server[key];
        break;
      case 'services':
        mendNamedEntry(value, issue.path, failedServices, suppress, placeholderService);
        break;
      case 'routes': {
        if (typeof key !== 'number' || !Array.isArray(value.routes)) {
          value.routes = [];
          break;
        }
        touchedRoutes.add(key);
        const route = value.routes[key];
        if (field === undefined || !isMapping(route)) {
          value.routes[key] = {};
          suppressed.push(['routes', key]);
          break;
        }
        delete route[field];
        suppressed.push(['routes', key, field]);
        // Without its split the route has no service, and `sticky` nothing to apply to: echoes.
        if (field === 'services') suppressed.push(['routes', key, 'service'], ['routes', key, 'sticky']);
        break;
      }
      case 'admin':
      case 'redis':
        delete value[section];
        break;
      default: {
        const filter = filterBySection.get(String(section));
        if (!filter?.mend?.sections) return []; // a shape this pass does not know how to mend: schema issues only
        failedInFilter.get(filter)!.push(issue.path);
      }
    }
  }
  for (const [filter, failed] of failedInFilter) {
    if (filter.mend?.sections && !filter.mend.sections(value, failed, suppress)) return [];
  }

  if (Array.isArray(value.routes)) {
    value.routes.forEach((route: unknown, index: number) => {
      if (!isMapping(route)) return;
      if (touchedRoutes.has(index)) {
        // What a route needs to pass the schema; the failed field's issues are suppressed.
        route.name ??= placeholderRouteName(index);
        route.match ??= {};
        if (route.services === undefined) route.service ??= '';
      }
      if (typeof route.service === 'string' && failedServices.has(route.service)) suppressed.push(['routes', index, 'service']);
      if (Array.isArray(route.services)) {
        route.services.forEach((member: unknown, k: number) => {
          if (isMapping(member) && typeof member.name === 'string' && failedServices.has(member.name)) suppressed.push(['routes', index, 'services', k, 'name']);
        });
      }
      if (isMapping(route.mirror) && typeof route.mirror.service === 'string' && failedServices.has(route.mirror.service)) suppressed.push(['routes', index, 'mirror', 'service']);
    });
    // A route key whose rules read a suppressed key is suppressed with it.
    const under = suppressed.map(formatKeyPath);
    value.routes.forEach((_route: unknown, index: number) => {
      for (const filter of mendingFilters) {
        for (const [key, reads] of Object.entries(filter.mend?.routeKeyReads ?? {})) {
          if (reads.some((read) => isUnder(under, formatKeyPath(['routes', index, read])))) suppressed.push(['routes', index, key]);
        }
      }
    });
  }

  const mended = parseRawConfig(value);
  if (!mended.ok) return [];
  // Port 0 matches no listener and no other port, so a failed host or port takes part in no rule.
  if (neutralListen) mended.config.server.port = 0;
  try {
    compileValidatedConfig(mended.config, file, locate, baseDir);
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const under = suppressed.map(formatKeyPath);
    return error.issues.filter((issue) => !isUnder(under, issue.path));
  }
}
