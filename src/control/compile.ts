// RawConfig → CompiledConfig. Runs the schema first (so a config built in code or submitted
// through an API gets exactly the checks a YAML file gets), then the rules that relate
// values to each other, collecting every problem before throwing.

import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import type {
  CompiledConfig,
  CompiledRoute,
  CompiledServer,
  CompiledService,
  RewritePart,
} from '../shared/compiled-config.js';
import { methodMask, methodsInMask, OTHER_METHOD_BIT, ANY_METHOD_MASK } from '../shared/methods.js';
import { ConfigError, issueAt, type ConfigIssue, type KeyPath, type LineLocator } from './config-error.js';
import {
  parsePathPattern,
  parseRewrite,
  parseStripPrefix,
  parseTarget,
  validateRawConfig,
  type Parsed,
  type PathPattern,
  type RawConfig,
  type RawConfigInput,
  type RawRoute,
  type RawService,
} from './config-schema.js';
import { compileAuth } from './auth-compile.js';
import { compileRateLimits, DEFAULT_RATE_LIMIT_KEYS } from './rate-limit-compile.js';

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
  return compileValidatedConfig(validateRawConfig(raw, file, locate), file, locate);
}

/**
 * compileConfig for a config that validateRawConfig returned (the admin API validates first
 * to compare instance keys; this skips a second schema pass, ~20 ms for 10,000 routes).
 * Relative paths (keys_file) resolve against `baseDir`: the config file's folder, also for a
 * config submitted through the admin API, whose `file` only names it in messages.
 */
export function compileValidatedConfig(config: RawConfig, file: string, locate?: LineLocator, baseDir = dirname(file)): CompiledConfig {
  const issues: ConfigIssue[] = [];
  const report: Report = (path, message) => issues.push(issueAt(file, path, message, locate));

  const services = Object.entries(config.services).map(([name, service]) => compileService(name, service, report));
  const serviceIndexByName = new Map(services.map((service, index) => [service.name, index]));
  const routes = config.routes.map((route, index) => compileRoute(route, index, serviceIndexByName, config.server, report));
  checkRouteSet(config.routes, report);
  const auth = compileAuth(config, baseDir, report);
  routes.forEach((route, index) => { if (route) route.filters.push(...auth.filtersFor(config.routes[index], index)); });
  const rateLimits = compileRateLimits(config, report);
  routes.forEach((route, index) => { if (route) route.filters.push(...rateLimits.filtersFor(config.routes[index], index)); });
  checkAdminListen(config, report);

  if (issues.length > 0) throw new ConfigError(issues);
  return {
    source: file,
    server: compileServer(config.server),
    services,
    // compileRoute returns null only after reporting an issue, so nothing is dropped here.
    routes: routes.filter((route): route is CompiledRoute => route !== null),
    // Only when used, so configs without rate limiting compile exactly as before.
    ...(rateLimits.runtime.limits.length > 0 || rateLimits.runtime.sync !== null || config.server.rate_limit_keys !== DEFAULT_RATE_LIMIT_KEYS
      ? { rateLimit: rateLimits.runtime } : {}),
  };
}

function compileServer(server: RawConfig['server']): CompiledServer {
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
    escapedSlashes: server.escaped_slashes,
  };
}

function compileService(name: string, service: RawService, report: Report): CompiledService {
  const targets = service.targets.map((target) => validated(parseTarget(target)));
  // A repeated target would silently get double the traffic; say so instead.
  const firstIndexByOrigin = new Map<string, number>();
  targets.forEach((target, index) => {
    const first = firstIndexByOrigin.get(target.origin);
    if (first === undefined) firstIndexByOrigin.set(target.origin, index);
    else report(['services', name, 'targets', index], `${target.origin} is already listed as targets[${first}]`);
  });
  return {
    name,
    targets,
    balance: service.balance,
    timeouts: {
      connectMs: service.timeouts.connect_ms,
      responseMs: service.timeouts.response_ms,
      idleMs: service.timeouts.idle_ms,
    },
    connectionsPerTarget: service.connections,
    pipelining: service.pipelining,
  };
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

  const service = serviceIndexByName.get(route.service);
  if (service === undefined) {
    const defined = [...serviceIndexByName.keys()];
    const hint = defined.length > 0 ? `defined services: ${defined.join(', ')}` : 'no services are defined';
    fail(at('service'), `unknown service ${JSON.stringify(route.service)} (${hint})`);
  }

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
  };
}

function describeMethods(mask: number): string {
  if (mask === ANY_METHOD_MASK) return 'any method';
  const names = methodsInMask(mask);
  if (mask & OTHER_METHOD_BIT) names.push('non-standard methods');
  return names.join(', ');
}

/** The admin API never shares the data-plane listener (issue #4). */
function checkAdminListen(config: RawConfig, report: Report): void {
  const admin = config.admin;
  if (!admin || admin.port !== config.server.port) return;
  const wildcard = (host: string) => host === '0.0.0.0' || host === '::';
  if (admin.host === config.server.host || wildcard(admin.host) || wildcard(config.server.host)) {
    report(['admin', 'port'], `${admin.port} is the data-plane port (server.port); the admin API needs its own port`);
  }
}

/** Rules across routes: unique names, and no two routes that would match the same requests. */
function checkRouteSet(routes: readonly RawRoute[], report: Report): void {
  const firstIndexByName = new Map<string, number>();
  // Routes that could collide: same host, kind and path shape (`{id}` and `{uid}` match
  // the same requests, so param names are ignored).
  const earlierBySlot = new Map<string, { index: number; methodMask: number }[]>();

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
      if (shared === 0) continue;
      report(
        ['routes', index, 'match'],
        `ambiguous with routes[${other.index}] (${JSON.stringify(routes[other.index].name)}): same host (${host ?? '*'}), ` +
          `${kind} ${path} and methods (both match ${describeMethods(shared)})`,
      );
    }
    earlier.push({ index, methodMask: mask });
    earlierBySlot.set(slot, earlier);
  });
}
