// X-Correlation-Id: a client's id is kept when it is safe to log and forward, otherwise
// the gateway mints one. Bounded length and a conservative charset keep log injection and
// header smuggling out (no spaces, quotes, commas or control characters).
import { randomFillSync } from 'node:crypto';

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

// Minting by hand rather than crypto.randomUUID(): Node's builds the 36 characters from 20
// concatenated pieces (a cons-string tree of about 470 bytes per id, the largest allocation of
// the plain proxy path after the request itself: sampling heap profile of a worker under load);
// this writes the hex into one reused buffer and makes one flat 36-byte string. The
// randomness is the same: crypto.randomFillSync (the CSPRNG) in batches of 256 ids.
const POOL_IDS = 256;
const pool = Buffer.alloc(16 * POOL_IDS);
let poolAt = pool.length;
const text = Buffer.alloc(36);
const HEX = Buffer.from('0123456789abcdef', 'latin1');
/** Where byte i of the 16 goes in the 8-4-4-4-12 text. */
const TEXT_AT = Uint8Array.from([0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34]);
text[8] = text[13] = text[18] = text[23] = 0x2d;

/** A new id: a random (v4) UUID, RFC 9562 section 5.4. */
export function newCorrelationId(): string {
  if (poolAt === pool.length) { randomFillSync(pool); poolAt = 0; }
  const at = poolAt;
  poolAt += 16;
  pool[at + 6] = (pool[at + 6] & 0x0f) | 0x40; // version 4
  pool[at + 8] = (pool[at + 8] & 0x3f) | 0x80; // variant 10
  for (let i = 0; i < 16; i++) {
    const b = pool[at + i];
    const t = TEXT_AT[i];
    text[t] = HEX[b >> 4];
    text[t + 1] = HEX[b & 15];
  }
  return text.toString('latin1', 0, 36);
}

/** The id to use for a request given the client's header value ('' when absent). */
export function correlationIdFor(clientValue: string): string {
  return clientValue !== '' && isValidCorrelationId(clientValue) ? clientValue : newCorrelationId();
}
