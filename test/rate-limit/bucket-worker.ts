// Worker thread for test/rate-limit/bucket-table.test.ts: takes from one shared bucket as fast
// as it can and reports how many takes were admitted. (Run as a plain module by `node --test`
// too, where it does nothing.)
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { BucketTable, hashKey, hashSeeds, keyHashHi, keyHashLo, TAKE_ADMITTED } from '../../src/shared/bucket-table.js';

interface Job {
  sab: SharedArrayBuffer;
  owner: number;
  limitId: number;
  limitName: string;
  keys: string[];
  takes: number;
  now: number;
  ratePerMs: number;
  burst: number;
  start: SharedArrayBuffer;
}

if (!isMainThread && parentPort) {
  const job = workerData as Job;
  const table = new BucketTable(job.sab, job.owner);
  const [seedHi, seedLo] = hashSeeds(job.limitName);
  const hashes = job.keys.map((k) => { hashKey(seedHi, seedLo, k); return [keyHashHi(), keyHashLo()]; });
  // Start together: spin on a shared flag so both threads overlap.
  const start = new Int32Array(job.start);
  Atomics.add(start, 1, 1);
  while (Atomics.load(start, 0) === 0) { /* spin */ }
  let admitted = 0;
  for (let i = 0; i < job.takes; i++) {
    const [hi, lo] = hashes[i % hashes.length];
    if (table.take(job.limitId, hi, lo, job.ratePerMs, job.burst, job.now, false) === TAKE_ADMITTED) admitted++;
  }
  parentPort.postMessage({ admitted });
}
