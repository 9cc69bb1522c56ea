// The shared bucket table on its own: token-bucket arithmetic with an explicit clock (burst,
// then exactly the rate), key isolation, the key-count bound with LRU eviction and the
// per-limit share (a flood of distinct keys, also from two threads), the sync hooks
// (collect / applyGlobal), and two threads on one bucket without lost updates.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  BucketTable, createBucketTable, H, hashKey, hashSeeds, keyHashHi, keyHashLo, limitIdOf, MAIN_OWNER, MIN_IDLE_MS,
  REDIS_STATE, TAKE_ADMITTED, TAKE_FULL, TAKE_LIMITED,
} from '../../src/shared/bucket-table.js';

/** A key of `limit` whose probe window starts at `slot` (found by trying names). */
function keyAt(t: BucketTable, limit: string, slot: number, tag = ''): { name: string; hi: number; lo: number } {
  for (let n = 0; ; n++) {
    const name = `${limit}${tag}-at${slot}-${n}`;
    const [hi, lo] = keyOf(limit, name);
    if (t.homeSlot(hi, lo) === slot) return { name, hi, lo };
  }
}

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
interface ThreadResult { admitted: number; full: number; alsoAdmitted: number; alsoFull: number }

async function takeInTwoThreads(job: {
  sab: SharedArrayBuffer; limitId: number; limitName: string; keys: string[] | string[][]; takes: number; now: number; ratePerMs: number; burst: number;
  tick?: number; also?: { limitId: number; limitName: string; key: string; every: number; ratePerMs: number; burst: number };
}): Promise<ThreadResult[]> {
  const start = new SharedArrayBuffer(8);
  const url = new URL('./bucket-worker.js', import.meta.url);
  // keys: one list for both threads, or one list per thread.
  const keysOf = (owner: number) => (Array.isArray(job.keys[0]) ? (job.keys as string[][])[owner - 1] : job.keys);
  const workers = [1, 2].map((owner) => new Worker(url, { workerData: { ...job, keys: keysOf(owner), owner, start } }));
  try {
    const done = workers.map((w) => new Promise<ThreadResult>((resolve, reject) => {
      w.once('message', (m: ThreadResult) => resolve(m));
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

  it('is bounded: a full table evicts the least recently used entry of the window, idle ones first', () => {
    const t = tableWith(16);
    assert.equal(t.capacity, 16);
    const id = limitIdOf('k');
    const rate = 1 / 60_000; // 1 a minute: a used bucket stays far from full (not idle)
    const keys = Array.from({ length: 16 }, (_, i) => keyOf('k', `key-${i}`));
    keys.forEach(([hi, lo], i) => assert.equal(t.take(id, hi, lo, rate, 2, T0 + i, false), TAKE_ADMITTED, `key ${i}`));
    assert.equal(t.take(id, keys[0][0], keys[0][1], rate, 2, T0 + 100, false), TAKE_ADMITTED); // key-0: used last
    const [hi, lo] = keyOf('k', 'one-too-many');
    assert.equal(t.take(id, hi, lo, rate, 2, T0 + 200, false), TAKE_ADMITTED);
    assert.equal(t.counter(H.FULL), 0);
    assert.equal(t.counter(H.EVICTIONS), 1);
    assert.equal(t.counter(H.EVICTED_ACTIVE), 1);
    assert.equal(t.live, 16);
    // The least recently used (key-1) went; key-0, used again at +100, stayed with its state.
    assert.equal(t.find(id, keys[1][0], keys[1][1]), -1);
    assert.equal(t.take(id, keys[0][0], keys[0][1], rate, 2, T0 + 300, false), TAKE_LIMITED);
    // The evicted key restarts with a full bucket (the documented trade-off).
    assert.equal(t.take(id, keys[1][0], keys[1][1], rate, 2, T0 + 400, false), TAKE_ADMITTED);
    assert.equal(t.take(id, keys[1][0], keys[1][1], rate, 2, T0 + 400, false), TAKE_ADMITTED);
    // An idle entry (refilled, unused for MIN_IDLE_MS) goes before any LRU pick.
    const fast = limitIdOf('fast');
    const [fh, fl] = keyOf('fast', 'x');
    t.sweep(T0 + 400, () => true); // nothing idle yet
    assert.equal(t.take(id, hi, lo, rate, 2, T0 + 400, false), TAKE_ADMITTED);
    const evictedBefore = t.counter(H.EVICTED_ACTIVE);
    // The sweep drops every entry of a limit that no longer exists.
    assert.equal(t.sweep(T0 + 500, (x) => x !== id), 16);
    assert.equal(t.live, 0);
    assert.equal(t.liveOf(id), 0);
    assert.equal(t.counter(H.ACTIVE_LIMITS), 0);
    for (let i = 0; i < 16; i++) { const [h, l] = keyOf('fast', `f${i}`); t.take(fast, h, l, 1, 1, T0, false); } // 1/ms: idle after MIN_IDLE_MS
    assert.equal(t.take(fast, fh, fl, 1, 1, T0 + MIN_IDLE_MS, false), TAKE_ADMITTED);
    assert.equal(t.counter(H.EVICTED_ACTIVE), evictedBefore, 'an idle entry was taken, not a live one');
    assert.equal(t.sweep(T0 + 2 * MIN_IDLE_MS, () => true), 16);
    assert.equal(t.live, 0);
  });

  it('survives a flood of 10x the table in distinct keys: an established client of another limit keeps its bucket', () => {
    const t = tableWith(1024);
    const est = limitIdOf('est');
    const [eh, el] = keyOf('est', 'client');
    const minute = 1 / 60_000;
    for (let i = 0; i < 4; i++) assert.equal(t.take(est, eh, el, minute, 10, T0, false), TAKE_ADMITTED);
    const estSlot = t.find(est, eh, el);
    const flood = limitIdOf('flood');
    let full = 0;
    for (let i = 0; i < 10 * t.capacity; i++) {
      const [hi, lo] = keyOf('flood', `attacker-${i}`);
      if (t.take(flood, hi, lo, minute, 1, T0 + 1 + (i >> 4), false) === TAKE_FULL) full++;
    }
    assert.equal(full, 0, 'every flood key found room by evicting older flood keys');
    assert.equal(t.counter(H.FULL), 0);
    assert.equal(t.find(est, eh, el), estSlot, 'the established entry was not evicted');
    // Still limited exactly: 6 left of its burst of 10, not a fresh bucket (the client was quiet
    // during the flood, so plain LRU would have evicted it: the per-limit share kept it).
    const now = T0 + 1 + ((10 * t.capacity) >> 4);
    let admitted = 0;
    for (let i = 0; i < 20; i++) if (t.take(est, eh, el, minute, 10, now, false) === TAKE_ADMITTED) admitted++;
    assert.equal(admitted, 6);
    // A new client of the other limit is admitted too (its limit is under its share).
    const [nh, nl] = keyOf('est', 'newcomer');
    assert.equal(t.take(est, nh, nl, minute, 10, now, false), TAKE_ADMITTED);
    assert.equal(t.live, t.capacity);
    assert.ok(t.liveOf(flood) >= t.capacity - 2);
  });

  it('answers full only when nothing in the window may be evicted: limits within their share keep their entries', () => {
    const t = tableWith(64); // windows of 32 slots: half the table
    const names = ['a', 'b', 'c', 'd'];
    const minute = 1 / 60_000;
    const held: { limit: string; name: string; hi: number; lo: number }[] = [];
    for (let slot = 0; slot < 64; slot++) {
      const limit = names[slot >> 4]; // 16 each: exactly the share of 4 limits
      const k = keyAt(t, limit, slot);
      assert.equal(t.take(limitIdOf(limit), k.hi, k.lo, minute, 2, T0 + slot, false), TAKE_ADMITTED);
      assert.equal(t.find(limitIdOf(limit), k.hi, k.lo), slot);
      held.push({ limit, ...k });
    }
    const take = (limit: string, slot: number, now: number) => {
      const k = keyAt(t, limit, slot, '-new');
      return t.take(limitIdOf(limit), k.hi, k.lo, minute, 2, now, false);
    };
    // d's new key lands in a window of a's and b's entries, both within their share: refused.
    assert.equal(take('d', 0, T0 + 1000), TAKE_FULL);
    assert.equal(take('a', 16, T0 + 1000), TAKE_FULL); // b's and c's window: none of a's own
    assert.equal(t.counter(H.EVICTIONS), 0);
    // a's new key in a window holding a's entries replaces a's least recently used one (slot 0).
    assert.equal(take('a', 0, T0 + 1000), TAKE_ADMITTED);
    assert.equal(t.find(limitIdOf('a'), held[0].hi, held[0].lo), -1);
    // A fifth limit is owed a share (64 / 5): a and b are now over it; the LRU of the window goes (slot 1).
    assert.equal(take('e', 0, T0 + 2000), TAKE_ADMITTED);
    assert.equal(t.find(limitIdOf('a'), held[1].hi, held[1].lo), -1);
    for (let slot = 2; slot < 64; slot++) assert.equal(t.find(limitIdOf(held[slot].limit), held[slot].hi, held[slot].lo), slot);
    assert.equal(t.counter(H.ACTIVE_LIMITS), 5);
    assert.deepEqual(names.map((n) => t.liveOf(limitIdOf(n))), [15, 16, 16, 16]);
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
    // The bucket's own rate and burst go to the sync (a consumer's own rate_limit, say).
    assert.deepEqual([rec.ratePerMs, rec.burst], [rate, 100]);
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
    const admitted = (await takeInTwoThreads({ sab, limitId, limitName, keys: ['one-key'], takes, now: T0, ratePerMs: 0.001, burst })).map((r) => r.admitted);
    assert.ok(admitted[0] > 10_000 && admitted[1] > 10_000, `both threads took (${admitted})`);
    assert.equal(admitted[0] + admitted[1], burst);
    const t = new BucketTable(sab, MAIN_OWNER);
    assert.equal(t.live, 1);
  });

  it('inserts a key once when two threads race on many new keys', async () => {
    const sab = createBucketTable(4096);
    const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`);
    const admitted = (await takeInTwoThreads({ sab, limitId: limitIdOf('race'), limitName: 'race', keys, takes: 2000, now: T0, ratePerMs: 0.001, burst: 1 })).map((r) => r.admitted);
    // Burst 1 per key: exactly one of the two threads gets each key's token.
    assert.equal(admitted[0] + admitted[1], 2000);
    assert.equal(new BucketTable(sab, MAIN_OWNER).live, 2000);
  });

  it('keeps an established client of another limit when two threads flood the table with distinct keys', async () => {
    const sab = createBucketTable(1024);
    const t = new BucketTable(sab, MAIN_OWNER);
    const minute = 1 / 60_000;
    const also = { limitId: limitIdOf('est'), limitName: 'est', key: 'client', every: 4096, ratePerMs: minute, burst: 100 };
    const [eh, el] = keyOf('est', 'client');
    for (let i = 0; i < 10; i++) assert.equal(t.take(also.limitId, eh, el, minute, 100, T0, false), TAKE_ADMITTED);
    const estSlot = t.find(also.limitId, eh, el);
    // 10x the table in distinct keys per thread (20x in all); the established client takes now
    // and then from each thread (turns 0, 4096, 8192: 6 takes), mostly quiet (LRU alone would evict it).
    const keys = [1, 2].map((th) => Array.from({ length: 10 * 1024 }, (_, i) => `t${th}-attacker-${i}`));
    const results = await takeInTwoThreads({ sab, limitId: limitIdOf('flood'), limitName: 'flood', keys, takes: 10 * 1024, now: T0 + 1, tick: 16, ratePerMs: minute, burst: 1, also });
    const sum = (f: (r: ThreadResult) => number) => results.reduce((n, r) => n + f(r), 0);
    assert.equal(sum((r) => r.alsoFull), 0);
    assert.equal(sum((r) => r.alsoAdmitted), 6);
    assert.equal(sum((r) => r.full), 0, 'no flood key was refused: older flood keys were evicted');
    assert.equal(sum((r) => r.admitted), 20 * 1024);
    assert.equal(t.find(also.limitId, eh, el), estSlot);
    let left = 0;
    for (let i = 0; i < 200; i++) if (t.take(also.limitId, eh, el, minute, 100, T0 + 1000, false) === TAKE_ADMITTED) left++;
    assert.equal(left, 84, 'the established bucket kept its state (a fresh one would admit 100)');
    assert.equal(t.live, 1024);
    assert.equal(t.liveOf(limitIdOf('flood')) + t.liveOf(also.limitId), 1024);
    assert.equal(t.counter(H.WRITER_LOCK), 0);
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
