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
  BAD_PATH: spec(400, 'invalid_path', 'The request path or query is not a valid URI path or query.'),
  // Same code (clients need not tell the two apart); the message says it is the escaped_slashes policy.
  ESCAPED_SLASH: spec(400, 'invalid_path', 'The request path contains an encoded slash (%2F or %5C) that this route does not accept.'),
  BAD_HOST: spec(400, 'invalid_host', 'The Host header is missing or invalid.'),
  BAD_FRAMING: spec(400, 'invalid_framing', 'Conflicting or unsupported Content-Length / Transfer-Encoding.'),
  BAD_HEADER: spec(400, 'invalid_header', 'A request header is malformed.'),
  ROUTE_NOT_FOUND: spec(404, 'route_not_found', 'No route matches this request.'),
  METHOD_NOT_ALLOWED: spec(405, 'method_not_allowed', 'The route does not allow this method.'),
  AUTH_BAD_REQUEST: spec(400, 'invalid_auth_request', 'The request carries more than one Authorization header.'),
  UNAUTHENTICATED: spec(401, 'unauthenticated', 'A bearer token is required.'),
  INVALID_TOKEN: spec(401, 'invalid_token', 'The bearer token is invalid.'),
  RATE_LIMITED: spec(429, 'rate_limited', 'Too many requests; retry after the time in Retry-After.'),
  RATE_LIMIT_UNAVAILABLE: spec(429, 'rate_limit_unavailable', 'The rate limit cannot be checked right now; retry later.'),
  RATE_LIMIT_KEY_DUPLICATE: spec(400, 'invalid_rate_limit_key', 'The request carries more than one copy of a header used as a rate-limit key.'),
  INSUFFICIENT_SCOPE: spec(403, 'insufficient_scope', 'The bearer token does not grant the scopes this route requires.'),
  BODY_TOO_LARGE: spec(413, 'payload_too_large', 'The request body exceeds the limit.'),
  URL_TOO_LONG: spec(414, 'uri_too_long', 'The request URL exceeds the limit.'),
  HEADERS_TOO_LARGE: spec(431, 'request_header_fields_too_large', 'The request headers exceed the limit.'),
  INTERNAL: spec(500, 'internal_error', 'The gateway failed to handle the request.'),
  UPSTREAM_UNAVAILABLE: spec(502, 'upstream_unavailable', 'The upstream service could not be reached.'),
  UPSTREAM_RESET: spec(502, 'upstream_reset', 'The upstream service closed the connection.'),
  UPSTREAM_BAD_RESPONSE: spec(502, 'upstream_bad_response', 'The upstream service sent an invalid response.'),
  OVERLOADED: spec(503, 'overloaded', 'The gateway is overloaded; retry later.'),
  RATE_LIMIT_CAPACITY: spec(503, 'rate_limit_capacity', 'The gateway is tracking too many clients; retry later.'),
  AUTH_UNAVAILABLE: spec(503, 'auth_unavailable', 'The keys to verify the token are not available; retry later.'),
  AUTH_TIMEOUT: spec(503, 'auth_timeout', 'Token verification did not finish in time; retry later.'),
  REQUEST_TIMEOUT: spec(408, 'request_timeout', 'The request body was not received in time.'),
  UPSTREAM_CONNECT_TIMEOUT: spec(504, 'upstream_connect_timeout', 'Connecting to the upstream service timed out.'),
  UPSTREAM_TIMEOUT: spec(504, 'upstream_timeout', 'The upstream service did not answer in time.'),
} as const satisfies Record<string, GatewayErrorSpec>;

export type GatewayErrorName = keyof typeof GW_ERR;
