// Percent-decoding of path segments, query values and grpc-message (RFC 3986 / gRPC spec),
// with a fatal UTF-8 decoder: invalid escapes or bytes are an error, never U+FFFD.
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
