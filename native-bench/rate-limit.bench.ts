// Rate limiting's hot path: a take from the shared bucket table (SharedArrayBuffer, entry spin
// lock with Atomics) against the usual single-thread alternative (a Map of {tokens, last}
// objects, which cannot be shared between worker threads), and the whole filter per request
// (key, hash, take, the five response headers) with a limit that admits everything.
//
//   node dist/native-bench/rate-limit.bench.js
import { Bench } from 'tinybench';
import {
  BucketTable, createBucketTable, hashKey, hashSeeds, keyHashHi, keyHashLo, limitIdOf, MAIN_OWNER,
} from '../src/shared/bucket-table.js';
import { rateLimit } from '../src/filters/rate-limit/index.js';
import type { RequestContext } from '../src/data/request-context.js';
import type { CompiledRateLimit } from '../src/shared/rate-limit-config.js';
import { collectRows, printRows, ratio, runWhenMain, type BenchRow } from './bench-kit.js';

const KEYS = Array.from({ length: 10_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);

/** The common single-thread token bucket: a Map of small objects. */
class MapBuckets {
  private readonly map = new Map<string, { tokens: number; last: number }>();
  constructor(private readonly ratePerMs: number, private readonly burst: number) {}
  take(key: string, now: number): boolean {
    let b = this.map.get(key);
    if (!b) { b = { tokens: this.burst, last: now }; this.map.set(key, b); }
    b.tokens = Math.min(this.burst, b.tokens + (now - b.last) * this.ratePerMs);
    b.last = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

function limit(name: string): CompiledRateLimit {
  return {
    name, id: limitIdOf(name), key: { kind: 'ip' }, rate: 1e9, perMs: 1000, burst: 1e9, mode: 'enforce',
    onRedisError: 'local', status: 429, synced: false, policy: `"${name}";q=1000000000;w=1`,
  };
}

export async function run(options: { time?: number } = {}): Promise<BenchRow[]> {
  const bench = new Bench({ time: options.time ?? 300 });
  const table = new BucketTable(createBucketTable(65_536), MAIN_OWNER);
  const id = limitIdOf('bench');
  const [seedHi, seedLo] = hashSeeds('bench');
  const map = new MapBuckets(1e6, 1e9);
  const rate = 1e6;
  let sink = 0;
  let i = 0;
  const now = Date.now();

  const env = { workerIndex: 0, post: () => {}, rateLimitTable: createBucketTable(65_536) };
  const oneLimit = rateLimit.build({ limits: [limit('per-ip')], trustedProxies: [] }, env);
  const twoLimits = rateLimit.build({ limits: [limit('per-ip'), { ...limit('per-key'), key: { kind: 'header', header: 'x-api-key' } }], trustedProxies: [] }, env);
  const ctx = { clientIp: '203.0.113.7', forwardedFor: '', headers: ['accept', '*/*', 'x-api-key', 'k-123'], responseHeaders: null } as unknown as RequestContext;

  bench
    .add('take, 1 key: SAB table (lobby)', () => {
      hashKey(seedHi, seedLo, KEYS[0]);
      sink += table.take(id, keyHashHi(), keyHashLo(), rate, 1e9, now, false);
    })
    .add('take, 1 key: Map of objects', () => { sink += map.take(KEYS[0], now) ? 1 : 0; })
    .add('take, 10k keys: SAB table (lobby)', () => {
      hashKey(seedHi, seedLo, KEYS[i++ % KEYS.length]);
      sink += table.take(id, keyHashHi(), keyHashLo(), rate, 1e9, now, false);
    })
    .add('take, 10k keys: Map of objects', () => { sink += map.take(KEYS[i++ % KEYS.length], now) ? 1 : 0; })
    .add('filter per request: 1 limit (ip)', () => {
      sink += oneLimit.onRequest(ctx);
    })
    .add('filter per request: 2 limits (ip, header)', () => {
      sink += twoLimits.onRequest(ctx);
    });
  const rows = await collectRows('rate-limit', bench);
  if (sink === -1) console.log(sink);
  return rows;
}

await runWhenMain(import.meta.url, async () => {
  const rows = await run();
  printRows(rows);
  console.log(`1 key SAB / Map: ${ratio(rows, 'take, 1 key: SAB table (lobby)', 'take, 1 key: Map of objects')}x; ` +
    `10k keys SAB / Map: ${ratio(rows, 'take, 10k keys: SAB table (lobby)', 'take, 10k keys: Map of objects')}x`);
});
