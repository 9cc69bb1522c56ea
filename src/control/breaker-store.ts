// The control plane's side of the shared breaker state (src/shared/breaker-layout.ts): it
// allocates the instance's buffer, gives each service with a circuit breaker a slot by name
// and each route with a breaker of its own one by `route:<name>` (kept across reloads, so a
// reload never resets a breaker), attaches buffer and slot to each published config, and
// reads the slots for GET /status, GET /upstreams and the metrics.
import type { CompiledConfig } from '../shared/compiled-config.js';
import {
  BREAKER_STATE_NAMES, SLOT, WINDOW_BUCKETS, bufferBytes, memberPolicyName, routeOverrideKey, slotOffset, type CompiledBreakerState,
} from '../shared/breaker-layout.js';

export interface BreakerStatus {
  service: string;
  /** The route whose own breaker this is (`routes[].circuit_breaker`), null for the service's. */
  route: string | null;
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

/** A breaker of the latest attached config: its slot key and what it belongs to. */
interface Attached { key: string; service: string; route: string | null }

export class BreakerStore {
  private buffer: SharedArrayBuffer;
  private view: Int32Array;
  /** Slot by key: a service's name, or routeOverrideKey() (`route:<name>`) of a route with its own breaker. */
  private readonly slots = new Map<string, number>();
  /** Breakers in the latest attached config: the services', then the routes' (config order). */
  private attached: Attached[] = [];

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
   * The config as workers get it: each breaker (a service's, a route's own) with its slot,
   * and the buffer. A breaker seen before keeps its slot and state; a config with more
   * breakers than the buffer holds gets a larger buffer with every slot copied (workers move
   * to it with the generation; a count an old-generation try adds to the old buffer after the
   * copy is lost, never a state the next transition would not set again).
   */
  attach(config: CompiledConfig): CompiledConfig {
    const next: Attached[] = [];
    for (const s of config.services) if (s.circuitBreaker) next.push({ key: s.name, service: s.name, route: null });
    for (const r of config.routes) {
      if (r.circuitBreaker) next.push({ key: routeOverrideKey(r.name), service: config.services[r.service].name, route: r.name });
      // A split's members: one breaker of the route's per member service (memberPolicyName).
      for (const m of r.split?.members ?? []) {
        const service = config.services[m.service].name;
        if (m.circuitBreaker) next.push({ key: routeOverrideKey(memberPolicyName(r.name, service)), service, route: r.name });
      }
    }
    for (const b of next) if (!this.slots.has(b.key)) this.slots.set(b.key, this.slots.size);
    if (this.slots.size > this.capacity()) {
      let slots = this.capacity();
      while (slots < this.slots.size) slots *= 2;
      const grown = new SharedArrayBuffer(bufferBytes(slots));
      new Int32Array(grown).set(this.view);
      this.buffer = grown;
      this.view = new Int32Array(grown);
    }
    // A breaker taken out of the config starts closed when it comes back (its slot is kept:
    // tries of an older generation may still count into it), and so does a route's that now
    // goes to another service: its state measured another upstream.
    const before = new Map(this.attached.map((b) => [b.key, b.service]));
    for (const b of next) if (before.get(b.key) !== b.service) this.resetState(this.slots.get(b.key)!);
    const buffer = this.buffer;
    const slots: Record<string, number> = {};
    for (const b of next) slots[b.key] = this.slots.get(b.key)!;
    this.attached = next;
    const services = config.services.map((s) => (s.circuitBreaker ? { ...s, breakerShared: { buffer, slot: slots[s.name] } } : s));
    // A route gets its slot only: routes travel in routeData, the buffer with breakerState.
    const routes = config.routes.map((r) => {
      const split = r.split?.members.some((m) => m.circuitBreaker)
        ? { ...r.split, members: r.split.members.map((m) => (m.circuitBreaker
          ? { ...m, breakerSlot: slots[routeOverrideKey(memberPolicyName(r.name, config.services[m.service].name))] } : m)) }
        : r.split;
      return r.circuitBreaker ? { ...r, breakerSlot: slots[routeOverrideKey(r.name)] } : split !== r.split ? { ...r, split } : r;
    });
    const breakerState: CompiledBreakerState = { buffer, slots };
    return { ...config, services, routes, breakerState };
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

  /** Every breaker of the current config: the services', then the routes' own. */
  status(): BreakerStatus[] {
    return this.attached.map((b) => this.statusAt(b));
  }

  /** The service's own breaker (null without one). */
  statusOf(service: string): BreakerStatus | null {
    const b = this.attached.find((x) => x.route === null && x.service === service);
    return b === undefined ? null : this.statusAt(b);
  }

  /** The own breakers of the service's routes. */
  routesOf(service: string): BreakerStatus[] {
    return this.attached.filter((x) => x.route !== null && x.service === service).map((b) => this.statusAt(b));
  }

  private statusAt(b: Attached): BreakerStatus {
    const slot = this.slots.get(b.key)!;
    const r = (f: number) => this.read(slot, f);
    return {
      service: b.service,
      route: b.route,
      state: BREAKER_STATE_NAMES[r(SLOT.STATE)] ?? 'closed',
      in_flight: r(SLOT.IN_FLIGHT),
      pending: r(SLOT.PENDING),
      consecutive_failures: r(SLOT.CONSECUTIVE),
      transitions: { closed: r(SLOT.TO_CLOSED), open: r(SLOT.TO_OPEN), half_open: r(SLOT.TO_HALF_OPEN) },
      rejected: { open: r(SLOT.REJECTED_OPEN), overflow: r(SLOT.REJECTED_OVERFLOW) },
      fallbacks_served: r(SLOT.FALLBACKS),
    };
  }

  // Values for the metrics (observability.ts registers them). A service's breaker is labelled
  // {service}, a route's own {service, route}: one series set per breaker in the config, so
  // the cardinality is bounded by the config (the routes that set circuit_breaker), never by
  // traffic.

  stateValues(): { labels: Record<string, string>; value: number }[] {
    return this.status().map((b) => ({ labels: labelsOf(b), value: BREAKER_STATE_NAMES.indexOf(b.state) }));
  }

  transitionValues(): { labels: Record<string, string>; value: number }[] {
    return this.status().flatMap((b) => (['closed', 'open', 'half_open'] as const).map((to) => ({ labels: { ...labelsOf(b), to }, value: b.transitions[to] })));
  }

  rejectedValues(): { labels: Record<string, string>; value: number }[] {
    return this.status().flatMap((b) => [
      { labels: { ...labelsOf(b), reason: 'open' }, value: b.rejected.open },
      { labels: { ...labelsOf(b), reason: 'overflow' }, value: b.rejected.overflow },
    ]);
  }

  fallbackValues(): { labels: Record<string, string>; value: number }[] {
    return this.status().map((b) => ({ labels: labelsOf(b), value: b.fallbacks_served }));
  }
}

function labelsOf(b: BreakerStatus): Record<string, string> {
  return b.route === null ? { service: b.service } : { service: b.service, route: b.route };
}
