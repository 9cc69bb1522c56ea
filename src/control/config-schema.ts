// Schema of the YAML configuration as written by people (snake_case keys, defaults filled
// in). It checks shape and every rule that concerns one value on its own (a path's syntax,
// a target URL, a host name), so that all of those are reported in one pass. Rules that
// relate values to each other (a route's service exists, strip_prefix fits the prefix,
// two routes collide) live in compile.ts.
//
// parseRawConfig() runs it; compile.ts validateConfig() is the entry point every source of a
// config goes through (the YAML loader, compileConfig(), the admin API's config store), and
// adds the issues between values to the schema's in one pass.

import { grpcServiceKeys, transcodeSchema } from '../grpc/schema.js';
import { isIP } from 'node:net';
import { z } from 'zod';
import type { CompiledTarget, MatchKind } from '../shared/compiled-config.js';
import { normalizePath } from '../shared/path-normalize.js';
import { parseCidr } from '../shared/ip-cidr.js';
import { DEFAULT_RATE_LIMIT_KEYS } from '../shared/rate-limit-config.js';
import { parseHostPort } from '../shared/redis-endpoint.js';
import { ConfigError, didYouMean, issueAt, type KeyPath, type LineLocator } from './config-error.js';
import {
  ALLOWED_KEYS, errorOf, fail, MAX_TIMER_MS, milliseconds, millisecondsOrZero, name, NAME_PATTERN, ok, positiveInt, rule, section, type Parsed,
} from './schema-kit.js';
import { filterRouteKeys, filterSections } from '../filters/index.js';
import { versionConstraint } from '../filters/api-version/schema.js';
import { tlsSchema, upstreamTlsSchema } from './tls-config.js';
import { healthCheckSchema, outlierSchema } from './health-config.js';
import { retryRouteKeys, retryServiceKeys } from './retry-config.js';
import { breakerRouteKeys, circuitBreakerSchema, fallbackSchema, overloadSchema } from './breaker-config.js';
import { trafficRouteKeys } from './traffic-config.js';
import { websocketRouteKeys } from './websocket-config.js';

// ---------------------------------------------------------------------------------------
// Rules on single values. Each returns the parsed value or an error message; the schema
// reports the message, compile.ts uses the value.

export { MAX_TIMER_MS, NAME_PATTERN, type Parsed } from './schema-kit.js';

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// RFC 9110 token characters, minus lower-case letters: methods are case-sensitive and a
// lower-case `get` is almost certainly a typo for `GET`, not a custom method.
const METHOD_TOKEN = /^[A-Z0-9!#$%&'*+.^_`|~-]+$/;
const HOST_CHARS = /^[a-z0-9.-]+$/;
const HOST_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
export const MAX_WORKERS = 256;

/** A route path pattern after validation. */
export interface PathPattern {
  kind: MatchKind;
  /** Canonical form: normalized, no trailing `/` except the root. */
  path: string;
  /** `{name}` segments of a template, in order. */
  paramNames: string[];
}

/** What normalizePath() refuses besides characters (checked first, with their own message). */
const REFUSED_PATH = 'is refused as a request path would be: a malformed percent-escape (expected % and two hex digits), %00, ' +
  'a ".." or "." segment with ";" parameters, or a double escape like %252e (docs/configuration.md#request-paths)';

function withoutTrailingSlash(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

/**
 * Checks that `path` is already in the form normalizePath() gives request paths (else no
 * request could ever match it) and returns it without its trailing `/`.
 */
function canonicalPath(path: string): Parsed<string> {
  if (!path.startsWith('/')) return fail('must start with "/"');
  if (path.includes('?')) return fail('must not contain a query string ("?"); the query is forwarded unchanged');
  const badChar = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]/.exec(path);
  if (badChar) return fail(`must not contain ${JSON.stringify(badChar[0])}; percent-encode it (%XX)`);
  const normalized = normalizePath(path);
  if (normalized === null) return fail(REFUSED_PATH);
  if (normalized !== path) return fail(`must be in normalized form: write ${JSON.stringify(withoutTrailingSlash(normalized))}`);
  return ok(withoutTrailingSlash(path));
}

/** A `path:` containing `{name}` segments: validates the literal parts as a path and the params. */
function templatePattern(path: string): Parsed<PathPattern> {
  const segments = path.split('/');
  const paramNames: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i];
    if (!segment.includes('{') && !segment.includes('}')) continue;
    const param = /^\{([^{}]*)\}$/.exec(segment);
    if (!param) return fail(`segment ${JSON.stringify(segment)}: a parameter must be a whole segment, like "{id}"`);
    const name = param[1];
    if (!PARAM_NAME.test(name)) return fail(`parameter name ${JSON.stringify(name)} must match [A-Za-z_][A-Za-z0-9_]*`);
    if (paramNames.includes(name)) return fail(`parameter "{${name}}" appears twice`);
    paramNames.push(name);
    // An escaped brace survives normalization untouched, so the literal parts are checked
    // as a real path and a suggested fix can be mapped back to `{name}`.
    segments[i] = `%7B${name}%7D`;
  }
  const literal = canonicalPath(segments.join('/'));
  if (!literal.ok) return fail(literal.error.replace(/%7B([A-Za-z0-9_]+)%7D/g, '{$1}'));
  return ok({ kind: 'template', path: withoutTrailingSlash(path), paramNames });
}

