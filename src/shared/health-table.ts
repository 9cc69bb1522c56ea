// The health table: whether each upstream target may take requests, in one SharedArrayBuffer
// created once per instance by the supervisor and shared by the control plane (active health
// checks, the ejection sweeper) and every data-plane worker (the pickers, outlier ejection).
//
// Slots are keyed by service and target (src/control/health-checker.ts assigns them), never
// by generation, so a reload keeps what is known about a target. A service with a health
// policy has one slot per target and one for the service itself (its ejected-target count).
//
// Layout:
//   down     capacity bytes             per target: 0 = may take requests; else DOWN bits.
//                                       The pick reads this one byte (balancer.ts).
//   fields   capacity × FIELDS int32s   counters, see F (Atomics only)
//
// Concurrency: every write is an Atomics operation. The consecutive-failure counters are
// Atomics.add'ed by every worker, so the threshold is crossed by exactly one of them, which
// alone tries the ejection; the service's ejected count is reserved with compareExchange
// under the max_eject_percent cap, so two workers cannot eject past it.

/** Bits of a target's down byte. */
export const DOWN = {
  /** The active health check failed `unhealthy_after` times in a row (control plane). */
  UNHEALTHY: 1,
  /** Ejected by outlier detection until F.EJECTED_UNTIL (a worker sets it, the sweeper clears it). */
  EJECTED: 2,
} as const;

/** Int32 fields of a slot. */
export const F = {
  /** Consecutive 5xx responses (and resets, bad responses) from the target. */
  CONSECUTIVE_5XX: 0,
  /** Consecutive connect failures (refused, connect timeout). */
  CONSECUTIVE_CONNECT: 1,
  /** Ejections so far that still weigh on the next ejection time (Envoy: base × times). */
  TIMES_EJECTED: 2,
  /** Every ejection of the target (lobby_upstream_ejections_total). */
  EJECTIONS_TOTAL: 3,
  /** When the ejection ends, in TICK_MS units since the table's epoch (0: not set yet). */
  EJECTED_UNTIL: 4,
  /** Last ejection or return (TICK_MS units since the epoch): TIMES_EJECTED decays from it. */
  LAST_CHANGE: 5,
  /** Service slots: targets of the service ejected now (kept at most the cap). */
  EJECTED_COUNT: 6,
  /** The worker index + 1 that ejected the target last (for the log), 0 = none. */
  EJECTED_BY: 7,
} as const;
export const FIELDS = 8;

/** Ejection times are kept in 100 ms units (int32: about 6.8 years of uptime). */
export const TICK_MS = 100;
export const DEFAULT_HEALTH_SLOTS = 4096;

/** Views over the health table; the same on both planes. */
export class HealthTable {
  readonly down: Uint8Array;
  readonly fields: Int32Array;
  readonly capacity: number;

  constructor(readonly sab: SharedArrayBuffer, readonly epoch: number) {
    this.capacity = Math.floor(sab.byteLength / (1 + FIELDS * 4));
    this.down = new Uint8Array(sab, 0, this.capacity);
    const fieldsOffset = Math.ceil(this.capacity / 8) * 8;
    this.fields = new Int32Array(sab, fieldsOffset, this.capacity * FIELDS);
  }

  static create(capacity = DEFAULT_HEALTH_SLOTS, epoch = Date.now()): HealthTable {
    return new HealthTable(new SharedArrayBuffer(Math.ceil(capacity / 8) * 8 + capacity * FIELDS * 4), epoch);
  }

  /** Now in TICK_MS units since the epoch (never 0, the "not set" value). */
  ticks(now = Date.now()): number {
    return Math.max(1, Math.floor((now - this.epoch) / TICK_MS));
  }

  field(slot: number, f: number): number {
    return Atomics.load(this.fields, slot * FIELDS + f);
  }

  setField(slot: number, f: number, value: number): void {
    Atomics.store(this.fields, slot * FIELDS + f, value);
  }

  addField(slot: number, f: number, delta: number): number {
    return Atomics.add(this.fields, slot * FIELDS + f, delta) + delta;
  }

  /** Sets `bit`; returns the byte before. */
  setDown(slot: number, bit: number): number {
    return Atomics.or(this.down, slot, bit);
  }

  /** Clears `bit`; returns the byte before. */
  clearDown(slot: number, bit: number): number {
    return Atomics.and(this.down, slot, ~bit & 0xff);
  }

  isDown(slot: number, bit: number): boolean {
    return (Atomics.load(this.down, slot) & bit) !== 0;
  }

  /** A slot given to a new key: nothing of its previous owner is left. */
  reset(slot: number): void {
    Atomics.store(this.down, slot, 0);
    for (let f = 0; f < FIELDS; f++) Atomics.store(this.fields, slot * FIELDS + f, 0);
  }

  /**
   * Reserves one ejection of the service under `cap` (compareExchange: never past it, however
   * many workers try at once). False when `cap` targets are ejected already.
   */
  reserveEjection(serviceSlot: number, cap: number): boolean {
    const i = serviceSlot * FIELDS + F.EJECTED_COUNT;
    for (;;) {
      const current = Atomics.load(this.fields, i);
      if (current >= cap) return false;
      if (Atomics.compareExchange(this.fields, i, current, current + 1) === current) return true;
    }
  }

  releaseEjection(serviceSlot: number): void {
    const i = serviceSlot * FIELDS + F.EJECTED_COUNT;
    for (;;) {
      const current = Atomics.load(this.fields, i);
      if (current <= 0) return;
      if (Atomics.compareExchange(this.fields, i, current, current - 1) === current) return;
    }
  }
}

/** The most targets of `n` that may be ejected at once under `maxEjectPercent`. */
export function ejectionCap(n: number, maxEjectPercent: number): number {
  return Math.floor((n * maxEjectPercent) / 100);
}

/** How long the `times`-th ejection lasts (Envoy: base × times, capped), in ms. */
export function ejectionMs(times: number, ejectS: number, maxEjectS: number): number {
  return Math.min(ejectS * times, Math.max(ejectS, maxEjectS)) * 1000;
}
