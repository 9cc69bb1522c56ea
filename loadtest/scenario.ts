// Load-test scenarios are data files (loadtest/scenarios/<name>.yaml or .json) so that later features
// (JWT, rate limits, gRPC, reload under load) add a scenario without touching the harness. This module
// turns the parsed file into a validated Scenario; every error names the key that is wrong.

import { readFileSync, existsSync } from 'node:fs';
import { basename, extname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

/** `lobby-plain`: Lobby on the generated config without the scenario's `lobby` overlay (the plain
 * proxy path), to compare a feature's cost with Lobby itself in the same run. `lobby-ref`: the
 * same config on Lobby built from another commit (--ref / --ref-dir, loadtest/lobby-ref.ts).
 * `fastify` (@fastify/http-proxy, the Node peer) and `haproxy`: further peers next to the nginx baseline. */
export const TARGET_NAMES = ['lobby', 'nginx', 'lobby-plain', 'lobby-ref', 'fastify', 'haproxy'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];
const DEFAULT_TARGETS: TargetName[] = ['lobby', 'nginx'];

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** Leak check: Lobby's RSS is read after each checkpoint (cumulative request counts). */
export interface SoakSpec {
  checkpoints: number[];
  /** Allowed growth of RSS from the first to the last checkpoint, as a fraction (0.10 = 10 %). */
  maxGrowth: number;
}

export interface Scenario {
  name: string;
  description: string;
  /** Concurrent client connections (closed loop: each has one request in flight, times pipelining). */
  connections: number;
  /** Measured window, seconds. */
  durationSec: number;
  /** Unmeasured load before the window (JIT, connection pools, caches), seconds. */
  warmupSec: number;
  method: HttpMethod;
  path: string;
  /** Extra request headers (lower-case names). */
  headers: Record<string, string>;
  /** Size of a generated request body, bytes (0 = none). */
  bodySize: number;
  pipelining: number;
  /** Requests/s for the open-model (constant-rate) mode; null = closed loop. */
  rate: number | null;
  /** Per-request timeout of the driver, seconds. */
  timeoutSec: number;
  /** Keep-alive connections from the proxy to the upstream (Lobby `connections`, nginx `keepalive`). */
  upstreamConnections: number;
  /** Targets measured when --targets is not given. */
  targets: TargetName[];
  /** Merged over the generated Lobby config (objects merge, arrays and scalars replace). */
  lobbyConfig: Record<string, unknown>;
  /** Extra nginx directives placed in the proxying `location /` block. */
  nginxLocationDirectives: string;
  soak: SoakSpec | null;
  /** Start a redis-server for the run (`${redis}` in the lobby overlay); Lobby windows report its command rate. */
  redis: boolean;
  /** Start the gRPC demo bookstore for the run (`${grpc}` = its host:port in the lobby overlay). */
  grpc: boolean;
  /** Start an RFC 7662 introspection endpoint for the run (`${introspection}` = its URL in the lobby overlay; loadtest/introspection-endpoint.ts). */
  introspection: boolean;
  /** Clients speak HTTPS to the proxy (one self-signed certificate made for the run, loadtest/tls.ts). */
  tls: boolean;
  /** Every request on a new connection (the driver sends `Connection: close`): with tls, a handshake per request. */
  newConnectionPerRequest: boolean;
  /** With tls: Lobby requires a client certificate (server.tls.client_auth), nginx too; the driver presents one. */
  clientCert: boolean;
  /** WebSocket echo instead of HTTP requests (loadtest/driver-websocket.ts): each connection upgrades
   * at `path`, then sends a message of `messageBytes` and waits for its echo, in a closed loop; a
   * "request" in the figures is one echoed message. null: HTTP. */
  websocket: WebSocketSpec | null;
}

export interface WebSocketSpec {
  messageBytes: number;
  /** Binary messages (default) or text. */
  binary: boolean;
}

const KNOWN_KEYS = new Set([
  'name', 'description', 'connections', 'duration', 'warmup', 'method', 'path', 'headers', 'bodySize',
  'pipelining', 'rate', 'timeout', 'upstreamConnections', 'targets', 'lobby', 'nginx', 'soak', 'redis',
  'tls', 'newConnectionPerRequest', 'clientCert', 'grpc', 'websocket', 'introspection',
]);

export class ScenarioError extends Error {
  constructor(source: string, key: string, problem: string) {
    super(`${source}: ${key} ${problem}`);
    this.name = 'ScenarioError';
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Validates a parsed scenario document. `source` names the file in messages; `fallbackName` is used
 * when the document has no `name` (the file's base name).
 */
export function parseScenario(raw: unknown, source: string, fallbackName: string): Scenario {
  if (!isPlainObject(raw)) throw new ScenarioError(source, '(document)', 'must be a mapping of keys');
  for (const key of Object.keys(raw)) {
    if (!KNOWN_KEYS.has(key)) {
      throw new ScenarioError(source, key, `is not a scenario key (known: ${[...KNOWN_KEYS].join(', ')})`);
    }
  }

  const positiveInt = (key: string, fallback: number, min = 1): number => {
    const value = raw[key] ?? fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      throw new ScenarioError(source, key, `must be an integer >= ${min} (got ${JSON.stringify(value)})`);
    }
    return value;
  };
  const seconds = (key: string, fallback: number, min: number): number => {
    const value = raw[key] ?? fallback;
    const parsed = typeof value === 'string' ? parseSeconds(value) : value;
    if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed < min) {
      throw new ScenarioError(source, key, `must be a number of seconds >= ${min}, e.g. 10 or "10s" (got ${JSON.stringify(value)})`);
    }
    return parsed;
  };
  const text = (key: string, fallback: string): string => {
    const value = raw[key] ?? fallback;
    if (typeof value !== 'string') throw new ScenarioError(source, key, 'must be a string');
    return value;
  };

  const name = text('name', fallbackName);
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new ScenarioError(source, 'name', 'may only contain letters, digits, ".", "_" and "-" (it names result files)');

  const method = text('method', 'GET').toUpperCase();
  if (!(HTTP_METHODS as readonly string[]).includes(method)) {
    throw new ScenarioError(source, 'method', `must be one of ${HTTP_METHODS.join(', ')}`);
  }
  const path = text('path', '/');
  if (!path.startsWith('/') || /[\s\x00-\x1f\x7f]/.test(path)) {
    throw new ScenarioError(source, 'path', 'must start with "/" and contain no spaces or control characters');
  }

  const headers: Record<string, string> = {};
  const rawHeaders = raw['headers'] ?? {};
  if (!isPlainObject(rawHeaders)) throw new ScenarioError(source, 'headers', 'must be a mapping of header name to value');
  for (const [headerName, headerValue] of Object.entries(rawHeaders)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(headerName)) {
      throw new ScenarioError(source, `headers.${headerName}`, 'is not a valid header name');
    }
    if (typeof headerValue !== 'string' && typeof headerValue !== 'number') {
      throw new ScenarioError(source, `headers.${headerName}`, 'must be a string');
    }
    const value = String(headerValue);
    if (/[\r\n\x00]/.test(value)) throw new ScenarioError(source, `headers.${headerName}`, 'must not contain CR, LF or NUL');
    headers[headerName.toLowerCase()] = value;
  }
  for (const framing of ['content-length', 'transfer-encoding', 'connection', 'host']) {
    if (framing in headers) throw new ScenarioError(source, `headers.${framing}`, 'is set by the driver; remove it');
  }

  const bodySize = positiveInt('bodySize', 0, 0);
  if (bodySize > 0 && (method === 'GET' || method === 'HEAD')) {
    throw new ScenarioError(source, 'bodySize', `must be 0 for ${method} requests`);
  }

  const rateValue = raw['rate'] ?? null;
  let rate: number | null = null;
  if (rateValue !== null) {
    if (typeof rateValue !== 'number' || !Number.isFinite(rateValue) || rateValue <= 0) {
      throw new ScenarioError(source, 'rate', 'must be a positive number of requests per second, or null');
    }
    rate = rateValue;
  }

  const targetsValue = raw['targets'] ?? [...DEFAULT_TARGETS];
  if (!Array.isArray(targetsValue) || targetsValue.length === 0) {
    throw new ScenarioError(source, 'targets', `must be a non-empty list of ${TARGET_NAMES.join(', ')}`);
  }
  const targets = targetsValue.map((target, index) => {
    if (!(TARGET_NAMES as readonly unknown[]).includes(target)) {
      throw new ScenarioError(source, `targets[${index}]`, `must be one of ${TARGET_NAMES.join(', ')}`);
    }
    return target as TargetName;
  });

  const lobbyConfig = raw['lobby'] ?? {};
  if (!isPlainObject(lobbyConfig)) throw new ScenarioError(source, 'lobby', 'must be a mapping (merged over the generated Lobby config)');

  const nginxSection = raw['nginx'] ?? {};
  if (!isPlainObject(nginxSection)) throw new ScenarioError(source, 'nginx', 'must be a mapping');
  for (const key of Object.keys(nginxSection)) {
    if (key !== 'location') throw new ScenarioError(source, `nginx.${key}`, 'is not known (known: location)');
  }
  const nginxLocationDirectives = nginxSection['location'] ?? '';
  if (typeof nginxLocationDirectives !== 'string') throw new ScenarioError(source, 'nginx.location', 'must be a string of nginx directives');

  const soak = parseSoak(raw['soak'], source);
  const redis = raw['redis'] ?? false;
  if (typeof redis !== 'boolean') throw new ScenarioError(source, 'redis', 'must be true or false');
  const pipelining = positiveInt('pipelining', 1);
  const connections = positiveInt('connections', 64);
  const flag = (key: string): boolean => {
    const value = raw[key] ?? false;
    if (typeof value !== 'boolean') throw new ScenarioError(source, key, 'must be true or false');
    return value;
  };
  const tls = flag('tls');
  const newConnectionPerRequest = flag('newConnectionPerRequest');
  const clientCert = flag('clientCert');
  if (clientCert && !tls) throw new ScenarioError(source, 'clientCert', 'needs tls: true');
  if (newConnectionPerRequest && pipelining > 1) throw new ScenarioError(source, 'newConnectionPerRequest', 'cannot be combined with pipelining');
  const tlsTargets = ['lobby', 'lobby-plain', 'lobby-ref', 'nginx'];
  if (tls) {
    targets.forEach((target, index) => {
      if (!tlsTargets.includes(target)) throw new ScenarioError(source, `targets[${index}]`, `${target} has no HTTPS setup in the harness (tls: true measures ${tlsTargets.join(', ')})`);
    });
  }
  if (newConnectionPerRequest) headers.connection = 'close';
  const websocket = parseWebSocket(raw['websocket'], source);
  if (websocket !== null) {
    const conflict = method !== 'GET' ? 'method' : bodySize > 0 ? 'bodySize' : pipelining > 1 ? 'pipelining' : rate !== null ? 'rate'
      : tls ? 'tls' : newConnectionPerRequest ? 'newConnectionPerRequest' : soak !== null ? 'soak' : null;
    if (conflict !== null) throw new ScenarioError(source, conflict, 'cannot be combined with websocket (a closed loop of echoed messages on upgraded connections)');
  }

  return {
    name,
    description: text('description', ''),
    connections,
    durationSec: seconds('duration', 10, 0.5),
    warmupSec: seconds('warmup', 3, 0),
    method: method as HttpMethod,
    path,
    headers,
    bodySize,
    pipelining,
    rate,
    timeoutSec: seconds('timeout', 10, 0.1),
    upstreamConnections: positiveInt('upstreamConnections', 64),
    targets,
    lobbyConfig,
    nginxLocationDirectives,
    soak,
    redis,
    grpc: flag('grpc'),
    introspection: flag('introspection'),
    tls,
    newConnectionPerRequest,
    clientCert,
    websocket,
  };
}

function parseWebSocket(value: unknown, source: string): WebSocketSpec | null {
  if (value === undefined || value === null || value === false) return null;
  if (value === true) return { messageBytes: 64, binary: true };
  if (!isPlainObject(value)) throw new ScenarioError(source, 'websocket', 'must be true or a mapping with messageBytes and binary');
  for (const key of Object.keys(value)) {
    if (key !== 'messageBytes' && key !== 'binary') throw new ScenarioError(source, `websocket.${key}`, 'is not known (known: messageBytes, binary)');
  }
  const messageBytes = value['messageBytes'] ?? 64;
  if (typeof messageBytes !== 'number' || !Number.isInteger(messageBytes) || messageBytes < 1 || messageBytes > 1048576) {
    throw new ScenarioError(source, 'websocket.messageBytes', 'must be an integer from 1 to 1048576');
  }
  const binary = value['binary'] ?? true;
  if (typeof binary !== 'boolean') throw new ScenarioError(source, 'websocket.binary', 'must be true or false');
  return { messageBytes, binary };
}

function parseSoak(value: unknown, source: string): SoakSpec | null {
  if (value === undefined || value === null) return null;
  if (!isPlainObject(value)) throw new ScenarioError(source, 'soak', 'must be a mapping with checkpoints and maxGrowth');
  for (const key of Object.keys(value)) {
    if (key !== 'checkpoints' && key !== 'maxGrowth') throw new ScenarioError(source, `soak.${key}`, 'is not known (known: checkpoints, maxGrowth)');
  }
  const checkpoints = value['checkpoints'];
  if (!Array.isArray(checkpoints) || checkpoints.length < 2) {
    throw new ScenarioError(source, 'soak.checkpoints', 'must list at least two cumulative request counts, e.g. [200000, 2000000]');
  }
  let previous = 0;
  checkpoints.forEach((checkpoint, index) => {
    if (typeof checkpoint !== 'number' || !Number.isInteger(checkpoint) || checkpoint <= previous) {
      throw new ScenarioError(source, `soak.checkpoints[${index}]`, 'must be an integer larger than the previous checkpoint');
    }
    previous = checkpoint;
  });
  const maxGrowth = value['maxGrowth'] ?? 0.1;
  if (typeof maxGrowth !== 'number' || !(maxGrowth >= 0)) throw new ScenarioError(source, 'soak.maxGrowth', 'must be a fraction >= 0, e.g. 0.1');
  return { checkpoints: checkpoints as number[], maxGrowth };
}

/** "10", "10s", "1.5s", "2m" → seconds; NaN when malformed. */
export function parseSeconds(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(text);
  if (!match) return Number.NaN;
  const amount = Number(match[1]);
  switch (match[2]) {
    case 'ms': return amount / 1000;
    case 'm': return amount * 60;
    default: return amount;
  }
}

/** Directory holding the shipped scenarios (source tree; tsc does not copy data files into dist/). */
export const SCENARIO_DIR = fileURLToPath(new URL('../../loadtest/scenarios/', import.meta.url));

/** Resolves `--scenario` (a shipped name like `proxy`, or a path to a .yaml/.json file) to a file. */
export function resolveScenarioFile(nameOrPath: string, scenarioDir = SCENARIO_DIR): string {
  if (nameOrPath.includes('/') || /\.(ya?ml|json)$/.test(nameOrPath)) {
    const file = resolve(nameOrPath);
    if (!existsSync(file)) throw new Error(`scenario file not found: ${file}`);
    return file;
  }
  for (const extension of ['.yaml', '.yml', '.json']) {
    const file = resolve(scenarioDir, nameOrPath + extension);
    if (existsSync(file)) return file;
  }
  throw new Error(`unknown scenario "${nameOrPath}": no ${nameOrPath}.yaml or .json in ${scenarioDir}`);
}

export function loadScenario(nameOrPath: string, scenarioDir = SCENARIO_DIR): Scenario {
  const file = resolveScenarioFile(nameOrPath, scenarioDir);
  const text = readFileSync(file, 'utf8');
  // YAML 1.2 is a superset of JSON, so one parser covers both formats.
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new Error(`${file}: ${(error as Error).message}`);
  }
  return parseScenario(raw, file, basename(file, extname(file)));
}