/** Parses `match.prefix` (key `prefix`) or `match.path` (key `path`). */
export function parsePathPattern(raw: string, key: 'prefix' | 'path'): Parsed<PathPattern> {
  const hasBrace = raw.includes('{') || raw.includes('}');
  if (key === 'prefix') {
    if (hasBrace) return fail('must not contain "{": a prefix cannot capture parameters (use match.path for a template)');
    const path = canonicalPath(raw);
    return path.ok ? ok({ kind: 'prefix', path: path.value, paramNames: [] }) : path;
  }
  if (hasBrace) return templatePattern(raw);
  const path = canonicalPath(raw);
  return path.ok ? ok({ kind: 'exact', path: path.value, paramNames: [] }) : path;
}

/** `strip_prefix`: a literal path of at least one segment. */
export function parseStripPrefix(raw: string): Parsed<string> {
  if (raw.includes('{') || raw.includes('}')) return fail('must not contain "{": only literal segments can be stripped');
  const path = canonicalPath(raw);
  if (path.ok && path.value === '/') return fail('"/" strips nothing; remove strip_prefix or name at least one segment');
  return path;
}

export type RawRewritePart = { literal: string } | { param: string };

/** `rewrite`: a path with optional `{name}` placeholders (anywhere in it, e.g. `/u/{id}.json`). */
export function parseRewrite(raw: string): Parsed<RawRewritePart[]> {
  if (!raw.startsWith('/')) return fail('must start with "/"');
  if (raw.includes('?')) return fail('must not contain a query string ("?"); the query is forwarded unchanged');
  const parts: RawRewritePart[] = [];
  const placeholder = /\{([^{}]*)\}/g;
  let literalStart = 0;
  let literals = '';
  for (let m = placeholder.exec(raw); m !== null; m = placeholder.exec(raw)) {
    if (!PARAM_NAME.test(m[1])) return fail(`parameter name ${JSON.stringify(m[1])} must match [A-Za-z_][A-Za-z0-9_]*`);
    const literal = raw.slice(literalStart, m.index);
    if (literal !== '') parts.push({ literal });
    parts.push({ param: m[1] });
    literals += literal + 'x';
    literalStart = m.index + m[0].length;
  }
  const tail = raw.slice(literalStart);
  if (tail !== '') parts.push({ literal: tail });
  literals += tail;
  if (literals.includes('{') || literals.includes('}')) return fail('has an unmatched "{" or "}"; placeholders look like "{id}"');
  if (!PATH_CHARS.test(literals)) return fail('contains characters not allowed in a URL path; percent-encode them (%XX)');
  const normalized = normalizePath(literals);
  if (normalized === null) return fail(REFUSED_PATH);
  if (normalized !== literals) return fail('must be in normalized form (no "//", "." or ".." segments, escapes of letters and digits decoded)');
  return ok(parts);
}

