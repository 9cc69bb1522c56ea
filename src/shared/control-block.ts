// The control block: a small SharedArrayBuffer every worker gets at start. The control
// plane stores the published generation number here with Atomics; workers read it once
// per request (one Atomics.load) and switch to that generation's prepared tables, so a
// publish takes effect on every worker for the very next request, with no message in
// the request path.
export const CONTROL_SLOTS = {
  /** Generation number that new requests must use. */
  PUBLISHED_GENERATION: 0,
  /** Nonzero once SIGTERM/SIGINT came: every response closes its connection (src/data/closing.ts). */
  CLOSE_CONNECTIONS: 1,
} as const;
const SLOT_COUNT = 8;

export function createControlBlock(): SharedArrayBuffer {
  return new SharedArrayBuffer(SLOT_COUNT * Int32Array.BYTES_PER_ELEMENT);
}
