// The rate-limit bucket table: token buckets of every (limit, key) pair of an instance, in one
// SharedArrayBuffer that every data-plane worker and the control plane use at once.
//
// Layout (Int32 words; Float64 fields sit on 8-byte boundaries):
//
//   header   HEADER_WORDS words     magic, capacity, writer lock, live count, Redis state,
//                                   instance count, counters (see H)
//   stats    STATS_SLOTS × 8 words  per-limit counters, keyed by limit id (insert-only, CAS)
//   entries  capacity × 16 words    one bucket each (see E)
//
// An entry is keyed by (limit id, 64-bit hash of the key); the hash is seeded with the limit
// name, so the same key under two limits hashes apart, and identical on every instance (the
// Redis key is derived from it). Open addressing with linear probing, at most MAX_PROBE slots
// from the home slot.
//
// Concurrency (no lost updates between threads):
//   - a bucket's fields are read and written only under the entry's spin lock (one
//     Atomics.compareExchange to take, one Atomics.store to release; held for a few dozen
//     nanoseconds, no allocation or call inside), so two workers taking from one bucket at
//     once serialize;
//   - inserting and evicting entries change the table's shape: they run under the table's
//     writer lock (one inserter at a time), so a key is never inserted twice; an insert hands
//     the entry back locked, so no eviction can come between it and the take;
//   - lookups take no table lock: slots go EMPTY → LIVE ⇄ TOMBSTONE and never back to EMPTY,
//     so a probe may stop at the first EMPTY slot; a lookup that found its key re-checks the
//     key under the entry lock (the entry may have been evicted and reused in between).
//   - lock words hold the owner id (worker index + 1, or MAIN_OWNER): when a worker dies, the
//     supervisor releases whatever it held (releaseOwner), so a crash cannot wedge a bucket.
//
// Capacity is fixed when the buffer is created. An insert that finds no free slot in its probe
// window evicts an entry of that window (see insert()): an idle one if there is one (its bucket
// has refilled and it has nothing left to sync: dropping it loses nothing), else the least
// recently used one among those it may take: entries of its own limit, or of a limit holding
// more than its share of the table (capacity / limits with entries). Only when the window holds
// neither is the request refused (FULL → 503). Each limit thus keeps its share against a flood
// of distinct keys of another limit.

export const MAGIC = 0x4c524c31; // "LRL1"
export const HEADER_WORDS = 64;
export const STATS_SLOTS = 256;
export const STATS_WORDS = 8;
export const ENTRY_WORDS = 16;
export const MAX_PROBE = 32;
/** An entry is evictable only after this long without a take (avoids churn on busy keys). */
export const MIN_IDLE_MS = 1_000;
/** Lock owner id of the main thread (workers use workerIndex + 1). */
export const MAIN_OWNER = 0x7fff;

/** Header words. */
export const H = {
  MAGIC: 0,
  CAPACITY: 1,
  WRITER_LOCK: 2,
  /** Live entries. */
  LIVE: 3,
  /** REDIS_STATE: whether synced limits may use their shares. */
  REDIS: 4,
  /** Instances syncing rate limits through Redis (>= 1); the initial share of a new key. */
  INSTANCES: 5,
  /** Requests refused because the table was full. */
  FULL: 6,
  EVICTIONS: 7,
  INSERTS: 8,
  /** Limits with at least one live entry (the divisor of the per-limit share). */
  ACTIVE_LIMITS: 9,
  /** Evictions of entries that were not idle (the table was full: LRU eviction). */
  EVICTED_ACTIVE: 10,
} as const;

export const REDIS_STATE = { OFF: 0, OK: 1, DOWN: 2 } as const;