/** A `targets` entry: `http://host:port` or `https://host:port` with nothing else. */
export function parseTarget(raw: string): Parsed<CompiledTarget> {
  const scheme = /^https:\/\//i.test(raw) ? 'https' : /^http:\/\//i.test(raw) ? 'http' : null;
  if (scheme === null) return fail('must be an http:// or https:// URL like "http://127.0.0.1:9001"');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return fail(`is not a valid URL (expected "${scheme}://host:port")`);
  }
  if (url.username !== '' || url.password !== '') return fail('must not contain credentials (user:password@)');
  // Checked on the text: URL() would quietly resolve `/a/..` to `/` and drop a bare `?`.
  if (!/^https?:\/\/[^/?#\s]+\/?$/i.test(raw)) {
    return fail('must be only scheme, host and port (no path, query or fragment); use strip_prefix or rewrite on the route to change paths');
  }
  const defaultPort = scheme === 'https' ? 443 : 80;
  const port = url.port === '' ? defaultPort : Number(url.port);
  if (port === 0) return fail('port must be 1..65535');
  return ok({
    origin: `${scheme}://${url.hostname}:${port}`,
    hostHeader: port === defaultPort ? url.hostname : `${url.hostname}:${port}`,
  });
}

/** `match.host`: a host name, matched case-insensitively against the Host header without its port. */
export function checkRouteHost(raw: string): string | null {
  if (raw.includes(':')) return `must not include a port (${JSON.stringify(raw)}): routes match the host name whatever the port`;
  const host = raw.toLowerCase();
  const labels = host.split('.');
  if (!HOST_CHARS.test(host) || host.length > 253 || !labels.every((label) => HOST_LABEL.test(label))) {
    return 'must be a host name (letters, digits, "-" and "." only; no scheme, path or wildcard)';
  }
  return null;
}

/** `server.host`: an IP address or host name to listen on. */
function checkListenHost(raw: string): string | null {
  if (isIP(raw) !== 0) return null;
  if (raw.includes(':') && !raw.includes('::')) return 'must not include a port; set server.port';
  if (checkRouteHost(raw) === null) return null;
  return 'must be an IP address or host name to listen on';
}

function checkMethod(raw: string): string | null {
  if (METHOD_TOKEN.test(raw)) return null;
  if (METHOD_TOKEN.test(raw.toUpperCase())) {
    return `must be upper-case (${JSON.stringify(raw.toUpperCase())}): HTTP methods are case-sensitive`;
  }
  return 'must be an HTTP method token like "GET"';
}

// Server values a filter reads (rate-limit: trusted proxies, table size).

/** `server.trusted_proxies` entries. */
export function checkCidr(raw: string): string | null {
  const parsed = parseCidr(raw);
  return typeof parsed === 'string' ? parsed : null;
}

export const MAX_RATE_LIMIT_KEYS = 16_777_216;


// ---------------------------------------------------------------------------------------
// The schema. Filters add their route keys and top-level sections (src/filters/index.ts).

const workers = z.custom<number | 'auto'>(
  (value) => value === 'auto' || (Number.isInteger(value) && (value as number) >= 1 && (value as number) <= MAX_WORKERS),
  { error: `must be "auto" or an integer from 1 to ${MAX_WORKERS}` },
);

const limitsSchema = section({
  max_url_bytes: positiveInt.default(8192),
  max_header_bytes: positiveInt.default(16384),
  max_body_bytes: positiveInt.default(10485760),
});

/** `server.escaped_slashes`, `routes[].escaped_slashes` (docs/configuration.md#escaped-slashes). */
const escapedSlashes = z.enum(['reject', 'keep', 'unescape']);

