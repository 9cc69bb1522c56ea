// The `access-log` filter's part of the config schema: the top-level `access_log` section (the
// default for every route, and the line of requests that match no route) and `routes[].access_log`
// (overrides it key by key for one route).
import { z } from 'zod';
import { section } from '../../control/schema-kit.js';

/** Every field a line can carry besides pino's own (level, time, pid, hostname, worker, msg),
 * in the order they are written. docs/observability.md#access-log-fields describes each. */
export const ACCESS_LOG_FIELDS = [
  'correlation_id', 'trace_id', 'method', 'path', 'route', 'service', 'target', 'status',
  'bytes_in', 'bytes_out', 'duration_ms', 'upstream_connect_ms', 'upstream_first_byte_ms', 'upstream_ms',
  'gateway_ms', 'client_ip', 'subject', 'rate_limit', 'flags', 'error_code', 'waf',
] as const;
export type AccessLogField = (typeof ACCESS_LOG_FIELDS)[number];

const fields = z.array(z.enum(ACCESS_LOG_FIELDS)).min(1, { error: 'must list at least one field (omit fields for all)' });
const sample = z.number().min(0).max(1);
/** `stdout`, or a file (relative to the config file's folder); opened for appending. */
const path = z.string().min(1);

export const accessLogSection = section({
  enabled: z.boolean().default(true),
  path: path.default('stdout'),
  sample: sample.default(1),
  only_errors: z.boolean().default(false),
  fields: fields.optional(),
});

export const accessLogRoute = section({
  enabled: z.boolean().optional(),
  path: path.optional(),
  sample: sample.optional(),
  only_errors: z.boolean().optional(),
  fields: fields.optional(),
});

export type RawAccessLog = z.output<typeof accessLogSection>;
export type RawRouteAccessLog = z.output<typeof accessLogRoute>;

export const accessLogRouteKeys = { access_log: accessLogRoute.optional() };
export const accessLogSections = { access_log: accessLogSection.optional() };
