// The compiled shape of the `ext-authz` filter (plain, structured-cloneable): what compile.ts
// makes of the config and filter.ts builds from, in each worker.

/** A cache key attribute, by kind (KEY_KIND); `name` is the lower-case header of a `header:` one. */
export const KEY_KIND = { METHOD: 0, HOST: 1, PATH: 2, QUERY: 3, SUBJECT: 4, HEADER: 5 } as const;
export interface CompiledKeyPart {
  readonly kind: number;
  readonly name: string;
}

export interface CompiledAuthzCache {
  readonly ttlMs: number;
  readonly entries: number;
  readonly key: readonly CompiledKeyPart[];
}

export interface CompiledAuthzService {
  readonly name: string;
  /** scheme://host:port of the service (an undici Pool's origin). */
  readonly origin: string;
  /** The url's path and path_prefix joined, without a trailing `/` ('' for none): put before the request's path. */
  readonly pathPrefix: string;
  readonly timeoutMs: number;
  readonly maxConnections: number;
  readonly statusOnError: number;
  /** Lower-case request header names copied into the check request. */
  readonly allowedHeaders: readonly string[];
  /** Lower-case identity header names (every provider's claims_to_headers): always copied. */
  readonly identityHeaders: readonly string[];
  /** Lower-case names of an allowing answer's headers set on the upstream request. */
  readonly upstreamHeaders: readonly string[];
  /** Lower-case names of a denying answer's headers sent to the client. */
  readonly clientHeaders: readonly string[];
  readonly cache: CompiledAuthzCache | null;
  /** Identifies these settings: a worker keeps one client (pool, cache) per distinct value,
   * across generations and routes. */
  readonly stateKey: string;
}

export interface ExtAuthzFilterConfig {
  readonly service: CompiledAuthzService;
  /** Let the request through (with EXT_AUTHZ_FAILURE_HEADER) when the service fails. */
  readonly failureModeAllow: boolean;
}