const serverSchema = section({
  host: z.string().superRefine(rule(checkListenHost)).default('0.0.0.0'),
  port: z.number().int().min(1).max(65535).default(8080),
  workers: workers.default('auto'),
  limits: limitsSchema.prefault({}),
  drain_timeout_ms: milliseconds.default(30000),
  // SIGTERM: /readyz fails and the listeners keep serving this long before the drain (main.ts).
  drain_delay_ms: millisecondsOrZero.default(0),
  trusted_proxies: z.array(z.string().superRefine(rule(checkCidr))).default([]),
  rate_limit_keys: z.number().int().min(16).max(MAX_RATE_LIMIT_KEYS).default(DEFAULT_RATE_LIMIT_KEYS),
  escaped_slashes: escapedSlashes.default('reject'),
  // Start even when another process already listens on host:port (the workers always bind
  // with SO_REUSEPORT, so both then share it): only for two instances on purpose.
  reuse_port: z.boolean().default(false),
  // HTTPS listener (src/control/tls-config.ts, docs/configuration.md#servertls).
  tls: tlsSchema.optional(),
  // Overload protection (src/control/breaker-config.ts, docs/resilience.md#overload-protection).
  max_connections: positiveInt.optional(),
  overload: overloadSchema.optional(),
});

const timeoutsSchema = section({
  connect_ms: milliseconds.default(1000),
  response_ms: milliseconds.default(15000),
  idle_ms: milliseconds.default(60000),
});

const serviceSchema = section({
  targets: z
    .array(z.string().superRefine(rule((target) => errorOf(parseTarget(target)))))
    .min(1, { error: 'must list at least one target' })
    .optional(),
  balance: z.enum(['round_robin', 'least_request']).default('round_robin'),
  timeouts: timeoutsSchema.prefault({}),
  connections: positiveInt.default(64),
  pipelining: positiveInt.max(32, { error: 'must be at most 32' }).default(1),
  // For the https:// targets (src/control/tls-config.ts).
  tls: upstreamTlsSchema.optional(),
  // Active health checks and passive outlier ejection (src/control/health-config.ts).
  health_check: healthCheckSchema.optional(),
  outlier: outlierSchema.optional(),
  // Retries and the exchange deadline (src/control/retry-config.ts).
  ...retryServiceKeys,
  // Circuit breaker and last-good fallback (src/control/breaker-config.ts, docs/resilience.md).
  circuit_breaker: circuitBreakerSchema.optional(),
  fallback: fallbackSchema.optional(),
  // A gRPC service (src/grpc/schema.ts, docs/grpc.md): grpc + descriptors instead of targets.
  ...grpcServiceKeys,
}).superRefine((service, ctx) => {
  if ((service.targets === undefined) === (service.grpc === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['targets'], message: service.targets === undefined
      ? 'is required (or grpc: { targets } for a gRPC service)'
      : 'cannot be combined with grpc (a service is either HTTP or gRPC)' });
  }
});

const matchSchema = section({
  prefix: z.string().superRefine(rule((prefix) => errorOf(parsePathPattern(prefix, 'prefix')))).optional(),
  path: z.string().superRefine(rule((path) => errorOf(parsePathPattern(path, 'path')))).optional(),
  host: z.string().superRefine(rule(checkRouteHost)).optional(),
  methods: z
    .array(z.string().superRefine(rule(checkMethod)))
    .min(1, { error: 'must list at least one method (omit methods to allow any method)' })
    .optional(),
  // The API versions the route serves (docs/configuration.md#api-versioning).
  version: versionConstraint.optional(),
});

const routeSchema = section({
  name,
  match: matchSchema,
  // One service, or a weighted split over several (`services`, src/control/traffic-config.ts).
  service: z.string().optional(),
  strip_prefix: z.string().superRefine(rule((prefix) => errorOf(parseStripPrefix(prefix)))).optional(),
  rewrite: z.string().superRefine(rule((rewrite) => errorOf(parseRewrite(rewrite)))).optional(),
  preserve_host: z.boolean().default(false),
  escaped_slashes: escapedSlashes.optional(),
  ...retryRouteKeys,
  // Its own circuit breaker and fallback cache, or none (src/control/breaker-config.ts).
  ...breakerRouteKeys,
  // REST/JSON to gRPC (src/grpc/, docs/grpc.md): the route's service must be a gRPC one.
  transcode: transcodeSchema.optional(),
  // A weighted split (`services`, `sticky`) and request mirroring (docs/traffic-splitting.md).
  ...trafficRouteKeys,
  // WebSocket upgrades relayed to the service (src/control/websocket-config.ts, docs/websocket.md).
  ...websocketRouteKeys,
  ...filterRouteKeys,
});

