// The transcoder's offload threshold (transcode.offload_bytes, src/grpc/pool.ts): for request
// bodies of growing size, the time to encode JSON → protobuf inline (on the uWS thread) against
// the pool's round trip (workers/grpc-codec.js, one task at a time: what one request waits) and
// the uWS thread's CPU per pool task (what the offload still costs the thread it protects).
// Offloading pays from the size where the inline time exceeds that thread cost by a margin
// worth a thread hop; the default offload_bytes is read from this table.
//
//   node dist/native-bench/grpc-offload.bench.js
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { encodeRequest, printMessage } from '../src/grpc/codec.js';
import { CODEC_TASK_FILE, DescriptorBundle, type CodecResult, type CodecTask } from '../src/grpc/pool.js';
import { bookstoreRoot } from '../test/grpc/bookstore-server.js';
import { runWhenMain, type BenchRow } from './bench-kit.js';

const BENCH = 'grpc-offload';
const SIZES = [256, 1024, 4096, 16384, 65536, 262144];
const PRINT = { emitDefaults: false, protoFieldNames: false, enumsAsNumbers: false };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function run(): Promise<BenchRow[]> {
  const root = bookstoreRoot();
  const type = root.lookupType('bookstore.v1.LargeRequest');
  const bundle = new DescriptorBundle(root);
  const pool = new Piscina<CodecTask, CodecResult>({ filename: CODEC_TASK_FILE, minThreads: 1, maxThreads: 1, atomics: 'async' });
  const rows: BenchRow[] = [];
  try {
    for (const size of SIZES) {
      const items: string[] = [];
      let n = 2;
      while (n < size) { const item = `item-${items.length}-abcdefghij`; items.push(item); n += item.length + 3; }
      const body = Buffer.from(JSON.stringify({ items }));
      const encoded = encodeRequest(type, body, '*', []);
      const reps = size >= 65536 ? 60 : 300;
      const inline: number[] = [];
      const inlinePrint: number[] = [];
      for (let i = 0; i < reps; i++) {
        let t = performance.now();
        encodeRequest(type, body, '*', []);
        inline.push(performance.now() - t);
        t = performance.now();
        printMessage(type, encoded, PRINT);
        inlinePrint.push(performance.now() - t);
      }
      const trip: number[] = [];
      const threadCpu: number[] = [];
      const task: CodecTask = { op: 'encode', bundle: bundle.id, data: bundle.data, type: 'bookstore.v1.LargeRequest', body, bodyField: '*', bound: [] };
      await pool.run(task); // the thread decodes the bundle once
      for (let i = 0; i < reps; i++) {
        const cpu = process.cpuUsage();
        const t = performance.now();
        const p = pool.run(task);
        const dispatched = process.cpuUsage(cpu);
        await p;
        trip.push(performance.now() - t);
        // The calling thread's share: the dispatch (structured clone of the body) and the
        // result's arrival, measured around the whole task minus the pool thread's work is not
        // separable with process.cpuUsage; the dispatch part is the clone of the body.
        threadCpu.push((dispatched.user + dispatched.system) / 1000);
      }
      const us = (ms: number) => Math.round(ms * 1000);
      const label = `${size >= 1024 ? `${size / 1024} KiB` : `${size} B`}`;
      rows.push({ bench: BENCH, case: `encode inline ${label} (µs ${us(median(inline))})`, opsPerSec: 1000 / median(inline) });
      rows.push({ bench: BENCH, case: `print inline ${label} (µs ${us(median(inlinePrint))})`, opsPerSec: 1000 / median(inlinePrint) });
      rows.push({ bench: BENCH, case: `encode pool round trip ${label} (µs ${us(median(trip))}, caller µs ${us(median(threadCpu))})`, opsPerSec: 1000 / median(trip) });
    }
  } finally {
    await pool.destroy();
  }
  return rows;
}

await runWhenMain(import.meta.url, async () => {
  for (const r of await run()) console.log(`${r.case.padEnd(72)} ${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(10)} ops/s`);
});
