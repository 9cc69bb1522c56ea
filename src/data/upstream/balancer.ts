// Load balancing over a service's targets, per worker.
//  - round_robin: strict rotation.
//  - least_request: power of two choices: two distinct random targets, the one with fewer
//    requests in flight wins (ties to the first). Near-optimal spread without a global scan.
import type { Picker } from '../request-context.js';

export type { Picker } from '../request-context.js';

export function roundRobin(): Picker {
  let next = 0;
  return (targets) => {
    const t = targets[next];
    next = next + 1 === targets.length ? 0 : next + 1;
    return t;
  };
}

export function leastRequest(random: () => number = Math.random): Picker {
  return (targets) => {
    const n = targets.length;
    if (n === 1) return targets[0];
    const a = (random() * n) | 0;
    let b = (random() * (n - 1)) | 0;
    if (b >= a) b++;
    return targets[b].inFlight < targets[a].inFlight ? targets[b] : targets[a];
  };
}