/** Entry words (offsets from the entry's first word). */
export const E = {
  STATE: 0,
  LOCK: 1,
  HI: 2,
  LO: 3,
  LIMIT: 4,
  /** Tokens taken since the last sync push (synced limits only). */
  CONSUMED: 5,
  /** Requests refused since the last sync push (synced limits only). */
  DENIED: 6,
  /** Number of instances sharing this key (the divisor of rate and burst); 0 or 1 = alone. */
  SHARE: 7,
  /** Float64: tokens (may be negative: debt from other instances' consumption). */
  TOKENS: 8,
  /** Float64: time (ms since the epoch) of the last refill. */
  LAST: 10,
  FLAGS: 12,
  /** The limit's burst and rate (Float64 tokens per ms), so any thread can judge idleness. */
  BURST: 13,
  RATE: 14,
} as const;

const EMPTY = 0;
const LIVE = 1;
const TOMBSTONE = 2;
/** FLAGS: taken from since the last sync. */
export const FLAG_TOUCHED = 1;
/** FLAGS: the global state was applied at least once. */
export const FLAG_SYNCED = 2;

/** Stats words (offsets in a slot). */
export const S = {
  ID: 0,
  ADMITTED: 1,
  LIMITED: 2,
  /** Would have been refused, admitted because the limit is in report mode (or Redis is down and on_redis_error is allow). */
  REPORTED: 3,
  FULL: 4,
  /** Refused because Redis is down and on_redis_error is deny. */
  UNAVAILABLE: 5,
  /** Live entries of the limit (changed under the writer lock). */
  LIVE: 6,
} as const;

export const TAKE_ADMITTED = 0;
export const TAKE_LIMITED = 1;
export const TAKE_FULL = 2;
export type TakeResult = typeof TAKE_ADMITTED | typeof TAKE_LIMITED | typeof TAKE_FULL;

const SPINS_BEFORE_WAIT = 2_000;
const TOKEN_EPSILON = 1e-9;

function roundUpPow2(n: number): number {
  let p = 16;
  while (p < n) p *= 2;
  return p;
}

/** Bytes of a table holding `keys` entries (rounded up to a power of two). */
export function bucketTableBytes(keys: number): number {
  return (HEADER_WORDS + STATS_SLOTS * STATS_WORDS + roundUpPow2(keys) * ENTRY_WORDS) * 4;
}

export function createBucketTable(keys: number): SharedArrayBuffer {
  const capacity = roundUpPow2(keys);
  const sab = new SharedArrayBuffer(bucketTableBytes(capacity));
  const i32 = new Int32Array(sab);
  i32[H.CAPACITY] = capacity;
  i32[H.INSTANCES] = 1;
  Atomics.store(i32, H.MAGIC, MAGIC);
  return sab;
}

// 64-bit key hash: two 32-bit lanes (cyrb53's mixing), seeded per limit. Deterministic across
// processes and hosts: the Redis key of a bucket is derived from it.
let hashHi = 0;
let hashLo = 0;

export function hashSeeds(limitName: string): [number, number] {
  hashKey(0x2545f491, 0x9e3779b9, limitName);
  return [hashHi, hashLo];
}

/** Hashes `key` with the seeds of a limit; the result is in keyHashHi()/keyHashLo(). */
export function hashKey(seedHi: number, seedLo: number, key: string): void {
  let h1 = 0xdeadbeef ^ seedHi;
  let h2 = 0x41c6ce57 ^ seedLo;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  hashHi = h1 | 0;
  hashLo = h2 | 0;
}

export function keyHashHi(): number { return hashHi; }
export function keyHashLo(): number { return hashLo; }

/** A limit's id in the table: a nonzero 32-bit hash of its name. */
export function limitIdOf(name: string): number {
  hashKey(0x85ebca6b, 0xc2b2ae35, name);
  return hashLo === 0 ? 1 : hashLo;
}

