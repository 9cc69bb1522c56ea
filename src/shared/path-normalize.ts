// Path normalization, done once per request before routing, so that a route can only be
// reached by a path that really is under it, and so that the path forwarded upstream cannot
// be resolved outside the route by an upstream that decodes it once more (nginx, Tomcat,
// Spring): `/v1/users/../admin`, `/v1/users/%2e%2e/admin` and `/v1//users` all become what
// an upstream would resolve them to, and what an upstream could resolve differently is refused.
//
// Rules (RFC 3986 §6.2.2, as Envoy's normalize_path + merge_slashes, plus the refusals below):
//  - the path must start with `/` and contain only URI path characters (RFC 3986 pchar + `/`)
//    or characters above U+007E; controls, DEL, space, `\`, `#` make the request invalid;
//  - characters above U+007E are percent-encoded from their UTF-8 bytes (upper-case hex), so
//    the upstream request-target is visible ASCII; a lone surrogate (no UTF-8 form) becomes
//    U+FFFD (%EF%BF%BD), as Node's own UTF-8 encoder does;
//  - percent-escapes must be two hex digits; escapes of unreserved characters
//    (ALPHA DIGIT - . _ ~) are decoded, all others are kept with upper-case hex;
//  - `%2F` and `%5C` (escaped `/` and `\`) stay escaped bytes, never separators, unless
//    `unescapeSlashes` is set: then both are decoded to `/` before the steps below
//    (server.escaped_slashes, applied by src/data/escaped-slashes.ts);
//  - always refused: `%00`; `%C0`/`%C1`, `%E0` + `%80`-`%9F`, `%F0` + `%80`-`%8F` and
//    `%F5`-`%FF` (never valid UTF-8: the overlong `.` `/` `\` some decoders accept);
//    `%25` followed by an escape of NUL, `%`, `.`, `/`, `;`, `\`, C0 or C1 (`%252e`: one
//    more decode gives `%2e`); a segment that is `.` or `..` followed by path parameters (`..;x`, `.;x`, `..%3Bx`: Tomcat and Spring read `..;x` as `..`);
//  - runs of `/` are merged;
//  - `.` and `..` segments are removed (`..` above the root stays at the root).

import { codePointAt, utf8Escapes } from './http-syntax.js';

const enum C {
  SLASH = 0x2f, DOT = 0x2e, PERCENT = 0x25, SEMICOLON = 0x3b, TILDE = 0x7e,
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
/** Bytes whose escape may not follow `%25`: a second decode would turn them into a separator, a dot, a NUL or another escape. */
const NOT_AFTER_PERCENT = new Uint8Array(256);
for (const byte of [0x00, 0x25, 0x2e, 0x2f, 0x3b, 0x5c, 0xc0, 0xc1]) NOT_AFTER_PERCENT[byte] = 1;

const HEX = '0123456789ABCDEF';

export function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

let escapedSlash = false;

/**
 * Whether the path the last normalizePath() call returned contains `%2F` or `%5C` (false
 * after a call with `unescapeSlashes`). Read right after the call; lets the common path skip
 * a second scan.
 */
export function hadEscapedSlash(): boolean {
  return escapedSlash;
}

/**
 * Normalized form of a request path (no query string), or null when the path is invalid.
 * Hot path: a path that needs no change is returned as the same string, without allocation.
 */
export function normalizePath(path: string, unescapeSlashes = false): string | null {
  escapedSlash = false;
  const len = path.length;
  if (len === 0 || path.charCodeAt(0) !== C.SLASH) return null;
  let clean = true;
  let prev = 0;
  for (let i = 0; i < len; i++) {
    const c = path.charCodeAt(i);
    // Escapes and non-ASCII (to be percent-encoded) need the slow path; DEL is not a path char.
    if (c === C.PERCENT || c > 0x7f) { clean = false; continue; }
    if (PATH_CHAR[c] === 0) return null;
    // `//`, `/.` (a possible dot segment) need the slow path.
    if (prev === C.SLASH && (c === C.SLASH || c === C.DOT)) clean = false;
    prev = c;
  }
  return clean ? path : normalizeSlow(path, unescapeSlashes);
}

function normalizeSlow(path: string, unescapeSlashes: boolean): string | null {
  // 1. Decode unreserved escapes (and %2F/%5C when unescaping), upper-case the others,
  //    percent-encode non-ASCII, validate.
  let decoded = '';
  let sawPercent25 = false;
  let lastEscapeAt = -10;
  let lastEscapeByte = -1;
  const len = path.length;
  for (let i = 0; i < len; i++) {
    const c = path.charCodeAt(i);
    if (c > C.TILDE) {
      const cp = codePointAt(path, i);
      if (cp > 0xffff) i++;
      decoded += utf8Escapes(cp);
      continue;
    }
    if (c !== C.PERCENT) { decoded += path[i]; continue; }
    if (i + 2 >= len) return null;
    const hi = hexValue(path.charCodeAt(i + 1));
    const lo = hexValue(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return null;
    const byte = hi * 16 + lo;
    // The escape right before this one (adjacent), for the overlong forms below.
    const lead = lastEscapeAt === i - 3 ? lastEscapeByte : -1;
    lastEscapeAt = i;
    lastEscapeByte = byte;
    i += 2;
    if (byte === 0 || byte === 0xc0 || byte === 0xc1 || byte >= 0xf5) return null;
    // Overlong 3- and 4-byte forms (`%E0%80%AE` is a `.` to a lenient decoder): never valid UTF-8.
    if ((lead === 0xe0 && byte >= 0x80 && byte < 0xa0) || (lead === 0xf0 && byte >= 0x80 && byte < 0x90)) return null;
    if (byte < 128 && UNRESERVED[byte] === 1) {
      decoded += String.fromCharCode(byte);
    } else if (byte === 0x2f || byte === 0x5c) {
      if (unescapeSlashes) decoded += '/';
      else { decoded += byte === 0x2f ? '%2F' : '%5C'; escapedSlash = true; }
    } else {
      if (byte === 0x25) sawPercent25 = true;
      decoded += '%' + HEX[hi] + HEX[lo];
    }
  }
  // `%25` is checked on the decoded text: `%25%32%65` is `%252e` once `%32%65` is decoded.
  if (sawPercent25 && hasDoubleEscape(decoded)) return null;
  // 2. Split into segments, merging slashes and resolving dot segments.
  const out: string[] = [];
  const parts = decoded.split('/');
  const endsWithSlash = decoded.length > 1 && decoded.charCodeAt(decoded.length - 1) === C.SLASH;
  let trailingDir = false;
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i];
    if (seg === '') continue;
    if (seg === '.') { trailingDir = true; continue; }
    if (seg === '..') { out.pop(); trailingDir = true; continue; }
    if (seg.charCodeAt(0) === C.DOT && isDotPiece(seg, 0, seg.length)) return null;
    out.push(seg);
    trailingDir = false;
  }
  let result = '/' + out.join('/');
  if ((endsWithSlash || trailingDir) && out.length > 0) result += '/';
  return result;
}

