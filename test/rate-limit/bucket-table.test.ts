// The shared bucket table on its own: token-bucket arithmetic with an explicit clock (burst,
// then exactly the rate), key isolation, the key-count bound and idle eviction, the sync
// hooks (collect / applyGlobal), and two threads on one bucket without lost updates.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  BucketTable, createBucketTable, H, hashKey, hashSeeds, keyHashHi, keyHashLo, limitIdOf, MAIN_OWNER, MIN_IDLE_MS,
  REDIS_STATE, TAKE_ADMITTED, TAKE_FULL, TAKE_LIMITED,
} from '../../src/shared/bucket-table.js';

const T0 = 1_700_000_000_000;

function keyOf(limit: string, key: string): [number, number] {
  const [a, b] = hashSeeds(limit);
  hashKey(a, b, key);
  return [keyHashHi(), keyHashLo()];
}

function tableWith(keys = 1024): BucketTable {
  return new BucketTable(createBucketTable(keys), MAIN_OWNER);
}

/**
 * Runs bucket-worker.ts in two threads (owners 1 and 2) on one table, released together so
 * their takes overlap; returns each thread's admitted count.
 */
async function takeInTwoThreads(job: {
  sab: SharedArrayBuffer; limitId: number; limitName: string; keys: string[]; takes: number; now: number; ratePerMs: number; burst: number;
}): Promise<number[]> {
  const start = new SharedArrayBuffer(8);
  const url = new URL('./bucket-worker.js', import.meta.url);
  const workers = [1, 2].map((owner) => new Worker(url, { workerData: { ...job, owner, start } }));
  try {
    const done = workers.map((w) => new Promise<number>((resolve, reject) => {
      w.once('message', (m: { admitted: number }) => resolve(m.admitted));
      w.once('error', reject);
    }));
    const flag = new Int32Array(start);
    while (Atomics.load(flag, 1) < 2) await new Promise((r) => setTimeout(r, 5));
    Atomics.store(flag, 0, 1);
    return await Promise.all(done);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

describe('bucket table', () => {
  it('admits the burst at once, then exactly the rate', () => {
    const t = tableWith();
    const id = limitIdOf('per-ip');
    const [hi, lo] = keyOf('per-ip', '10.0.0.1');
    const rate = 10 / 1000; // 10 per second
    let admitted = 0;
    for (let i = 0; i < 50; i++) if (t.take(id, hi, lo, rate, 20, T0, false) === TAKE_ADMITTED) admitted++;
    assert.equal(admitted, 20);
    assert.equal(t.take(id, hi, lo, rate, 20, T0, false), TAKE_LIMITED);
    assert.equal(Math.round(t.retryMs), 100); // one token every 100 ms
    assert.equal(Math.round(t.resetMs), 2000); // 20 tokens to refill
    // Every 10 ms for 10 s: exactly 100 more (one per 100 ms), never two in a row early.
    admitted = 0;
    for (let ms = 10; ms <= 10_000; ms += 10) if (t.take(id, hi, lo, rate, 20, T0 + ms, false) === TAKE_ADMITTED) admitted++;
    assert.equal(admitted, 100);
    // Idle for a long time: refills to the burst, not beyond.
    admitted = 0;
    for (let i = 0; i < 50; i++) if (t.take(id, hi, lo, rate, 20, T0 + 100_000, false) === TAKE_ADMITTED) admitted++;
    assert.equal(admitted, 20);
  });

  it('keeps keys and limits apart', () => {
    const t = tableWith();
    const a = limitIdOf('a');
    const b = limitIdOf('b');
    const [h1, l1] = keyOf('a', 'k1');
    const [h2, l2] = keyOf('a', 'k2');
    const [h3, l3] = keyOf('b', 'k1');
    assert.equal(t.take(a, h1, l1, 0.001, 1, T0, false), TAKE_ADMITTED);
    assert.equal(t.take(a, h1, l1, 0.001, 1, T0, false), TAKE_LIMITED);
    assert.equal(t.take(a, h2, l2, 0.001, 1, T0, false), TAKE_ADMITTED);
    assert.equal(t.take(b, h3, l3, 0.001, 1, T0, false), TAKE_ADMITTED);
    assert.equal(t.live, 3);
  });

  it('is bounded: a full table refuses new keys until idle ones can be evicted', () => {
    const t = tableWith(16);
    assert.equal(t.capacity, 16);
    const id = limitIdOf('k');
    const rate = 1; // 1 per ms: refilled right away, evictable once idle for MIN_IDLE_MS
    for (let i = 0; i < 16; i++) {
      const [hi, lo] = keyOf('k', `key-${i}`);
      assert.equal(t.take(id, hi, lo, rate, 1, T0, false), TAKE_ADMITTED, `key ${i}`);
    }
    const [hi, lo] = keyOf('k', 'one-too-many');
    assert.equal(t.take(id, hi, lo, rate, 1, T0, false), TAKE_FULL);
    assert.equal(t.counter(H.FULL), 1);
    // Later the old keys are idle (refilled, nothing to sync): one is evicted for the new key.
    assert.equal(t.take(id, hi, lo, rate, 1, T0 + MIN_IDLE_MS, false), TAKE_ADMITTED);
    assert.equal(t.counter(H.EVICTIONS), 1);
    assert.equal(t.live, 16);
    // The sweep drops the rest, and every entry of a limit that no longer exists.
    assert.equal(t.sweep(T0 + 2 * MIN_IDLE_MS, (x) => x === id), 16);
    assert.equal(t.live, 0);
  });

  it('collects deltas of shared limits and applies the global budget as a share', () => {
    const t = tableWith();
    t.setRedisState(REDIS_STATE.OK);
    t.setInstances(2);
    const id = limitIdOf('g');
    const [hi, lo] = keyOf('g', 'user');
    const rate = 100 / 1000;
    // A new shared key starts with burst / instances.
    let admitted = 0;
    for (let i = 0; i < 100; i++) if (t.take(id, hi, lo, rate, 100, T0, true) === TAKE_ADMITTED) admitted++;
    assert.equal(admitted, 50);
    const [rec] = t.collect(() => true);
    assert.equal(rec.consumed, 50);
    assert.equal(rec.denied, 50);
    // Two more admitted after the push (refill of 20 ms at rate/2 = 1 token): reported next round.
    assert.equal(t.take(id, hi, lo, rate, 100, T0 + 20, true), TAKE_ADMITTED);
    // Redis answers: 30 tokens left globally, 3 instances share the key → 10 each, minus the 1 taken since.
    assert.ok(t.applyGlobal(rec, 30, 3, 100, T0 + 20));
    admitted = 0;
    for (let i = 0; i < 100; i++) if (t.take(id, hi, lo, rate, 100, T0 + 20, true) === TAKE_ADMITTED) admitted++;
    assert.equal(admitted, 9);
    const [next] = t.collect(() => true);
    assert.equal(next.consumed, 10);
    // Debt: another instance overspent; this one waits until its share has paid it back.
    assert.ok(t.applyGlobal(next, -30, 3, 100, T0 + 20));
    assert.equal(t.take(id, hi, lo, rate, 100, T0 + 20 + 300, true), TAKE_LIMITED); // -10 + 300 ms × 1/30 per ms = 0
    assert.equal(t.take(id, hi, lo, rate, 100, T0 + 20 + 330, true), TAKE_ADMITTED);
  });

  it('loses no update when two threads take from one bucket at once', async () => {
    const sab = createBucketTable(1024);
    const limitName = 'shared';
    const limitId = limitIdOf(limitName);
    const burst = 100_000;
    const takes = 80_000; // per thread: 160k takes against 100k tokens, the clock frozen
    const admitted = await takeInTwoThreads({ sab, limitId, limitName, keys: ['one-key'], takes, now: T0, ratePerMs: 0.001, burst });
    assert.ok(admitted[0] > 10_000 && admitted[1] > 10_000, `both threads took (${admitted})`);
    assert.equal(admitted[0] + admitted[1], burst);
    const t = new BucketTable(sab, MAIN_OWNER);
    assert.equal(t.live, 1);
  });

  it('inserts a key once when two threads race on many new keys', async () => {
    const sab = createBucketTable(4096);
    const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`);
    const admitted = await takeInTwoThreads({ sab, limitId: limitIdOf('race'), limitName: 'race', keys, takes: 2000, now: T0, ratePerMs: 0.001, burst: 1 });
    // Burst 1 per key: exactly one of the two threads gets each key's token.
    assert.equal(admitted[0] + admitted[1], 2000);
    assert.equal(new BucketTable(sab, MAIN_OWNER).live, 2000);
  });

  it('releases the locks of a dead owner', () => {
    const sab = createBucketTable(64);
    const t = new BucketTable(sab, MAIN_OWNER);
    const i32 = new Int32Array(sab);
    Atomics.store(i32, H.WRITER_LOCK, 3);
    assert.equal(t.releaseOwner(3), 1);
    const [hi, lo] = keyOf('x', 'y');
    assert.equal(t.take(limitIdOf('x'), hi, lo, 1, 1, T0, false), TAKE_ADMITTED); // would spin forever if still held
  });
});
