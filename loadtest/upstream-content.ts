// What the static upstream answers, shared by the nginx upstream config and the uWebSockets.js fallback
// so both serve byte-identical responses.

/** Every path except LARGE_BODY_PATH, any method: a ~100-byte JSON document. */
export const SMALL_BODY = '{"service":"lobby-loadtest-upstream","status":"ok","items":[1,2,3,4,5],"note":"static response"}\n';

/** The download scenario's path: a LARGE_BODY_BYTES body. */
export const LARGE_BODY_PATH = '/1m';
export const LARGE_BODY_BYTES = 1024 * 1024;

/** Deterministic, incompressible-looking content (not all zeros, so nothing along the way can shortcut it). */
export function largeBody(): Buffer {
  const body = Buffer.allocUnsafe(LARGE_BODY_BYTES);
  let state = 0x2545f491;
  for (let i = 0; i < body.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    body[i] = 0x21 + ((state >>> 0) % 94); // printable ASCII
  }
  return body;
}
