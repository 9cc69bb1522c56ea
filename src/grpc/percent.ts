// Percent-decoding of path segments and query values (RFC 3986), with a fatal UTF-8 decoder:
// invalid escapes or bytes are an error, never U+FFFD; and of grpc-message (the gRPC spec),
// to bytes, where nothing is an error.
const fatal = new TextDecoder('utf-8', { fatal: true });

export class PercentError extends Error {}

/** Decodes %XX escapes; `keepSlash` leaves %2F / %2f as they are. Throws PercentError. */
export function decodePercent(s: string, keepSlash: boolean, plusAsSpace = false): string {
  if (!s.includes('%') && !(plusAsSpace && s.includes('+'))) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new PercentError(`invalid percent escape in ${JSON.stringify(s)}`);
      const b = parseInt(hex, 16);
      if (keepSlash && b === 0x2f) bytes.push(0x25, hex.charCodeAt(0), hex.charCodeAt(1));
      else bytes.push(b);
      i += 2;
    } else if (plusAsSpace && c === 0x2b) {
      bytes.push(0x20);
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      for (const b of Buffer.from(s[i], 'utf8')) bytes.push(b);
    }
  }
  try {
    return fatal.decode(Uint8Array.from(bytes));
  } catch {
    throw new PercentError(`percent escapes in ${JSON.stringify(s)} are not UTF-8`);
  }
}

/** The value of hex digit `c` (a char code), or -1. */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x57 : -1;
}

/**
 * grpc-message as it travels (PROTOCOL-HTTP2.md, Status-Message: percent-encoded UTF-8),
 * decoded once, to bytes. `raw` is a byte string (node:http2 reads a header value as latin1:
 * one character per byte). Each valid %XX is its byte; a broken escape stays as its
 * characters, as grpc-go and grpc-java keep it (the spec: never an error, never thrown away);
 * any other byte is itself, a raw byte above 0x7F too (the spec allows none, a server may send
 * one): never read as a character and encoded again. The bytes become text (UTF-8, U+FFFD for
 * what is not UTF-8) only where they go into JSON.
 */
export function decodeGrpcMessage(raw: string): Buffer {
  if (!raw.includes('%')) return Buffer.from(raw, 'latin1');
  const out = Buffer.allocUnsafe(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25 && i + 2 < raw.length) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) { out[n++] = hi * 16 + lo; i += 2; continue; }
    }
    out[n++] = c;
  }
  return out.subarray(0, n);
}
