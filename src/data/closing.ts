// Leaving the balancer: from SIGTERM/SIGINT on (the drain delay and the drain itself) every
// response tells its client `Connection: close`, so a keep-alive client reconnects, through an
// L4 balancer to another instance, after the response it got, instead of sending its next
// request on a connection this instance is about to close (a reset, a failed request). The
// control plane sets the control block's CLOSE_CONNECTIONS slot; a worker that replaces a
// crashed one reads the same block, so it closes its connections too.
import { CONTROL_SLOTS } from '../shared/control-block.js';

let control: Int32Array | null = null;

/** The worker's control block (workers/data-plane.ts); without one nothing ever closes. */
export function followControlBlock(view: Int32Array): void {
  control = view;
}

/** True once the instance is leaving: the response being written must close its connection. */
export function closingConnections(): boolean {
  return control !== null && Atomics.load(control, CONTROL_SLOTS.CLOSE_CONNECTIONS) !== 0;
}
