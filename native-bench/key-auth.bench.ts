// API-key lookup (src/filters/key-auth/consumer-table.ts): SHA-256 of the presented key, one
// Map lookup, a constant-time comparison of the digests. The point: it costs the same for 10
// consumers and for 100,000. Also the digest itself (crypto.hash, what Lobby uses, vs
// createHash().update().digest()) and what building a worker's table costs once per
// consumer-table version.
//
//   node dist/native-bench/key-auth.bench.js
import { createHash, hash } from 'node:crypto';
import { Bench } from 'tinybench';
import { compileKeyAuth } from '../src/filters/key-auth/compile.js';
import { keyHashText, type RawConsumer } from '../src/filters/key-auth/schema.js';
import { ConsumerTable, KEY_UNKNOWN } from '../src/filters/key-auth/consumer-table.js';
import type { CompiledConsumers } from '../src/shared/consumer-config.js';
import { buildKeyAuth } from '../src/filters/key-auth/filter.js';
import { RequestContext } from '../src/data/request-context.js';
import { collectRows, printRows, ratio, runWhenMain, type BenchRow } from './bench-kit.js';

const keyOf = (i: number) => `key-${i.toString(36).padStart(8, '0')}-0123456789abcdef0123`;

/** The compiled table of `n` consumers with one key each, made by the real compile. */
export function consumersOf(n: number): CompiledConsumers {
  const consumers: RawConsumer[] = [];
  for (let i = 0; i < n; i++) {
    consumers.push({ name: `c${i}`, headers: { 'X-Consumer-Id': `c${i}` }, keys: [{ id: 'k', hash: keyHashText(keyOf(i)), disabled: false }] });
  }
  const issues: string[] = [];
  const compiled = compileKeyAuth({ consumers, routes: [] }, { report: (_p, m) => issues.push(m), baseDir: '.' });
  if (issues.length > 0) throw new Error(issues.join('; '));
  return compiled.runtime!.consumers!;
}

export async function run(options: { time?: number } = {}): Promise<BenchRow[]> {
  const small = new ConsumerTable(consumersOf(10));
  const mid = new ConsumerTable(consumersOf(10_000));
  const bigCompiled = consumersOf(100_000);
  const big = new ConsumerTable(bigCompiled);
  // The keys asked for: 1,000 spread over the first 9,000 (in both big tables; all 10 for the small one), and unknown ones.
  const bigKeys = Array.from({ length: 1000 }, (_, i) => keyOf(i * 9));
  const smallKeys = Array.from({ length: 10 }, (_, i) => keyOf(i));
  const unknown = Array.from({ length: 1000 }, (_, i) => `nope-${i}-0123456789abcdef0123456789`);
  let i = 0;
  let sink = 0;
  const bench = new Bench({ time: options.time ?? 400 });
  bench
    .add('lookup: 10 consumers', () => { const c = small.lookup(smallKeys[i++ % 10]); sink += c === KEY_UNKNOWN ? 0 : 1; })
    .add('lookup: 10,000 consumers', () => { const c = mid.lookup(bigKeys[i++ % 1000]); sink += c === KEY_UNKNOWN ? 0 : 1; })
    .add('lookup: 100,000 consumers', () => { const c = big.lookup(bigKeys[i++ % 1000]); sink += c === KEY_UNKNOWN ? 0 : 1; })
    .add('lookup: unknown key, 100,000', () => { const c = big.lookup(unknown[i++ % 1000]); sink += c === KEY_UNKNOWN ? 1 : 0; })
    .add('digest: crypto.hash, latin1 (lobby)', () => { sink += hash('sha256', bigKeys[i++ % 1000], 'binary').length; })
    .add('digest: crypto.hash, Buffer', () => { sink += hash('sha256', bigKeys[i++ % 1000], 'buffer')[0]; })
    .add('digest: createHash', () => { sink += createHash('sha256').update(bigKeys[i++ % 1000]).digest()[0]; });
  // The whole filter on a request as the front door hands it over (6 headers, the key among them).
  const filter = buildKeyAuth(
    { route: 'r', header: 'x-api-key', query: null, forwardKey: false, optional: false, stripHeaders: ['x-consumer-id'] },
    { workerIndex: 0, post: () => undefined, runtimes: { consumers: bigCompiled } },
  );
  const ctx = new RequestContext({} as never, {} as never, 0);
  const request = ['user-agent', 'wrk', 'accept', '*/*', 'x-api-key', bigKeys[0], 'accept-encoding', 'gzip', 'x-b3-sampled', '1', 'cookie', 'a=b'];
  const reset = () => { ctx.headers.length = 0; for (const h of request) ctx.headers.push(h); ctx.subject = ''; };
  bench
    .add('filter: headers reset only', () => { reset(); sink += ctx.headers.length; })
    .add('filter: reset + key-auth onRequest', () => { reset(); sink += filter.onRequest(ctx); });
  const rows = await collectRows('key-auth', bench);
  if (sink === -1) console.log(sink, bigCompiled.keyCount);
  return rows;
}

/**
 * CPU time (process.cpuUsage, what the load test's headline counts) key-auth adds per request:
 * 1 M requests with the filter minus 1 M without (the header reset alone), median of 3 runs.
 */
export function filterCpuMicros(consumers: CompiledConsumers, key: string): number {
  const filter = buildKeyAuth(
    { route: 'r', header: 'x-api-key', query: null, forwardKey: false, optional: false, stripHeaders: ['x-consumer-id'] },
    { workerIndex: 0, post: () => undefined, runtimes: { consumers } },
  );
  const ctx = new RequestContext({} as never, {} as never, 0);
  const request = ['user-agent', 'wrk', 'accept', '*/*', 'x-api-key', key, 'accept-encoding', 'gzip', 'x-b3-sampled', '1', 'cookie', 'a=b'];
  let sink = 0;
  const reset = () => { ctx.headers.length = 0; for (const h of request) ctx.headers.push(h); ctx.subject = ''; };
  const cpuPerCall = (fn: () => void) => {
    const before = process.cpuUsage();
    for (let n = 0; n < 1_000_000; n++) fn();
    const used = process.cpuUsage(before);
    return (used.user + used.system) / 1_000_000;
  };
  const added = [0, 1, 2].map(() => cpuPerCall(() => { reset(); sink += filter.onRequest(ctx); }) - cpuPerCall(() => { reset(); sink += ctx.headers.length; }));
  if (sink === -1) console.log(sink);
  return added.sort((a, b) => a - b)[1];
}

await runWhenMain(import.meta.url, async () => {
  const rows = await run();
  printRows(rows);
  // One-time costs, per consumer-table version: compile (control plane) and a worker's table.
  const t0 = performance.now();
  const compiled = consumersOf(100_000);
  const t1 = performance.now();
  const table = new ConsumerTable(compiled);
  const t2 = performance.now();
  console.log(`100,000 consumers: compiled in ${(t1 - t0).toFixed(0)} ms (hashing their keys included), a worker's table built in ${(t2 - t1).toFixed(0)} ms (${table.size} keys)`);
  console.log(`key-auth CPU per request (filter alone): ${filterCpuMicros(consumersOf(10), keyOf(3)).toFixed(2)} µs with 10 consumers, ` +
    `${filterCpuMicros(consumersOf(100_000), keyOf(4321)).toFixed(2)} µs with 100,000`);
  console.log(`lookup 10 / 100,000 consumers: ${ratio(rows, 'lookup: 10 consumers', 'lookup: 100,000 consumers')}x; ` +
    `crypto.hash / createHash: ${ratio(rows, 'digest: crypto.hash, latin1 (lobby)', 'digest: createHash')}x`);
});
