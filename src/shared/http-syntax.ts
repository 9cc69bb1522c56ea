// HTTP/1.1 syntax (RFC 9110 / 9112) for everything Lobby writes to an upstream socket.
//
// Text handed to us by uWebSockets.js is not bytes: the bundled build decodes the URL,
// the query and the header values it iterates (`req.forEach`) as UTF-8. Writing such a
// string with the 'latin1' encoding keeps only the low byte of each character, so
// U+010D U+010A become CR LF: a request split in two at the upstream. Lobby therefore
// keeps every value that goes upstream as a *byte string*: one character per byte, each
// at most 0xFF, made from the UTF-8 of the text (`toByteString`). A byte string written as
// 'latin1' is exactly its bytes; the checks below then decide which bytes may be sent.

// Regular expressions rather than charCodeAt loops: V8 compiles them to native code, which
// scans a header value several times faster (native-bench/request-headers.bench.ts).
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Anything but HTAB, SP, visible ASCII and obs-text (0x80-0xFF). */
const NOT_FIELD_BYTE = /[^\t\x20-\x7e\x80-\xff]/;
const NOT_ASCII = /[^\x00-\x7f]/;

/** A non-empty RFC 9110 token (a method or a header name). */
export function isToken(s: string): boolean {
  return TOKEN.test(s);
}

// Header names repeat from request to request (user-agent, accept, the gateway's own, an
// upstream's): a name checked once is remembered, so the check costs a Set lookup instead of
// a scan. Only names that passed are kept, and the set is bounded.
const tokenNames = new Set<string>();
const MAX_REMEMBERED_NAMES = 512;

/** isToken, remembered for the names seen most: for header names and methods on hot paths. */
export function isHeaderName(name: string): boolean {
  if (tokenNames.has(name)) return true;
  if (!isToken(name)) return false;
  if (tokenNames.size < MAX_REMEMBERED_NAMES) tokenNames.add(name);
  return true;
}

/**
 * A field value as a byte string: HTAB, SP, visible ASCII and obs-text (0x80-0xFF).
 * CR, LF, NUL, the other controls and DEL are refused, and so is any character above
 * 0xFF (a value that was not made a byte string: it cannot be written as itself).
 */
export function isFieldValueBytes(s: string): boolean {
  return !NOT_FIELD_BYTE.test(s);
}

/** Whether `s` is all ASCII (then it is its own byte string). */
export function isAscii(s: string): boolean {
  return !NOT_ASCII.test(s);
}

/**
 * The UTF-8 bytes of `s` as a byte string (ASCII is returned as is, without allocation).
 * Lone surrogates become U+FFFD (EF BF BD), as any UTF-8 encoder does.
 */
export function toByteString(s: string): string {
  return NOT_ASCII.test(s) ? Buffer.from(s, 'utf8').toString('latin1') : s;
}

/**
 * A response header value from the fast upstream client (llhttp hands values over as byte
 * strings) in the form uWS writes as the same bytes: uWS encodes a JS string as UTF-8, which
 * would turn obs-text byte 0xE9 into C3 A9, so a non-ASCII value goes as a Buffer.
 */
export function asResponseBytes(value: string): string | Buffer {
  return NOT_ASCII.test(value) ? Buffer.from(value, 'latin1') : value;
}

const HEX = '0123456789ABCDEF';

/**
 * The code point at `i` of `s`; a lone surrogate (no UTF-8 form) reads as U+FFFD, as any
 * UTF-8 encoder writes it. A result above 0xFFFF took two UTF-16 units.
 */
export function codePointAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c < 0xd800 || c > 0xdfff) return c;
  const next = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
  return c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff ? 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00) : 0xfffd;
}

/** `%XX` escapes (upper-case hex) of the UTF-8 bytes of code point `cp` (> U+007F). */
export function utf8Escapes(cp: number): string {
  const e = (byte: number) => '%' + HEX[byte >> 4] + HEX[byte & 15];
  if (cp < 0x800) return e(0xc0 | (cp >> 6)) + e(0x80 | (cp & 63));
  if (cp < 0x10000) return e(0xe0 | (cp >> 12)) + e(0x80 | ((cp >> 6) & 63)) + e(0x80 | (cp & 63));
  return e(0xf0 | (cp >> 18)) + e(0x80 | ((cp >> 12) & 63)) + e(0x80 | ((cp >> 6) & 63)) + e(0x80 | (cp & 63));
}

/**
 * A request-target component (path or query) as visible ASCII: characters above 0x7E are
 * percent-encoded from their UTF-8 (what nginx forwards as raw bytes), so the target is
 * only bytes 0x21-0x7E. Null when it holds a space, a control character or DEL, which no
 * request-target may carry. ASCII input needing no change is returned as is.
 */
export function visibleAsciiTarget(s: string): string | null {
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) break;
  }
  if (i === s.length) return s;
  let out = s.slice(0, i);
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x20 && c < 0x7f) { out += s[i]; continue; }
    if (c <= 0x20 || c === 0x7f) return null;
    const cp = codePointAt(s, i);
    if (cp > 0xffff) i++;
    out += utf8Escapes(cp);
  }
  return out;
}

/**
 * Request headers the front door (src/data/front-door.ts) never forwards as the client sent
 * them: hop-by-hop and framing headers, Host, and the ones the gateway sets itself. Nothing
 * after the front door sees them in the request's header list, so config that would read
 * one there (a rate-limit `header:` key) is refused.
 */
export const GATEWAY_OWNED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  'host', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'expect',
  'content-length', 'transfer-encoding', 'proxy-authorization',
  'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-correlation-id', 'x-lobby-mirror',
]);

/** Marks a mirrored copy of a request (src/data/upstream/mirror.ts); the front door drops
 * every client copy, so an upstream can trust that only the gateway's copies carry it. */
export const MIRROR_HEADER = 'x-lobby-mirror';

/** A request-target the upstream may receive: bytes 0x21-0x7E only, starting with `/`. */
export function isVisibleAsciiTarget(s: string): boolean {
  if (s.charCodeAt(0) !== 0x2f) return false;
  for (let i = 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}
