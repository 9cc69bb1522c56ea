// The verification pool of one data-plane worker: piscina threads that run
// workers/jwt-verify.ts, so a signature check never runs on the uWebSockets.js thread.
// One pool per worker (small, `auth.verifier.threads`), `atomics: 'async'` with several tasks
// in flight per thread by default, the cheapest settings measured (docs/performance.md).
// The queue is bounded in tokens by provider-state.ts (`max_queue`: one more answers 503
// overloaded at once); piscina's own maxQueue, in tasks, is a backstop that never binds first.
//
// Tokens travel in batches (src/data/auth/provider-state.ts). What a thread verifies with
// travels as a KeyBundle: the provider's checks and keys, serialized once into a
// SharedArrayBuffer. Every task carries the bundle's id and the buffer (shared, not copied);
// a thread decodes a bundle the first time it sees its id.
import type { Piscina } from 'piscina';
import { lazily } from '../../shared/lazy-require.js';

/** piscina, loaded when a worker first needs its verification pool. */
const piscina = lazily<typeof import('piscina')>('piscina');
import type { CompiledAuthRuntime, Jwk, VerifierSpec } from '../../shared/auth-config.js';
import { TokenVerifier, type VerifyResult } from './jwt.js';

export const VERIFY_TASK_FILE = new URL('../../../workers/jwt-verify.js', import.meta.url).href;

/** A batch of tokens for one provider and key set; the answer is one VerifyResult per token. */
export interface VerifyTask {
  tokens: string[];
  bundle: number;
  data: SharedArrayBuffer;
}

export interface BundleContent {
  spec: VerifierSpec;
  keys: Jwk[] | null;
}

let nextBundleId = 1;
const encoder = new TextEncoder();

/** A provider's verification inputs under one key set. */
export class KeyBundle {
  readonly id = nextBundleId++;
  readonly data: SharedArrayBuffer;
  private inlineVerifier: TokenVerifier | null = null;

  constructor(readonly spec: VerifierSpec, readonly keys: Jwk[] | null) {
    const bytes = encoder.encode(JSON.stringify({ spec, keys } satisfies BundleContent));
    this.data = new SharedArrayBuffer(bytes.length);
    new Uint8Array(this.data).set(bytes);
  }

  /** The verifier for `inline` mode (on this thread), built on first use. */
  get verifier(): TokenVerifier {
    return (this.inlineVerifier ??= new TokenVerifier(this.spec, this.keys));
  }
}

/** Decodes a bundle (in a pool thread). */
export function decodeBundle(data: SharedArrayBuffer): BundleContent {
  return JSON.parse(Buffer.from(new Uint8Array(data)).toString('utf8')) as BundleContent;
}

/** A replaced pool (settings changed by a reload) is closed this long after. */
const OLD_POOL_GRACE_MS = 60_000;
let pool: Piscina<VerifyTask, VerifyResult[]> | null = null;
let poolSettings = '';

function settingsKey(rt: CompiledAuthRuntime): string {
  return `${rt.threads}/${rt.concurrentTasksPerThread}/${rt.atomics}/${rt.maxQueue}`;
}

/** This worker's pool for these settings (a settings change replaces it; the old one finishes its tasks). */
export function verifyPool(rt: CompiledAuthRuntime): Piscina<VerifyTask, VerifyResult[]> {
  const key = settingsKey(rt);
  if (pool !== null && poolSettings === key) return pool;
  const old = pool;
  pool = new (piscina().Piscina)<VerifyTask, VerifyResult[]>({
    filename: VERIFY_TASK_FILE,
    name: 'default',
    minThreads: rt.threads,
    maxThreads: rt.threads,
    idleTimeout: 2_147_483_647,
    maxQueue: rt.maxQueue,
    concurrentTasksPerWorker: rt.concurrentTasksPerThread,
    atomics: rt.atomics,
  });
  poolSettings = key;
  // Requests of the generation still live may use the old pool for a while.
  if (old !== null) setTimeout(() => void old.close().catch(() => undefined), OLD_POOL_GRACE_MS).unref();
  return pool;
}

/** Closes the pool (worker drain / exit). */
export async function closeVerifyPool(): Promise<void> {
  const p = pool;
  pool = null;
  poolSettings = '';
  if (p !== null) await p.close({ force: true }).catch(() => undefined);
}
