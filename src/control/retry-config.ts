// The `retry` and `deadline_ms` keys of a service and of a route (docs/configuration.md#retries,
// docs/resilience.md#retries): the schema fragments, and their compilation into one resolved
// policy per route (the route's keys over its service's over the defaults), so a worker
// builds each route's policy once and a request reads it without any lookup.
import { z } from 'zod';
import { HEADER_NAME_TOKEN, MAX_TIMER_MS, milliseconds, positiveInt, section } from './schema-kit.js';
import { methodMask } from '../shared/methods.js';
import type { CompiledDeadline, CompiledRetry } from '../shared/compiled-config.js';

/** What a try can fail with that a retry may answer (a status code is written as a number). */
export const RETRY_CONDITIONS = ['connect_failure', 'reset', 'timeout'] as const;
export type RetryCondition = (typeof RETRY_CONDITIONS)[number];

/** The gRPC statuses a try of a gRPC service may be retried on (Envoy's gRPC `retry_on`
 * names): the others say the request itself is wrong, and a resend gets the same answer. */
export const GRPC_RETRY_CODES = { cancelled: 1, deadline_exceeded: 4, resource_exhausted: 8, internal: 13, unavailable: 14 } as const;
export type GrpcRetryCode = keyof typeof GRPC_RETRY_CODES;
const GRPC_CODE_NAMES = Object.keys(GRPC_RETRY_CODES) as GrpcRetryCode[];
/** A gRPC service's conditions: its statuses, and `timeout` (connect failures and resets
 * reach the gateway as UNAVAILABLE from the gRPC client, src/grpc/client.ts). */
const GRPC_DEFAULT_ON: GrpcRetryCode[] = ['unavailable'];

/** The methods a retry may repeat once a request reached the upstream: the idempotent ones. */
const IDEMPOTENT_METHODS = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'];

export const RETRY_DEFAULTS = {
  attempts: 2,
  on: ['connect_failure', 'reset', 502, 503, 504] as (RetryCondition | number)[],
  methods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'],
  backoffBaseMs: 25,
  backoffMaxMs: 250,
  budgetPercent: 20,
  budgetMinRetries: 3,
} as const;
export const DEFAULT_DEADLINE_HEADER = 'x-request-deadline-ms';

const retrySchema = section({
  // Sends in all, the first included (1 = no retry).
  attempts: positiveInt.max(10, { error: 'must be at most 10' }).optional(),
  on: z.array(z.union([
    z.enum(RETRY_CONDITIONS),
    z.enum(GRPC_CODE_NAMES),
    z.number().int().min(500, { error: 'a retried status must be a 5xx (500-599)' }).max(599, { error: 'a retried status must be a 5xx (500-599)' }),
  ], { error: `must be one of ${RETRY_CONDITIONS.join(', ')} or a status code 500-599 (HTTP services), or one of ${GRPC_CODE_NAMES.join(', ')}, timeout (gRPC services)` })).optional(),
  methods: z.array(z.string().refine((m) => IDEMPOTENT_METHODS.includes(m), {
    error: `must be an idempotent method (${IDEMPOTENT_METHODS.join(', ')}): a retried POST or PATCH may be processed twice`,
  })).optional(),
  backoff_ms: section({
    base: z.number().int().min(0).max(MAX_TIMER_MS).optional(),
    max: z.number().int().min(0).max(MAX_TIMER_MS).optional(),
  }).superRefine((b, ctx) => {
    const base = b.base ?? RETRY_DEFAULTS.backoffBaseMs;
    if (b.max !== undefined && b.max < base) ctx.addIssue({ code: 'custom', path: ['max'], message: maxBelowBase(b.max, base) });
  }).optional(),
  budget_percent: z.number().min(0).max(100).optional(),
  budget_min_retries: z.number().int().min(0).max(1_000_000).optional(),
  per_try_timeout_ms: milliseconds.optional(),
});

export type RawRetry = z.output<typeof retrySchema>;

const deadlineHeader = z.union([
  z.string().regex(HEADER_NAME_TOKEN, 'must be a header name (RFC 9110 token characters)'),
  z.literal(false),
]);

/** Keys of a service (config-schema.ts serviceSchema spreads them). */
export const retryServiceKeys = {
  retry: retrySchema.optional(),
  // The whole exchange, from routing to the last response byte, retries included.
  deadline_ms: milliseconds.optional(),
  // Where the time left goes upstream; false sends none.
  deadline_header: deadlineHeader.optional(),
};