// Instance settings (admin, redis): read at start only, never shared between instances
// (src/control/config-store.ts LOCAL_KEYS), so their checks concern this process alone.

/** Addresses that only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Shortest admin token accepted: a short secret is guessable. */
export const MIN_ADMIN_TOKEN_LENGTH = 16;

const adminSchema = section({
  host: z.string().superRefine(rule(checkListenHost)).default('127.0.0.1'),
  port: z.number().int().min(1).max(65535).default(9901),
  token: z
    .string()
    .min(MIN_ADMIN_TOKEN_LENGTH, { error: `must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters (a short token is guessable)` })
    .optional(),
  persist: z.boolean().default(false),
}).superRefine((admin, ctx) => {
  if (admin.token === undefined && !isLoopbackHost(admin.host)) {
    ctx.addIssue({
      code: 'custom',
      path: ['host'],
      message: `without admin.token the admin API listens only on a loopback address (127.0.0.1, ::1, localhost); set admin.token to listen on ${admin.host}`,
    });
  }
});

/** `redis.url`: redis://[user:password@]host[:port][/db] or rediss:// for TLS. */
export function checkRedisUrl(raw: string): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'must be a URL like "redis://127.0.0.1:6379"';
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return 'must start with redis:// or rediss://';
  if (url.hostname === '') return 'must name a host';
  if (url.pathname !== '' && url.pathname !== '/' && !/^\/\d+$/.test(url.pathname)) return 'path must be a database number, like /0';
  return null;
}

/** `redis.sentinels[]`, `redis.cluster[]`: "host:port" or "[v6]:port". */
export function checkHostPort(text: string): string | null {
  return parseHostPort(text) === null ? 'must be "host:port", like "10.0.0.7:26379" (an IPv6 address in brackets: "[fd00::7]:26379")' : null;
}

const hostPortList = z
  .array(z.string().superRefine(rule(checkHostPort)))
  .min(1, { error: 'must list at least one "host:port"' });
const credential = z.string().min(1, { error: 'must not be empty (leave the key out for no credential)' });

// One of three topologies (src/shared/redis-endpoint.ts); the keys of the others are refused.
const REDIS_TOPOLOGY_KEYS = ['url', 'sentinels', 'cluster'] as const;

const redisSchema = section({
  url: z.string().superRefine(rule(checkRedisUrl)).optional(),
  sentinels: hostPortList.optional(),
  name: z.string().min(1, { error: 'must not be empty' }).optional(),
  cluster: hostPortList.optional(),
  username: credential.optional(),
  password: credential.optional(),
  sentinel_username: credential.optional(),
  sentinel_password: credential.optional(),
  key_prefix: z.string().default('lobby:'),
  instance_id: name.optional(),
  heartbeat_ms: z.number().int().min(100, { error: 'must be at least 100' }).max(600_000).default(1000),
  rate_limit_sync_ms: z.number().int().min(10, { error: 'must be at least 10' }).max(60_000).default(100),
}).superRefine((redis, ctx) => {
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  const set = REDIS_TOPOLOGY_KEYS.filter((key) => redis[key] !== undefined);
  if (set.length === 0) {
    ctx.addIssue({ code: 'custom', path: [], message: 'needs exactly one of url (one server), sentinels (with name: Redis Sentinel) or cluster (Redis Cluster)' });
    return;
  }
  for (const key of set.slice(1)) issue(key, `cannot be combined with ${set[0]}: set exactly one of url, sentinels or cluster`);
  const topology = set[0];
  if (topology === 'sentinels' && redis.name === undefined) issue('name', 'is required with sentinels: the master group they monitor (`sentinel monitor <name> ...` in their config)');
  if (topology !== 'sentinels') {
    for (const key of ['name', 'sentinel_username', 'sentinel_password'] as const) {
      if (redis[key] !== undefined) issue(key, 'applies only with sentinels');
    }
  }
  if (topology === 'url') {
    for (const key of ['username', 'password'] as const) {
      if (redis[key] !== undefined) issue(key, `with url, put the credentials in the URL (redis://user:password@host:port)`);
    }
  }
  if (topology === 'cluster' && /[{}]/.test(redis.key_prefix)) {
    issue('key_prefix', 'may not contain { or } with cluster: Lobby puts its own hash tags into the key names (docs/configuration.md#redis)');
  }
});

