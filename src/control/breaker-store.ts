// The control plane's side of the shared breaker state (src/shared/breaker-layout.ts): it
// allocates the instance's buffer, gives each service with a circuit breaker a slot by name
// (kept across reloads, so a reload never resets a breaker), attaches buffer and slot to each
// published config, and reads the slots for GET /status, GET /upstreams and the metrics.
import type { CompiledConfig } from '../shared/compiled-config.js';
import {
  BREAKER_STATE_NAMES, SLOT, WINDOW_BUCKETS, bufferBytes, slotOffset, type CompiledBreakerState,
} from '../shared/breaker-layout.js';

export interface BreakerStatus {
  service: string;
  state: (typeof BREAKER_STATE_NAMES)[number];
  /** Tries in flight / waiting for a connection, over all workers (0 when the limit is off). */
  in_flight: number;
  pending: number;
  consecutive_failures: number;
  transitions: { closed: number; open: number; half_open: number };
  rejected: { open: number; overflow: number };
  fallbacks_served: number;
}

const INITIAL_SLOTS = 64;

export class BreakerStore {
  private buffer: SharedArrayBuffer;
  private view: Int32Array;
  private readonly slots = new Map<string, number>();
  /** Services with a breaker in the latest attached config, by name. */
  private names: string[] = [];

  constructor() {
    this.buffer = new SharedArrayBuffer(bufferBytes(INITIAL_SLOTS));
    new Float64Array(this.buffer, 0, 1)[0] = Date.now();
    this.view = new Int32Array(this.buffer);
  }

  get sab(): SharedArrayBuffer {
    return this.buffer;
  }

  private capacity(): number {
    return (this.buffer.byteLength - bufferBytes(0)) / (bufferBytes(1) - bufferBytes(0));
  }

  /**
   * The config as workers get it: each breaker service with its slot, and the buffer. A
   * service seen before keeps its slot; a config with more breakers than the buffer holds
   * gets a larger buffer with every slot copied (workers move to it with the generation; a
   * count an old-generation try adds to the old buffer after the copy is lost, never a state
   * the next transition would not set again).
   */
  attach(config: CompiledConfig): CompiledConfig {
    for (const s of config.services) if (s.circuitBreaker && !this.slots.has(s.name)) this.slots.set(s.name, this.slots.size);
    // A breaker taken out of the config starts closed when it comes back (its slot is kept:
    // tries of an older generation may still count into it).
    const kept = new Set(config.services.filter((s) => s.circuitBreaker).map((s) => s.name));
    for (const name of this.names) if (!kept.has(name)) this.resetState(this.slots.get(name)!);
    if (this.slots.size > this.capacity()) {
      let slots = this.capacity();
      while (slots < this.slots.size) slots *= 2;
      const next = new SharedArrayBuffer(bufferBytes(slots));
      new Int32Array(next).set(this.view);
      this.buffer = next;
      this.view = new Int32Array(next);
    }
    const buffer = this.buffer;
    const slots: Record<string, number> = {};
    this.names = [];
    const services = config.services.map((s) => {
      if (!s.circuitBreaker) return s;
      const slot = this.slots.get(s.name)!;
      slots[s.name] = slot;
      this.names.push(s.name);
      return { ...s, breakerShared: { buffer, slot } };
    });
    const breakerState: CompiledBreakerState = { buffer, slots };
    return { ...config, services, breakerState };
  }

  private resetState(slot: number): void {
    const at = slotOffset(slot);
    Atomics.store(this.view, at + SLOT.STATE, 0);
    Atomics.store(this.view, at + SLOT.CONSECUTIVE, 0);
    for (let b = 0; b < WINDOW_BUCKETS; b++) Atomics.store(this.view, at + SLOT.WINDOW + b * 3, -1);
  }

  private read(slot: number, field: number): number {
    return Atomics.load(this.view, slotOffset(slot) + field);
  }

  /** Every breaker of the current config. */
  status(): BreakerStatus[] {
    return this.names.map((service) => this.statusOf(service)!);
  }

  statusOf(service: string): BreakerStatus | null {
    const slot = this.slots.get(service);
    if (slot === undefined || !this.names.includes(service)) return null;
    const r = (f: number) => this.read(slot, f);
    return {
      service,
      state: BREAKER_STATE_NAMES[r(SLOT.STATE)] ?? 'closed',
      in_flight: r(SLOT.IN_FLIGHT),
      pending: r(SLOT.PENDING),
      consecutive_failures: r(SLOT.CONSECUTIVE),
      transitions: { closed: r(SLOT.TO_CLOSED), open: r(SLOT.TO_OPEN), half_open: r(SLOT.TO_HALF_OPEN) },
      rejected: { open: r(SLOT.REJECTED_OPEN), overflow: r(SLOT.REJECTED_OVERFLOW) },
      fallbacks_served: r(SLOT.FALLBACKS),
    };
  }

  /** Values for the metrics (observability.ts registers them). */
  stateValues(): { labels: Record<string, string>; value: number }[] {
    return this.status().map((b) => ({ labels: { service: b.service }, value: BREAKER_STATE_NAMES.indexOf(b.state) }));
  }

  transitionValues(): { labels: Record<string, string>; value: number }[] {
    return this.status().flatMap((b) => (['closed', 'open', 'half_open'] as const).map((to) => ({ labels: { service: b.service, to }, value: b.transitions[to] })));
  }

  rejectedValues(): { labels: Record<string, string>; value: number }[] {
    return this.status().flatMap((b) => [
      { labels: { service: b.service, reason: 'open' }, value: b.rejected.open },
      { labels: { service: b.service, reason: 'overflow' }, value: b.rejected.overflow },
    ]);
  }

  fallbackValues(): { labels: Record<string, string>; value: number }[] {
    return this.status().map((b) => ({ labels: { service: b.service }, value: b.fallbacks_served }));
  }
}
