// X-Correlation-Id: a client's id is kept when it is safe to log and forward, otherwise
// the gateway mints one. Bounded length and a conservative charset keep log injection and
// header smuggling out (no spaces, quotes, commas or control characters).
import { randomUUID } from 'node:crypto';

export const CORRELATION_HEADER = 'x-correlation-id';
export const MAX_CORRELATION_ID_LENGTH = 128;

// 1 = allowed: A-Z a-z 0-9 - _ . : / + = (UUIDs, ULIDs, base64/base64url, W3C trace ids).
const ALLOWED = new Uint8Array(128);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:/+=') {
  ALLOWED[ch.charCodeAt(0)] = 1;
}

/** Whether a client-sent correlation id may be kept as is. */
export function isValidCorrelationId(id: string): boolean {
  const len = id.length;
  if (len === 0 || len > MAX_CORRELATION_ID_LENGTH) return false;
  for (let i = 0; i < len; i++) {
    const c = id.charCodeAt(i);
    if (c >= 128 || ALLOWED[c] === 0) return false;
  }
  return true;
}

/** A new id: a random (v4) UUID. Node batches the randomness, so this is cheap. */
export function newCorrelationId(): string {
  return randomUUID();
}

/** The id to use for a request given the client's header value ('' when absent). */
export function correlationIdFor(clientValue: string): string {
  return clientValue !== '' && isValidCorrelationId(clientValue) ? clientValue : randomUUID();
}