/** `%25` followed by an escape that a second decode would make dangerous (NOT_AFTER_PERCENT). */
function hasDoubleEscape(text: string): boolean {
  for (let i = text.indexOf('%25'); i >= 0; i = text.indexOf('%25', i + 3)) {
    const hi = hexValue(text.charCodeAt(i + 3));
    const lo = hexValue(text.charCodeAt(i + 4));
    if (hi >= 0 && lo >= 0 && NOT_AFTER_PERCENT[hi * 16 + lo] === 1) return true;
  }
  return false;
}

/**
 * Whether text[start, end) is `.` or `..` once path parameters (from `;` or `%3B` on) are
 * cut off, i.e. a dot segment to Tomcat, Spring or an upstream that decodes once more.
 */
function isDotPiece(text: string, start: number, end: number): boolean {
  let cut = end;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === C.SEMICOLON || (c === C.PERCENT && text.charCodeAt(i + 1) === 0x33 && text.charCodeAt(i + 2) === 0x42)) {
      cut = i;
      break;
    }
  }
  const n = cut - start;
  if (n === 1) return text.charCodeAt(start) === C.DOT;
  return n === 2 && text.charCodeAt(start) === C.DOT && text.charCodeAt(start + 1) === C.DOT;
}

/**
 * For a normalized path kept with its escaped slashes (`escaped_slashes: keep`): true when an
 * upstream that decodes `%2F`/`%5C` into separators still sees no dot segment, so it cannot
 * resolve the path above where the gateway routed it (`..%2F`, `%2F.%2F`, `%5C..` are refused).
 */
export function escapedSlashesConfined(path: string): boolean {
  const len = path.length;
  let start = 1;
  for (let i = 1; i <= len; i++) {
    let sep = 0;
    if (i === len || path.charCodeAt(i) === C.SLASH) sep = 1;
    else if (path.charCodeAt(i) === C.PERCENT) {
      // Normalized escapes are upper-case: %2F and %5C only.
      const a = path.charCodeAt(i + 1), b = path.charCodeAt(i + 2);
      if ((a === 0x32 && b === 0x46) || (a === 0x35 && b === 0x43)) sep = 3;
    }
    if (sep === 0) continue;
    if (isDotPiece(path, start, i)) return false;
    start = i + sep;
    i += sep - 1;
  }
  return true;
}
