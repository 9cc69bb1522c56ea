// A worker's lookup table of the instance's API keys (CompiledConfig.consumers), built once per
// consumer-table version per worker (a reload that leaves the consumers alone keeps it), never
// per route or per request: a Map from a key's SHA-256 digest to the key, so finding a key
// costs one hash and one Map lookup for 10 keys and for 100,000 (native-bench/key-auth.bench.ts).
import { hash } from 'node:crypto';
import { KEY_DIGEST_BYTES, type CompiledConsumerRate, type CompiledConsumers } from '../../shared/consumer-config.js';

export interface RuntimeConsumer {
  readonly name: string;
  readonly headers: readonly string[];
  /** Routes the consumer may use; null: all. */
  readonly routes: ReadonlySet<string> | null;
  /** Its own rate for the limits keyed by consumer (with X-RateLimit-Limit's text), or null. */
  readonly rate: (CompiledConsumerRate & { readonly burstText: string }) | null;
}

/** What a presented key resolved to. */
export const KEY_UNKNOWN = 0;
export const KEY_DISABLED = 1;

export class ConsumerTable {
  readonly version: string;
  readonly consumers: readonly RuntimeConsumer[];
  private readonly byDigest: Map<string, number>;
  private readonly digests: Buffer;
  private readonly keyConsumer: Int32Array;
  private readonly keyDisabled: Uint8Array;

  constructor(compiled: CompiledConsumers) {
    this.version = compiled.version;
    this.consumers = compiled.consumers.map((c) => ({
      name: c.name,
      headers: c.headers,
      routes: c.routes === null ? null : new Set(c.routes),
      rate: c.rate === null ? null : { ...c.rate, burstText: String(c.rate.burst) },
    }));
    this.digests = Buffer.from(compiled.digests);
    this.keyConsumer = compiled.keyConsumer;
    this.keyDisabled = compiled.keyDisabled;
    this.byDigest = new Map();
    for (let k = 0; k < compiled.keyCount; k++) {
      const at = k * KEY_DIGEST_BYTES;
      this.byDigest.set(this.digests.toString('latin1', at, at + KEY_DIGEST_BYTES), k);
    }
  }

  get size(): number {
    return this.byDigest.size;
  }

  /**
   * The consumer of `key`, or KEY_UNKNOWN / KEY_DISABLED. The Map lookup's timing can only tell
   * about the digest of what was sent, which gives an attacker nothing to learn a key from;
   * the digests are then compared in constant time all the same (digestsEqual), so no
   * comparison of key material ever depends on where it differs.
   */
  lookup(key: string | Buffer): RuntimeConsumer | typeof KEY_UNKNOWN | typeof KEY_DISABLED {
    // The digest as a latin1 ('binary') string is the Map's key directly: 0.24 µs, where a
    // Buffer digest made into a string costs 0.7 µs (native-bench/key-auth.bench.ts).
    const digest = hash('sha256', key, 'binary');
    const k = this.byDigest.get(digest);
    if (k === undefined) return KEY_UNKNOWN;
    if (!digestsEqual(digest, this.digests, k * KEY_DIGEST_BYTES)) return KEY_UNKNOWN;
    if (this.keyDisabled[k] === 1) return KEY_DISABLED;
    return this.consumers[this.keyConsumer[k]];
  }
}

/**
 * Whether the 32 latin1 characters of `digest` equal `bytes[at .. at + 32)`, in constant time:
 * every byte is looked at, the differences are OR-ed together, no branch depends on them. This
 * is crypto.timingSafeEqual's contract without its cost here (0.25 µs per request for the two
 * Buffers it needs, against 0.06 µs), which is a tenth of what the API-key budget allows.
 */
export function digestsEqual(digest: string, bytes: Uint8Array, at: number): boolean {
  if (digest.length !== KEY_DIGEST_BYTES) return false;
  let diff = 0;
  for (let i = 0; i < KEY_DIGEST_BYTES; i++) diff |= digest.charCodeAt(i) ^ bytes[at + i];
  return diff === 0;
}

// The last table this worker built: generations whose consumers did not change share it.
let last: ConsumerTable | null = null;
const EMPTY: CompiledConsumers = {
  version: '', consumers: [], keyCount: 0, digests: new SharedArrayBuffer(KEY_DIGEST_BYTES), keyConsumer: new Int32Array(0), keyDisabled: new Uint8Array(0),
};

/** The worker's table for `compiled` (absent: no consumers, every key unknown). */
export function consumerTableFor(compiled: CompiledConsumers | undefined): ConsumerTable {
  const c = compiled ?? EMPTY;
  if (last === null || last.version !== c.version) last = new ConsumerTable(c);
  return last;
}
