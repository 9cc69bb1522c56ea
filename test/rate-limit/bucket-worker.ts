// Worker thread for test/rate-limit/bucket-table.test.ts: takes from shared buckets as fast as
// it can and reports how many takes were admitted (and refused as full). With `also`, every
// `also.every`-th take is followed by one from another limit's key (an established client
// amid a flood). (Run as a plain module by `node --test` too, where it does nothing.)
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { BucketTable, hashKey, hashSeeds, keyHashHi, keyHashLo, TAKE_ADMITTED, TAKE_FULL } from '../../src/shared/bucket-table.js';

interface Job {
  sab: SharedArrayBuffer;
  owner: number;
  limitId: number;
  limitName: string;
  keys: string[];
  takes: number;
  now: number;
  /** The clock advances 1 ms every `tick` takes (0: frozen). */
  tick?: number;
  ratePerMs: number;
  burst: number;
  also?: { limitId: number; limitName: string; key: string; every: number; ratePerMs: number; burst: number };
  start: SharedArrayBuffer;
}

function hashOf(limitName: string, key: string): [number, number] {
  const [seedHi, seedLo] = hashSeeds(limitName);
  hashKey(seedHi, seedLo, key);
  return [keyHashHi(), keyHashLo()];
}

if (!isMainThread && parentPort) {
  const job = workerData as Job;
  const table = new BucketTable(job.sab, job.owner);
  const hashes = job.keys.map((k) => hashOf(job.limitName, k));
  const also = job.also;
  const [alsoHi, alsoLo] = also ? hashOf(also.limitName, also.key) : [0, 0];
  // Start together: spin on a shared flag so both threads overlap.
  const start = new Int32Array(job.start);
  Atomics.add(start, 1, 1);
  while (Atomics.load(start, 0) === 0) { /* spin */ }
  let admitted = 0;
  let full = 0;
  let alsoAdmitted = 0;
  let alsoFull = 0;
  for (let i = 0; i < job.takes; i++) {
    const [hi, lo] = hashes[i % hashes.length];
    const now = job.tick ? job.now + Math.floor(i / job.tick) : job.now;
    const r = table.take(job.limitId, hi, lo, job.ratePerMs, job.burst, now, false);
    if (r === TAKE_ADMITTED) admitted++;
    else if (r === TAKE_FULL) full++;
    if (also && i % also.every === 0) {
      const a = table.take(also.limitId, alsoHi, alsoLo, also.ratePerMs, also.burst, now, false);
      if (a === TAKE_ADMITTED) alsoAdmitted++;
      else if (a === TAKE_FULL) alsoFull++;
    }
  }
  parentPort.postMessage({ admitted, full, alsoAdmitted, alsoFull });
}