export const configSchema = section({
  server: serverSchema.prefault({}),
  services: z.record(name, serviceSchema).default({}),
  routes: z.array(routeSchema).default([]),
  admin: adminSchema.optional(),
  redis: redisSchema.optional(),
  ...filterSections,
});

/** The config as written, before defaults (what an API client may submit). */
export type RawConfigInput = z.input<typeof configSchema>;
/** The validated config: snake_case as written, defaults filled in. */
export type RawConfig = z.output<typeof configSchema>;
export type RawRoute = RawConfig['routes'][number];
export type RawService = RawConfig['services'][string];

// ---------------------------------------------------------------------------------------
// Messages. zod's defaults ("Invalid input: expected number, received string") are written
// for developers; these are for someone editing YAML.

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
};

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

function messageFor(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is required';
      return `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${describeValue(issue.input)}`;
    case 'too_small':
      if (issue.origin === 'array' || issue.origin === 'string') return 'must not be empty';
      return issue.inclusive ? `must be at least ${issue.minimum}` : `must be greater than ${issue.minimum}`;
    case 'too_big':
      return issue.inclusive ? `must be at most ${issue.maximum}` : `must be less than ${issue.maximum}`;
    case 'invalid_value': {
      const suggestion = typeof issue.input === 'string' ? didYouMean(issue.input, issue.values.map(String)) : '';
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describeValue(issue.input)}${suggestion ? `;${suggestion}` : ''}`;
    }
    case 'invalid_key':
      return `invalid name: ${issue.issues[0]?.message ?? 'not allowed'}`;
    default:
      return undefined;
  }
}

/** A schema issue at its key path; `unknownKey` for a key the mapping does not have. */
export interface SchemaIssue {
  path: KeyPath;
  message: string;
  unknownKey?: true;
}

function toSchemaIssues(issue: z.core.$ZodIssue): SchemaIssue[] {
  const path: KeyPath = issue.path.map((key) => (typeof key === 'symbol' ? String(key) : key));
  // One issue per unknown key, located at the key itself rather than at its parent.
  if (issue.code === 'unrecognized_keys') {
    const allowed = ALLOWED_KEYS.get(issue.message) ?? [];
    return issue.keys.map((key) => {
      const suggestion = didYouMean(key, allowed);
      const message = suggestion === '' ? issue.message : issue.message.replace('unknown key', `unknown key,${suggestion}`);
      return { path: [...path, key], message, unknownKey: true };
    });
  }
  return [{ path, message: issue.message }];
}

/** The schema's verdict on a config value: the config with defaults, or every issue. */
export function parseRawConfig(value: unknown): { ok: true; config: RawConfig } | { ok: false; issues: SchemaIssue[] } {
  const result = configSchema.safeParse(value, { error: messageFor });
  return result.success ? { ok: true, config: result.data } : { ok: false, issues: result.error.issues.flatMap(toSchemaIssues) };
}

/**
 * Validates a config value (parsed YAML, or JSON from an API) against the schema and fills
 * in defaults. Throws ConfigError listing every schema issue (compile.ts validateConfig
 * adds the issues of the rules between values).
 */
export function validateRawConfig(value: unknown, file: string, locate?: LineLocator): RawConfig {
  const result = parseRawConfig(value);
  if (result.ok) return result.config;
  throw new ConfigError(result.issues.map((issue) => issueAt(file, issue.path, issue.message, locate)));
}
