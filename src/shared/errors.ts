// Every error the gateway itself answers with: one table, code → HTTP status + public message.
// docs/errors.md lists the same codes for operators. Bodies are always
// {"error":{"status":S,"code":"...","message":"...","correlation_id":"..."}}.

export interface GatewayErrorSpec {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

function spec(status: number, code: string, message: string): GatewayErrorSpec {
  return { status, code, message };
}

export const GW_ERR = {
  invalid_path: spec(400, 'invalid_path', 'The request path or query is not a valid URI path or query.'),
  invalid_host: spec(400, 'invalid_host', 'The Host header is missing or invalid.'),
  invalid_framing: spec(400, 'invalid_framing', 'Conflicting or unsupported Content-Length / Transfer-Encoding.'),
  invalid_header: spec(400, 'invalid_header', 'A request header is malformed.'),
  route_not_found: spec(404, 'route_not_found', 'No route matches this request.'),
  method_not_allowed: spec(405, 'method_not_allowed', 'The route does not allow this method.'),
  version_not_acceptable: spec(406, 'version_not_acceptable', 'No route serves the API version the Accept header asks for.'),
  unsupported_version: spec(400, 'unsupported_version', 'No route serves the API version the request names.'),
  version_required: spec(400, 'version_required', 'This path is not served in the default API version; name the version in the request.'),
  invalid_auth_request: spec(400, 'invalid_auth_request', 'The request carries more than one Authorization header.'),
  unauthenticated: spec(401, 'unauthenticated', 'A bearer token is required.'),
  invalid_token: spec(401, 'invalid_token', 'The bearer token is invalid.'),
  api_key_required: spec(401, 'api_key_required', 'An API key is required.'),
  invalid_api_key: spec(401, 'invalid_api_key', 'The API key is invalid.'),
  consumer_not_allowed: spec(403, 'consumer_not_allowed', 'The API key\'s consumer is not allowed on this route.'),
  rate_limited: spec(429, 'rate_limited', 'Too many requests; retry after the time in Retry-After.'),
  rate_limit_unavailable: spec(429, 'rate_limit_unavailable', 'The rate limit cannot be checked right now; retry later.'),
  invalid_rate_limit_key: spec(400, 'invalid_rate_limit_key', 'The request carries more than one copy of a header used as a rate-limit key.'),
  ip_denied: spec(403, 'ip_denied', 'Requests from this client address are not allowed on this route.'),
  client_cert_required: spec(403, 'client_cert_required', 'This route requires a verified client certificate.'),
  request_invalid: spec(400, 'request_invalid', 'The request does not match the schema of this route.'),
  waf_blocked: spec(403, 'waf_blocked', 'The request was refused by the web application firewall.'),
  waf_uninspectable: spec(403, 'waf_uninspectable', 'The request body cannot be inspected by the web application firewall (streamed, or past its bounds).'),
  insufficient_scope: spec(403, 'insufficient_scope', 'The bearer token does not grant the scopes this route requires.'),
  // External authorization (src/filters/ext-authz): the status is the service's own denial
  // (ext_authz_denied) or the service's `status_on_error` (the others); 403 is the default.
  ext_authz_denied: spec(403, 'ext_authz_denied', 'The authorization service refused the request.'),
  ext_authz_unavailable: spec(403, 'ext_authz_unavailable', 'The authorization service could not be asked or gave no valid answer; retry later.'),
  ext_authz_timeout: spec(403, 'ext_authz_timeout', 'The authorization service did not answer in time; retry later.'),
  payload_too_large: spec(413, 'payload_too_large', 'The request body exceeds the limit.'),
  uri_too_long: spec(414, 'uri_too_long', 'The request URL exceeds the limit.'),
  request_header_fields_too_large: spec(431, 'request_header_fields_too_large', 'The request headers exceed the limit.'),
  internal_error: spec(500, 'internal_error', 'The gateway failed to handle the request.'),
  upstream_unavailable: spec(502, 'upstream_unavailable', 'The upstream service could not be reached.'),
  upstream_reset: spec(502, 'upstream_reset', 'The upstream service closed the connection.'),
  upstream_bad_response: spec(502, 'upstream_bad_response', 'The upstream service sent an invalid response.'),
  auth_overloaded: spec(503, 'auth_overloaded', 'Too many tokens are waiting for verification; retry later.'),
  upstream_overloaded: spec(503, 'upstream_overloaded', 'Too many requests are waiting for a connection to the upstream service; retry later.'),
  no_healthy_upstream: spec(503, 'no_healthy_upstream', 'No target of the upstream service is healthy; retry later.'),
  upstream_circuit_open: spec(503, 'upstream_circuit_open', 'The upstream service is failing and the gateway stopped sending it requests for a while; retry after the time in Retry-After.'),
  gateway_overloaded: spec(503, 'gateway_overloaded', 'The gateway is overloaded; retry later.'),
  rate_limit_capacity: spec(503, 'rate_limit_capacity', 'The gateway is tracking too many clients; retry later.'),
  auth_unavailable: spec(503, 'auth_unavailable', 'The token cannot be checked right now (its keys or the authorization server are unavailable); retry later.'),
  auth_timeout: spec(503, 'auth_timeout', 'Token verification did not finish in time; retry later.'),
  request_timeout: spec(408, 'request_timeout', 'The request body was not received in time.'),
  upstream_connect_timeout: spec(504, 'upstream_connect_timeout', 'Connecting to the upstream service timed out.'),
  upstream_timeout: spec(504, 'upstream_timeout', 'The upstream service did not answer in time.'),
  deadline_exceeded: spec(504, 'deadline_exceeded', "The request did not complete within the route's deadline."),
  // WebSocket upgrades (src/data/websocket.ts, docs/websocket.md), refused before the upgrade.
  websocket_version_unsupported: spec(426, 'websocket_version_unsupported', 'The WebSocket upgrade asks for a protocol version other than 13.'),
  websocket_origin_forbidden: spec(403, 'websocket_origin_forbidden', 'WebSocket connections from this Origin are not allowed on this route.'),
  websocket_connection_limit: spec(503, 'websocket_connection_limit', 'This route has as many WebSocket connections open as it allows; retry later.'),
  // The status is the upstream's own 4xx/5xx refusal of the upgrade (502 is a stand-in).
  upstream_refused_upgrade: spec(502, 'upstream_refused_upgrade', 'The upstream service refused the WebSocket upgrade.'),
  // The gRPC transcoder's own errors (src/grpc/), answered as google.rpc.Status JSON.
  grpc_method_not_found: spec(404, 'grpc_method_not_found', 'No gRPC method is mapped to this path.'),
  grpc_invalid_request: spec(400, 'grpc_invalid_request', 'The request cannot be transcoded to the gRPC method\'s request message.'),
  grpc_unknown_query_parameter: spec(400, 'grpc_unknown_query_parameter', 'A query parameter names no field of the request message.'),
  grpc_bound_field_conflict: spec(400, 'grpc_bound_field_conflict', 'A query parameter or the body sets a field the path binds.'),
  grpc_descriptors_unavailable: spec(503, 'grpc_descriptors_unavailable', 'The gRPC service descriptors could not be loaded by server reflection; retry later.'),
} as const satisfies Record<string, GatewayErrorSpec>;

export type GatewayErrorName = keyof typeof GW_ERR;

// Specs with a configured status (a rate limit's `status`, an authorization service's
// denial), one per code and status: exchange.ts caches a body prefix per spec object.
const withStatusSpecs = new Map<string, GatewayErrorSpec>();

/** `base` answered with `status` instead (the same object for the same code and status). */
export function withStatus(base: GatewayErrorSpec, status: number): GatewayErrorSpec {
  if (status === base.status) return base;
  const key = `${base.code} ${status}`;
  let spec = withStatusSpecs.get(key);
  if (spec === undefined) {
    spec = { status, code: base.code, message: base.message };
    withStatusSpecs.set(key, spec);
  }
  return spec;
}

/**
 * Codes of upstream failures, as the upstream clients report them (dispatch.ts
 * UpstreamError), and the answer each one gets. Neither client forges the other's codes:
 * undici's errors are mapped to these in one place (upstream/undici-dispatch.ts).
 */
export const UPSTREAM_ERR = {
  /** No connection within connect_ms. */
  connect_timeout: GW_ERR.upstream_connect_timeout,
  /** Connection refused or failed before it was established. */
  connect_failed: GW_ERR.upstream_unavailable,
  /** The connection closed or reset before the response was complete. */
  reset: GW_ERR.upstream_reset,
  /** A reused keep-alive connection closed before any byte of the response: the request
   * was not processed and may be sent again (proxy.ts UpstreamCall resends an idempotent one). */
  stale_connection: GW_ERR.upstream_reset,
  /** The response broke HTTP/1.1 (framing, status outside 100-599, bytes after its end). */
  bad_response: GW_ERR.upstream_bad_response,
  /** Too many requests waiting for a connection to this target. */
  queue_full: GW_ERR.upstream_overloaded,
  /** The target's pool was closed (a reload retired it) before the request was sent. */
  pool_closed: GW_ERR.upstream_unavailable,
  /** The client refused a header (undici's own checks; the gateway checks first). */
  invalid_request: GW_ERR.invalid_header,
  /** The gateway ended the request (client gone, deadline, reply already sent). */
  aborted: GW_ERR.internal_error,
  /** The service's circuit breaker is open (src/data/upstream/breaker.ts): nothing was sent. */
  circuit_open: GW_ERR.upstream_circuit_open,
  /** The service's circuit_breaker max_concurrent or max_pending is reached: nothing was sent. */
  overflow: GW_ERR.upstream_overloaded,
} as const satisfies Record<string, GatewayErrorSpec>;

export type UpstreamErrorCode = keyof typeof UPSTREAM_ERR;
