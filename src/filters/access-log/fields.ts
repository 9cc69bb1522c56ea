// The access log's field names and its stdout destination name: shared by the schema (control
// plane) and the line writer (data plane) without bringing zod into the workers.

/** Every field a line can carry besides pino's own (level, time, pid, hostname, worker, msg),
 * in the order they are written. docs/observability.md#access-log-fields describes each. */
export const ACCESS_LOG_FIELDS = [
  'correlation_id', 'trace_id', 'method', 'path', 'route', 'service', 'api_version', 'target', 'status',
  'bytes_in', 'bytes_out', 'duration_ms', 'upstream_connect_ms', 'upstream_first_byte_ms', 'upstream_ms',
  'gateway_ms', 'client_ip', 'subject', 'rate_limit', 'flags', 'retries', 'error_code', 'waf', 'websocket',
] as const;
export type AccessLogField = (typeof ACCESS_LOG_FIELDS)[number];

/** `path: stdout`: the worker's standard output instead of a file. */
export const STDOUT = 'stdout';
