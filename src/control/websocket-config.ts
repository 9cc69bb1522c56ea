// The `websocket` key of a route (docs/websocket.md, docs/configuration.md#websocket): the
// schema fragment, and its compilation into the policy a worker's relay reads
// (src/data/websocket.ts), defaults filled in.
import { z } from 'zod';
import { positiveInt, rule, section } from './schema-kit.js';
import { checkOrigin } from '../filters/cors/schema.js';
import { WS_BUFFER_CEILING, WS_DEFAULTS, WS_MESSAGE_CEILING, type CompiledWebSocket } from '../shared/websocket-config.js';

/** Longest idle_timeout_s: the idle deadline is a timer (Node's longest is about 24.8 days). */
const MAX_IDLE_S = 2_147_483;

/** An `origins` entry: one exact origin (the cors filter's syntax, without its wildcards). */
function checkExactOrigin(raw: string): string | null {
  if (raw === '*') return '"*" allows every origin: omit origins to allow any';
  if (raw.includes('*')) return 'wildcards are not allowed here: list each origin (scheme://host[:port])';
  return checkOrigin(raw);
}

const websocketPolicy = section({
  max_message_bytes: positiveInt.max(WS_MESSAGE_CEILING, { error: `must be at most ${WS_MESSAGE_CEILING} (16 MiB)` }).optional(),
  max_buffered_bytes: positiveInt.max(WS_BUFFER_CEILING, { error: `must be at most ${WS_BUFFER_CEILING} (256 MiB)` }).optional(),
  idle_timeout_s: z.number().int().min(0).max(MAX_IDLE_S).optional(),
  max_connections: positiveInt.optional(),
  origins: z.array(z.string().superRefine(rule(checkExactOrigin))).min(1, { error: 'must list at least one origin (omit origins to allow any)' }).optional(),
});

export type RawWebSocket = z.output<typeof websocketPolicy>;

/** Keys of a route (config-schema.ts routeSchema spreads them). */
export const websocketRouteKeys = {
  // `true`: accept WebSocket upgrades with the defaults; a mapping: with these limits.
  websocket: z.union([z.boolean(), websocketPolicy]).optional(),
};

type KeyPath = (string | number)[];
type Report = (path: KeyPath, message: string) => void;

/** What the rules between values read of the route and its service. */
interface RouteIn {
  websocket?: boolean | RawWebSocket;
  transcode?: unknown;
}

/**
 * The route's WebSocket policy (null: the route takes no upgrades). `methodMask` is the route's
 * compiled match.methods, `getBit` the bit of GET (an upgrade is a GET), `grpc` whether its
 * service is a gRPC one. `at` is the route's key path.
 */
export function compileRouteWebSocket(
  route: RouteIn, grpc: boolean, methodMask: number, getBit: number, at: KeyPath, report: Report,
): CompiledWebSocket | null {
  const raw = route.websocket;
  if (raw === undefined || raw === false) return null;
  const policy: RawWebSocket = raw === true ? {} : raw;
  const key = [...at, 'websocket'];
  if (grpc) report(key, 'needs an HTTP service: a gRPC service (grpc:) cannot take WebSocket connections');
  if (route.transcode !== undefined) report(key, 'cannot be combined with transcode');
  if ((methodMask & getBit) === 0) report(key, 'a WebSocket upgrade is a GET request, and match.methods does not allow GET');
  const maxMessageBytes = policy.max_message_bytes ?? WS_DEFAULTS.maxMessageBytes;
  return {
    maxMessageBytes,
    maxBufferedBytes: policy.max_buffered_bytes ?? WS_DEFAULTS.maxBufferedBytes,
    idleMs: (policy.idle_timeout_s ?? WS_DEFAULTS.idleTimeoutS) * 1000,
    maxConnections: policy.max_connections ?? 0,
    origins: policy.origins === undefined ? null : [...new Set(policy.origins.map((o) => o.toLowerCase()))],
  };
}
