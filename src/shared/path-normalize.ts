// Path normalization, done once per request before routing, so that a route can only be
// reached by a path that really is under it: `/v1/users/../admin`, `/v1/users/%2e%2e/admin`
// and `/v1//users` all become what an upstream would resolve them to.
//
// Rules (RFC 3986 §6.2.2, as Envoy's normalize_path + merge_slashes):
//  - the path must start with `/` and contain only URI path characters (RFC 3986 pchar + `/`);
//    anything else (controls, space, `\`, non-ASCII, `#`) makes the request invalid;
//  - percent-escapes must be two hex digits; escapes of unreserved characters
//    (ALPHA DIGIT - . _ ~) are decoded, all others are kept with upper-case hex
//    (`%2f` stays an escaped byte and is never a separator);
//  - runs of `/` are merged;
//  - `.` and `..` segments are removed (`..` above the root stays at the root).

const enum C {
  SLASH = 0x2f, DOT = 0x2e, PERCENT = 0x25,
}

// 1 = allowed as-is in a path (pchar without `%`, plus `/`).
const PATH_CHAR = new Uint8Array(128);
for (const ch of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/") {
  PATH_CHAR[ch.charCodeAt(0)] = 1;
}
const UNRESERVED = new Uint8Array(128);
for (const ch of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~') {
  UNRESERVED[ch.charCodeAt(0)] = 1;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * Normalized form of a request path (no query string), or null when the path is invalid.
 * Hot path: a path that needs no change is returned as the same string, without allocation.
 */
export function normalizePath(path: string): string | null {
  const len = path.length;
  if (len === 0 || path.charCodeAt(0) !== C.SLASH) return null;
  let clean = true;
  let prev = 0;
  for (let i = 0; i < len; i++) {
    const c = path.charCodeAt(i);
    if (c === C.PERCENT) { clean = false; continue; }
    if (c >= 128 || PATH_CHAR[c] === 0) return null;
    // `//`, `/.` (a possible dot segment) need the slow path.
    if (prev === C.SLASH && (c === C.SLASH || c === C.DOT)) clean = false;
    prev = c;
  }
  return clean ? path : normalizeSlow(path);
}

function normalizeSlow(path: string): string | null {
  // 1. Decode unreserved escapes, upper-case the others, validate.
  let decoded = '';
  const len = path.length;
  for (let i = 0; i < len; i++) {
    const c = path.charCodeAt(i);
    if (c !== C.PERCENT) { decoded += path[i]; continue; }
    if (i + 2 >= len) return null;
    const hi = hexValue(path.charCodeAt(i + 1));
    const lo = hexValue(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return null;
    const byte = hi * 16 + lo;
    if (byte < 128 && UNRESERVED[byte] === 1) decoded += String.fromCharCode(byte);
    else decoded += '%' + path[i + 1].toUpperCase() + path[i + 2].toUpperCase();
    i += 2;
  }
  // 2. Split into segments, merging slashes and resolving dot segments.
  const out: string[] = [];
  const parts = decoded.split('/');
  const endsWithSlash = decoded.length > 1 && decoded.charCodeAt(decoded.length - 1) === C.SLASH;
  let trailingDir = false;
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i];
    if (seg === '' ) continue;
    if (seg === '.') { trailingDir = true; continue; }
    if (seg === '..') { out.pop(); trailingDir = true; continue; }
    out.push(seg);
    trailingDir = false;
  }
  let result = '/' + out.join('/');
  if ((endsWithSlash || trailingDir) && out.length > 0) result += '/';
  return result;
}
