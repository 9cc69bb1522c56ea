// Load balancing over a service's targets, per worker.
//  - round_robin: strict rotation.
//  - least_request: power of two choices: two distinct random targets, the one with fewer
//    requests in flight wins (ties to the first). Near-optimal spread without a global scan.
import type { Picker, RuntimeTarget } from '../request-context.js';

export type { Picker } from '../request-context.js';

/** A picker without health: it always has a target. */
export type PlainPicker = (targets: readonly RuntimeTarget[]) => RuntimeTarget;

export function roundRobin(): PlainPicker {
  let next = 0;
  return (targets) => {
    const t = targets[next];
    next = next + 1 === targets.length ? 0 : next + 1;
    return t;
  };
}

export function leastRequest(random: () => number = Math.random): PlainPicker {
  return (targets) => {
    const n = targets.length;
    if (n === 1) return targets[0];
    const a = (random() * n) | 0;
    let b = (random() * (n - 1)) | 0;
    if (b >= a) b++;
    return targets[b].inFlight < targets[a].inFlight ? targets[b] : targets[a];
  };
}

// Health-aware pickers, for a service with health_check or outlier (docs/resilience.md): a
// target whose byte in the health table's `down` array is not 0 is skipped. Healthy targets
// cost one byte read per pick and nothing is allocated; null when every target is down
// (proxy.ts noHealthyUpstream answers then).

/** round_robin over the targets that are up: the rotation moves past a down one. */
export function healthyRoundRobin(down: Uint8Array): Picker {
  let next = 0;
  return (targets) => {
    const n = targets.length;
    for (let i = 0; i < n; i++) {
      const t = targets[next];
      next = next + 1 === n ? 0 : next + 1;
      if (down[t.healthSlot] === 0) return t;
    }
    return null;
  };
}

/** least_request's two choices among the targets that are up; when both drawn are down,
 * the first one up from a random place (a uniform choice among them is not needed: it is rare). */
export function healthyLeastRequest(down: Uint8Array, random: () => number = Math.random): Picker {
  return (targets) => {
    const n = targets.length;
    const a = (random() * n) | 0;
    const ta = targets[a];
    if (n === 1) return down[ta.healthSlot] === 0 ? ta : null;
    let b = (random() * (n - 1)) | 0;
    if (b >= a) b++;
    const tb = targets[b];
    const upA = down[ta.healthSlot] === 0;
    const upB = down[tb.healthSlot] === 0;
    if (upA && upB) return tb.inFlight < ta.inFlight ? tb : ta;
    if (upA) return ta;
    if (upB) return tb;
    for (let i = 1; i < n; i++) {
      const t = targets[(a + i) % n];
      if (down[t.healthSlot] === 0) return t;
    }
    return null;
  };
}
