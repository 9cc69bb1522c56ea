// X-Correlation-Id: a client's id is kept when it is safe to log and forward, otherwise
// the gateway mints one. Bounded length and a conservative charset keep log injection and
// header smuggling out (no spaces, quotes, commas or control characters).
import { randomUUID } from 'node:crypto';

export const CORRELATION_HEADER = 'x-correlation-id';
/** Longest client id kept (the regex below encodes it). */
export const MAX_CORRELATION_ID_LENGTH = 128;

// A-Z a-z 0-9 - _ . : / + = (UUIDs, ULIDs, base64/base64url, W3C trace ids). A regex is as
// fast as a hand-written char-table scan here (native-bench/correlation-id.bench.ts).
const VALID_ID = /^[A-Za-z0-9\-_.:/+=]{1,128}$/;

/** Whether a client-sent correlation id may be kept as is. */
export function isValidCorrelationId(id: string): boolean {
  return VALID_ID.test(id);
}

/** A new id: a random (v4) UUID. Node batches the randomness, so this is cheap. */
export function newCorrelationId(): string {
  return randomUUID();
}

/** The id to use for a request given the client's header value ('' when absent). */
export function correlationIdFor(clientValue: string): string {
  return clientValue !== '' && isValidCorrelationId(clientValue) ? clientValue : randomUUID();
}