/** 16 hex digits of a key hash (the Redis key suffix). */
export function hashHex(hi: number, lo: number): string {
  return (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}

/** What the sync reads from an entry it pushes. */
export interface PushRecord {
  index: number;
  limitId: number;
  hi: number;
  lo: number;
  consumed: number;
  denied: number;
  /** The bucket's own rate and burst, as its last take() set them: the limit's, or a
   * consumer's own (consumers[].rate_limit), which the global bucket refills at. */
  ratePerMs: number;
  burst: number;
}

export class BucketTable {
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly capacity: number;
  private readonly mask: number;
  private readonly base: number;

  // Outputs of the last take() (no allocation per call).
  /** Tokens left after the take (may be fractional or negative). */
  tokens = 0;
  /** The bucket's capacity as seen by this instance (burst / share). */
  capacityTokens = 0;
  /** Milliseconds until one token is available (0 when admitted). */
  retryMs = 0;
  /** Milliseconds until the bucket is full again. */
  resetMs = 0;
  /** Entry index of the last take (for refund), or -1. */
  entry = -1;

  constructor(readonly sab: SharedArrayBuffer, readonly owner: number) {
    this.i32 = new Int32Array(sab);
    this.f64 = new Float64Array(sab);
    if (Atomics.load(this.i32, H.MAGIC) !== MAGIC) throw new Error('not a rate-limit bucket table');
    this.capacity = this.i32[H.CAPACITY];
    this.mask = this.capacity - 1;
    this.base = HEADER_WORDS + STATS_SLOTS * STATS_WORDS;
  }

  // ---- locks -----------------------------------------------------------------------------

  private lock(word: number): void {
    const i32 = this.i32;
    if (Atomics.compareExchange(i32, word, 0, this.owner) === 0) return;
    let spins = 0;
    for (;;) {
      const holder = Atomics.load(i32, word);
      if (holder === 0) {
        if (Atomics.compareExchange(i32, word, 0, this.owner) === 0) return;
      } else if (++spins > SPINS_BEFORE_WAIT) {
        // The holder was descheduled (or is paused by its GC): stop burning the core.
        // Atomics.wait returns at once if the word changed; 50 µs at most otherwise.
        Atomics.wait(i32, word, holder, 0.05);
      }
    }
  }

  private unlock(word: number): void {
    Atomics.store(this.i32, word, 0);
  }

  /** Releases every lock `owner` holds (its thread died). */
  releaseOwner(owner: number): number {
    let released = 0;
    if (Atomics.compareExchange(this.i32, H.WRITER_LOCK, owner, 0) === owner) released++;
    for (let e = 0; e < this.capacity; e++) {
      if (Atomics.compareExchange(this.i32, this.base + e * ENTRY_WORDS + E.LOCK, owner, 0) === owner) released++;
    }
    return released;
  }

  // ---- header ----------------------------------------------------------------------------

  get redisState(): number { return Atomics.load(this.i32, H.REDIS); }
  setRedisState(state: number): void { Atomics.store(this.i32, H.REDIS, state); }
  get instances(): number { return Math.max(1, Atomics.load(this.i32, H.INSTANCES)); }
  setInstances(n: number): void { Atomics.store(this.i32, H.INSTANCES, Math.max(1, n | 0)); }
  get live(): number { return Atomics.load(this.i32, H.LIVE); }
  counter(word: number): number { return Atomics.load(this.i32, word); }

  // ---- per-limit stats -------------------------------------------------------------------

  /** Word offset of the stats slot of `limitId` (created on first use), or -1 when all are taken. */
  statsSlot(limitId: number): number {
    const i32 = this.i32;
    const start = (Math.imul(limitId, 0x9e3779b1) >>> 0) % STATS_SLOTS;
    for (let n = 0; n < STATS_SLOTS; n++) {
      const at = HEADER_WORDS + ((start + n) % STATS_SLOTS) * STATS_WORDS;
      const id = Atomics.load(i32, at + S.ID);
      if (id === limitId) return at;
      if (id === 0) {
        const prev = Atomics.compareExchange(i32, at + S.ID, 0, limitId);
        if (prev === 0 || prev === limitId) return at;
      }
    }
    return -1;
  }

  stats(limitId: number): { admitted: number; limited: number; reported: number; full: number; unavailable: number } {
    const at = this.statsSlot(limitId);
    const get = (w: number) => (at < 0 ? 0 : Atomics.load(this.i32, at + w) >>> 0);
    return { admitted: get(S.ADMITTED), limited: get(S.LIMITED), reported: get(S.REPORTED), full: get(S.FULL), unavailable: get(S.UNAVAILABLE) };
  }

  // ---- lookup / insert -------------------------------------------------------------------

  private home(hi: number, lo: number): number {
    return (Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> 0) & this.mask;
  }

  /** Whether the entry at word `w` is live and holds (limitId, hi, lo): the re-check under its lock. */
  private holds(w: number, limitId: number, hi: number, lo: number): boolean {
    const i32 = this.i32;
    return Atomics.load(i32, w + E.STATE) === LIVE && i32[w + E.LO] === lo && i32[w + E.HI] === hi && i32[w + E.LIMIT] === limitId;
  }

  /** Entry index of (limitId, hi, lo), or -1. Lock-free. */
  find(limitId: number, hi: number, lo: number): number {
    const i32 = this.i32;
    let slot = this.home(hi, lo);
    for (let n = 0; n < MAX_PROBE; n++) {
      const w = this.base + slot * ENTRY_WORDS;
      const state = Atomics.load(i32, w + E.STATE);
      if (state === EMPTY) return -1;
      if (state === LIVE && i32[w + E.LO] === lo && i32[w + E.HI] === hi && i32[w + E.LIMIT] === limitId) return slot;
      slot = (slot + 1) & this.mask;
    }
    return -1;
  }

  /** Home slot of a key hash (where its probe window starts). */
  homeSlot(hi: number, lo: number): number {
    return this.home(hi, lo);
  }

  /** Live entries of a limit (0 when it has no stats slot). */
  liveOf(limitId: number): number {
    const at = this.statsSlot(limitId);
    return at < 0 ? 0 : Atomics.load(this.i32, at + S.LIVE);
  }

  /** Counts an entry of `limitId` in or out (under the writer lock). */
  private noteLive(limitId: number, delta: 1 | -1): void {
    const at = this.statsSlot(limitId);
    if (at < 0) return;
    const before = Atomics.add(this.i32, at + S.LIVE, delta);
    if (delta > 0 && before === 0) Atomics.add(this.i32, H.ACTIVE_LIMITS, 1);
    else if (delta < 0 && before === 1) Atomics.sub(this.i32, H.ACTIVE_LIMITS, 1);
  }

  /** Turns the live entry at word `w` into a tombstone (writer lock and entry lock held). */
  private drop(w: number): void {
    Atomics.store(this.i32, w + E.STATE, TOMBSTONE);
    Atomics.sub(this.i32, H.LIVE, 1);
    Atomics.add(this.i32, H.EVICTIONS, 1);
    this.noteLive(this.i32[w + E.LIMIT], -1);
  }

  /**
   * Whether an insert for `limitId` may evict a live (not idle) entry of `victimLimit`: its own
   * limit's (the limit's count does not change), or one of a limit over its share of the table.
   * The share counts the inserting limit as active even before its first entry, so a limit
   * that has none yet is owed a share too.
   */
  private mayEvict(limitId: number, victimLimit: number, ownLive: number): boolean {
    if (victimLimit === limitId) return true;
    const at = this.statsSlot(victimLimit);
    if (at < 0) return true; // no stats slot to count it by: no guarantee either
    const active = Atomics.load(this.i32, H.ACTIVE_LIMITS) + (ownLive === 0 ? 1 : 0);
    return Atomics.load(this.i32, at + S.LIVE) * active > this.capacity;
  }

  /**
   * Inserts (or finds, if another thread was first) the entry and returns it with its entry
   * lock held (the caller unlocks); -1 when nothing in the window can be evicted.
   *
   * The eviction is LRU within the key's probe window (at most MAX_PROBE slots, the only place
   * the key may live), by the entries' last refill time (LAST: set by every take, and by the
   * sync's apply for keys used in the round). Exact LRU over the whole table would need a
   * shared recency list relinked under a lock on every take, i.e. a cross-worker write on the
   * hot path; sampling the window (what Redis's approximated LRU does) costs the hot path
   * nothing and only runs when the window is full.
   */
  private insert(limitId: number, hi: number, lo: number, ratePerMs: number, burst: number, share: number, now: number): number {
    const i32 = this.i32;
    const f64 = this.f64;
    this.lock(H.WRITER_LOCK);
    try {
      const home = this.home(hi, lo);
      let slot = home;
      let free = -1;
      for (let n = 0; n < MAX_PROBE; n++) {
        const w = this.base + slot * ENTRY_WORDS;
        const state = Atomics.load(i32, w + E.STATE);
        if (state === LIVE) {
          if (i32[w + E.LO] === lo && i32[w + E.HI] === hi && i32[w + E.LIMIT] === limitId) {
            this.lock(w + E.LOCK);
            return slot;
          }
        } else {
          if (free < 0) free = slot;
          if (state === EMPTY) break;
        }
        slot = (slot + 1) & this.mask;
      }
      if (free < 0) {
        free = this.evictIn(home, limitId, now);
        if (free < 0) return -1;
      }
      const w = this.base + free * ENTRY_WORDS;
      this.lock(w + E.LOCK);
      const div = share > 1 ? share : 1;
      i32[w + E.HI] = hi;
      i32[w + E.LO] = lo;
      i32[w + E.LIMIT] = limitId;
      i32[w + E.CONSUMED] = 0;
      i32[w + E.DENIED] = 0;
      i32[w + E.SHARE] = div;
      i32[w + E.FLAGS] = 0;
      i32[w + E.BURST] = burst;
      f64[(w + E.RATE) >> 1] = ratePerMs;
      f64[(w + E.TOKENS) >> 1] = burst / div;
      f64[(w + E.LAST) >> 1] = now;
      Atomics.store(i32, w + E.STATE, LIVE);
      Atomics.add(i32, H.LIVE, 1);
      Atomics.add(i32, H.INSERTS, 1);
      this.noteLive(limitId, 1);
      return free;
    } finally {
      this.unlock(H.WRITER_LOCK);
    }
  }

  /**
   * Frees a slot in the (full) window from `home` for a key of `limitId` (writer lock held):
   * an idle entry if any, else the least recently used entry this limit may evict. -1: none.
   */
  private evictIn(home: number, limitId: number, now: number): number {
    const i32 = this.i32;
    const ownLive = this.liveOf(limitId);
    let slot = home;
    let victim = -1;
    let victimLast = Infinity;
    for (let n = 0; n < MAX_PROBE; n++) {
      const w = this.base + slot * ENTRY_WORDS;
      if (this.idle(w, now)) { victim = slot; break; }
      // A plain read: LRU is a heuristic (a take racing it only makes the pick slightly stale).
      const last = this.f64[(w + E.LAST) >> 1];
      if (last < victimLast && this.mayEvict(limitId, i32[w + E.LIMIT], ownLive)) { victim = slot; victimLast = last; }
      slot = (slot + 1) & this.mask;
    }
    if (victim < 0) return -1;
    const w = this.base + victim * ENTRY_WORDS;
    this.lock(w + E.LOCK);
    // Under the entry lock, so no take is inside; one that landed since the scan is lost with
    // the bucket (an idle pick then restarts full, having had at most a token taken).
    if (!this.idle(w, now)) Atomics.add(i32, H.EVICTED_ACTIVE, 1);
    this.drop(w);
    this.unlock(w + E.LOCK);
    return victim;
  }

  /** An entry whose bucket has refilled and that has nothing to sync: dropping it loses nothing. */
  private idle(w: number, now: number): boolean {
    const i32 = this.i32;
    if (i32[w + E.CONSUMED] !== 0 || i32[w + E.DENIED] !== 0) return false;
    const last = this.f64[(w + E.LAST) >> 1];
    if (now - last < MIN_IDLE_MS) return false;
    const div = i32[w + E.SHARE] > 1 ? i32[w + E.SHARE] : 1;
    const cap = i32[w + E.BURST] / div;
    return this.f64[(w + E.TOKENS) >> 1] + (now - last) * (this.f64[(w + E.RATE) >> 1] / div) >= cap;
  }

  // ---- the hot path ----------------------------------------------------------------------

  /**
   * Takes one token from the bucket of (limitId, hi, lo), creating it full when absent.
   * `shared`: the limit is synced through Redis and Redis is up: rate and burst are divided
   * by the key's share (instances using it), and the take is counted for the next push.
   * A new entry starts with the instance count as its share. `consume` false: look only (report
   * mode, or a refused request): the bucket is refilled but nothing is taken.
   * Outputs: tokens, capacityTokens, retryMs, resetMs, entry.
   */
  // Hot path: one probe, one CAS, a few float operations, one store. No allocation.
  take(limitId: number, hi: number, lo: number, ratePerMs: number, burst: number, now: number,
    shared: boolean, consume = true): TakeResult {
    const i32 = this.i32;
    const f64 = this.f64;
    let slot = this.find(limitId, hi, lo);
    let w = this.base + slot * ENTRY_WORDS;
    if (slot >= 0) {
      this.lock(w + E.LOCK);
      if (!this.holds(w, limitId, hi, lo)) { this.unlock(w + E.LOCK); slot = -1; } // evicted and reused since find()
    }
    if (slot < 0) {
      // Returns with the entry locked: no other thread's eviction can come between.
      slot = this.insert(limitId, hi, lo, ratePerMs, burst, shared ? this.instances : 1, now);
      if (slot < 0) { Atomics.add(i32, H.FULL, 1); this.entry = -1; return TAKE_FULL; }
      w = this.base + slot * ENTRY_WORDS;
    }
    const share = i32[w + E.SHARE];
    const div = shared && share > 1 ? share : 1;
    const rate = ratePerMs / div;
    const cap = burst / div;
    const ti = (w + E.TOKENS) >> 1;
    const li = (w + E.LAST) >> 1;
    let tokens = f64[ti];
    const elapsed = now - f64[li];
    if (elapsed > 0) { tokens += elapsed * rate; f64[li] = now; }
    if (tokens > cap) tokens = cap;
    let result: TakeResult;
    // The epsilon absorbs float rounding of the refill (ten 0.1-token refills sum to 0.999…).
    if (tokens >= 1 - TOKEN_EPSILON) {
      if (consume) {
        tokens -= 1;
        if (shared) i32[w + E.CONSUMED]++;
      }
      result = TAKE_ADMITTED;
      this.retryMs = 0;
    } else {
      if (shared) i32[w + E.DENIED]++;
      result = TAKE_LIMITED;
      this.retryMs = (1 - tokens) / rate;
    }
    f64[ti] = tokens;
    i32[w + E.FLAGS] |= FLAG_TOUCHED;
    i32[w + E.BURST] = burst;
    f64[(w + E.RATE) >> 1] = ratePerMs;
    this.unlock(w + E.LOCK);
    this.tokens = tokens;
    this.capacityTokens = cap;
    this.resetMs = (cap - tokens) / rate;
    this.entry = slot;
    return result;
  }

  /** Gives back the token of an admitted take (a later limit of the same request refused it). */
  refund(slot: number, limitId: number, hi: number, lo: number, shared: boolean): void {
    const i32 = this.i32;
    const w = this.base + slot * ENTRY_WORDS;
    this.lock(w + E.LOCK);
    if (this.holds(w, limitId, hi, lo)) {
      const share = i32[w + E.SHARE];
      const cap = i32[w + E.BURST] / (shared && share > 1 ? share : 1);
      const ti = (w + E.TOKENS) >> 1;
      this.f64[ti] = Math.min(cap, this.f64[ti] + 1);
      if (shared && i32[w + E.CONSUMED] > 0) i32[w + E.CONSUMED]--;
    }
    this.unlock(w + E.LOCK);
  }

  // ---- control plane: sync and sweep -----------------------------------------------------

  /** Calls `fn` with the entry index and word offset of every live entry (no locks). */
  private forEachLive(fn: (slot: number, w: number) => void): void {
    for (let slot = 0; slot < this.capacity; slot++) {
      const w = this.base + slot * ENTRY_WORDS;
      if (Atomics.load(this.i32, w + E.STATE) === LIVE) fn(slot, w);
    }
  }

  /**
   * For the sync push: every live entry of a synced limit that was used since the last push,
   * with its counters, which are reset (they are the delta this push reports).
   */
  collect(isSynced: (limitId: number) => boolean): PushRecord[] {
    const out: PushRecord[] = [];
    const i32 = this.i32;
    this.forEachLive((slot, w) => {
      const limitId = i32[w + E.LIMIT];
      if ((i32[w + E.FLAGS] & FLAG_TOUCHED) === 0 && i32[w + E.CONSUMED] === 0 && i32[w + E.DENIED] === 0) return;
      if (!isSynced(limitId)) return;
      this.lock(w + E.LOCK);
      if (Atomics.load(i32, w + E.STATE) === LIVE && i32[w + E.LIMIT] === limitId) {
        out.push({
          index: slot, limitId, hi: i32[w + E.HI], lo: i32[w + E.LO], consumed: i32[w + E.CONSUMED], denied: i32[w + E.DENIED],
          ratePerMs: this.f64[(w + E.RATE) >> 1], burst: i32[w + E.BURST],
        });
        i32[w + E.CONSUMED] = 0;
        i32[w + E.DENIED] = 0;
        i32[w + E.FLAGS] &= ~FLAG_TOUCHED;
      }
      this.unlock(w + E.LOCK);
    });
    return out;
  }

  /**
   * For the sync pull: the key's global remaining tokens `global` (after every push Redis has
   * seen, this one included) shared by `share` instances. This instance's bucket becomes its
   * share of the global budget, minus what it took since the push.
   */
  applyGlobal(rec: PushRecord, global: number, share: number, burst: number, now: number): boolean {
    const i32 = this.i32;
    const w = this.base + rec.index * ENTRY_WORDS;
    this.lock(w + E.LOCK);
    const same = this.holds(w, rec.limitId, rec.hi, rec.lo);
    if (same) {
      const div = share > 1 ? share : 1;
      const cap = burst / div;
      let tokens = global / div - i32[w + E.CONSUMED];
      if (tokens > cap) tokens = cap;
      i32[w + E.SHARE] = div;
      this.f64[(w + E.TOKENS) >> 1] = tokens;
      this.f64[(w + E.LAST) >> 1] = now;
      i32[w + E.FLAGS] |= FLAG_SYNCED;
    }
    this.unlock(w + E.LOCK);
    return same;
  }

  /** Zeroes every pending delta (consumption while Redis was down is not reported later). */
  resetDeltas(): void {
    const i32 = this.i32;
    this.forEachLive((_slot, w) => {
      this.lock(w + E.LOCK);
      i32[w + E.CONSUMED] = 0;
      i32[w + E.DENIED] = 0;
      i32[w + E.FLAGS] &= ~FLAG_TOUCHED;
      this.unlock(w + E.LOCK);
    });
  }

  /**
   * Evicts idle entries, and every entry of a limit that no longer exists. Returns the number
   * evicted. Each eviction holds the writer lock only for itself, so inserts on the data plane
   * wait at most one eviction.
   */
  sweep(now: number, isKnownLimit: (limitId: number) => boolean): number {
    let evicted = 0;
    const i32 = this.i32;
    this.forEachLive((_slot, w) => {
      const known = isKnownLimit(i32[w + E.LIMIT]);
      if (known && !this.idle(w, now)) return;
      this.lock(H.WRITER_LOCK);
      this.lock(w + E.LOCK);
      if (Atomics.load(i32, w + E.STATE) === LIVE && (!isKnownLimit(i32[w + E.LIMIT]) || this.idle(w, now))) {
        this.drop(w);
        evicted++;
      }
      this.unlock(w + E.LOCK);
      this.unlock(H.WRITER_LOCK);
    });
    return evicted;
  }

  /** Live entries per limit id (for /status). */
  countByLimit(): Map<number, number> {
    const counts = new Map<number, number>();
    this.forEachLive((_slot, w) => {
      const id = this.i32[w + E.LIMIT];
      counts.set(id, (counts.get(id) ?? 0) + 1);
    });
    return counts;
  }
}