/** Keys of a route (config-schema.ts routeSchema spreads them): override the service's. */
export const retryRouteKeys = {
  retry: z.union([retrySchema, z.literal(false)], {
    error: (issue) => (issue.code === 'invalid_union' ? 'must be a mapping of retry keys (merged over the service\'s), or false (no retries on this route)' : undefined),
  }).optional(),
  deadline_ms: z.union([milliseconds, z.literal(false)], {
    error: (issue) => (issue.code === 'invalid_union' ? 'must be a number of milliseconds (the route\'s own deadline), or false (none on this route)' : undefined),
  }).optional(),
};

function maxBelowBase(max: number, base: number): string {
  return `max ${max} is below base ${base} (max bounds every delay)`;
}

type KeyPath = (string | number)[];
type Report = (path: KeyPath, message: string) => void;

interface ServiceKeys { retry?: RawRetry; deadline_ms?: number; deadline_header?: string | false; grpc?: unknown }

/**
 * What of `on` does not fit the service's kind, reported at `at` (the `on` key): an HTTP service
 * retries on client errors and HTTP statuses, a gRPC service on gRPC statuses. Called for the
 * service's own `on` and for each route's.
 */
export function checkRetryOn(on: RawRetry['on'], grpc: boolean, at: KeyPath, report: Report): void {
  on?.forEach((c, i) => {
    const isGrpcCode = typeof c === 'string' && c in GRPC_RETRY_CODES;
    if (grpc && !isGrpcCode && c !== 'timeout') {
      report([...at, i], `${JSON.stringify(c)} is for HTTP services; a gRPC service retries on ${GRPC_CODE_NAMES.join(', ')} or timeout (the gRPC client reports a connect failure or a refused stream as unavailable)`);
    } else if (!grpc && isGrpcCode) {
      report([...at, i], `${JSON.stringify(c)} is a gRPC status, for gRPC services; an HTTP service retries on ${RETRY_CONDITIONS.join(', ')} or a 5xx status`);
    }
  });
}
interface RouteKeys { retry?: RawRetry | false; deadline_ms?: number | false }

/**
 * The route's resolved retry policy and deadline (null: none), its keys over its service's.
 * `at` is the route's key path, for messages.
 */
export function compileRouteResilience(
  route: RouteKeys, service: ServiceKeys, at: KeyPath, report: Report,
): { retry: CompiledRetry | null; deadline: CompiledDeadline | null } {
  let retry: CompiledRetry | null = null;
  if (route.retry !== false && (route.retry !== undefined || service.retry !== undefined)) {
    const s = service.retry ?? {};
    const r = route.retry ?? {};
    const base = r.backoff_ms?.base ?? s.backoff_ms?.base ?? RETRY_DEFAULTS.backoffBaseMs;
    const max = r.backoff_ms?.max ?? s.backoff_ms?.max ?? RETRY_DEFAULTS.backoffMaxMs;
    // One side from the route, the other from its service (each alone was checked by the schema).
    if (max < base && r.backoff_ms !== undefined) report([...at, 'retry', 'backoff_ms'], maxBelowBase(max, base));
    const grpc = service.grpc !== undefined;
    if (route.retry !== undefined) checkRetryOn(r.on, grpc, [...at, 'retry', 'on'], report);
    const on = r.on ?? s.on ?? (grpc ? GRPC_DEFAULT_ON : RETRY_DEFAULTS.on);
    const attempts = r.attempts ?? s.attempts ?? RETRY_DEFAULTS.attempts;
    let grpcCodes = 0;
    for (const c of on) if (typeof c === 'string' && c in GRPC_RETRY_CODES) grpcCodes |= 1 << GRPC_RETRY_CODES[c as GrpcRetryCode];
    retry = {
      attempts,
      onConnectFailure: on.includes('connect_failure'),
      onReset: on.includes('reset'),
      onTimeout: on.includes('timeout'),
      statuses: [...new Set(on.filter((c): c is number => typeof c === 'number'))].sort((a, b) => a - b),
      grpcCodes,
      methodMask: methodMask(r.methods ?? s.methods ?? RETRY_DEFAULTS.methods),
      backoffBaseMs: base,
      backoffMaxMs: max,
      budgetPercent: r.budget_percent ?? s.budget_percent ?? RETRY_DEFAULTS.budgetPercent,
      budgetMinRetries: r.budget_min_retries ?? s.budget_min_retries ?? RETRY_DEFAULTS.budgetMinRetries,
      perTryTimeoutMs: r.per_try_timeout_ms ?? s.per_try_timeout_ms ?? 0,
    };
    if (attempts === 1 && retry.perTryTimeoutMs === 0) retry = null; // nothing left to do
  }
  const ms = route.deadline_ms === false ? 0 : route.deadline_ms ?? service.deadline_ms ?? 0;
  const header = service.deadline_header === false ? '' : (service.deadline_header ?? DEFAULT_DEADLINE_HEADER).toLowerCase();
  return { retry, deadline: ms > 0 ? { ms, header } : null };
}
