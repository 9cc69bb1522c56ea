// Compiled consumers and API keys (src/filters/key-auth/compile.ts → every worker's consumer
// table, src/filters/key-auth/consumer-table.ts). Plain, structured-cloneable data, except the
// key digests: one SharedArrayBuffer, so 100,000 keys cross to each worker without a copy.

/** Bytes of a SHA-256 digest: the one key hash the config takes (`sha256:<hex or base64url>`). */
export const KEY_DIGEST_BYTES = 32;

/** A consumer's own rate (`consumers[].rate_limit`): replaces the rate of the limits keyed by `consumer`. */
export interface CompiledConsumerRate {
  ratePerMs: number;
  burst: number;
}

export interface CompiledConsumer {
  name: string;
  /** Injected upstream as flat [name, value, ...]: lower-case names, values as byte strings (checked). */
  headers: string[];
  /** Route names the consumer may use; null: every route with key_auth. */
  routes: string[] | null;
  rate: CompiledConsumerRate | null;
}

/** CompiledConfig.consumers: every consumer and every key, one table for the instance. */
export interface CompiledConsumers {
  /** Hash of the whole table: a worker keeps its lookup map across generations while it is unchanged. */
  version: string;
  consumers: CompiledConsumer[];
  /** Key count; digests of key k at [k * 32, k * 32 + 32) of `digests`. */
  keyCount: number;
  digests: SharedArrayBuffer;
  /** Per key: index into `consumers`. */
  keyConsumer: Int32Array;
  /** Per key: 1 when disabled (`keys[].disabled`): such a key is refused like an unknown one. */
  keyDisabled: Uint8Array;
}

/** The config of one route's `key-auth` filter. */
export interface KeyAuthFilterConfig {
  /** The route's name, for the consumers' `routes` allow-lists. */
  route: string;
  /** Lower-case header the key is read from. */
  header: string;
  /** Query parameter the key may come in instead, or null. */
  query: string | null;
  /** Leave the key in the forwarded request (default: removed). */
  forwardKey: boolean;
  /** A request without a key goes on, with no consumer. */
  optional: boolean;
  /** Headers removed from every request before the consumer's are added (consumer metadata,
   * and JWT identity headers on a route without auth), lower case. */
  stripHeaders: string[];
}
