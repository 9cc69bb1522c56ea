// Request-side helpers of the auth filters: removing spoofable identity headers, finding
// the bearer token (Authorization, then an optional cookie or query parameter), and the
// scope check. All work on RequestContext.headers, the flat [name, value, ...] list of
// forwarded headers whose names are lower-case (uWS gives them so).

import { isBase64url } from '../../shared/jwk.js';

/** Identity header names to remove, with a length bitmask that rejects most names without hashing. */
export interface StripSet {
  readonly names: ReadonlySet<string>;
  /** Bit (len & 31) set for every name length in `names`. */
  readonly lengths: number;
}

export function stripSet(names: readonly string[]): StripSet {
  let lengths = 0;
  for (const n of names) lengths |= 1 << (n.length & 31);
  return { names: new Set(names), lengths };
}

/** Removes every header in `strip` (all copies). Hot path: one pass, nothing allocated. */
export function stripHeaders(h: string[], strip: StripSet): void {
  const { names, lengths } = strip;
  let w = 0;
  for (let r = 0; r < h.length; r += 2) {
    const name = h[r];
    if ((lengths & (1 << (name.length & 31))) !== 0 && names.has(name)) continue;
    if (w !== r) { h[w] = name; h[w + 1] = h[r + 1]; }
    w += 2;
  }
  if (w !== h.length) h.length = w;
}

/** Returned by takeAuthorization when the request has more than one Authorization header. */
export const MULTIPLE = 1 as const;

/**
 * Removes the identity headers in `strip` and finds the Authorization header in the same
 * pass. Returns its value, null when absent, MULTIPLE when repeated (an ambiguous request).
 * Hot path: one pass, nothing allocated.
 */
export function takeAuthorization(h: string[], strip: StripSet): string | null | typeof MULTIPLE {
  const { names, lengths } = strip;
  let auth: string | null = null;
  let count = 0;
  let w = 0;
  for (let r = 0; r < h.length; r += 2) {
    const name = h[r];
    const len = name.length;
    if (len === 13 && name === 'authorization') {
      auth = h[r + 1];
      count++;
    } else if ((lengths & (1 << (len & 31))) !== 0 && names.has(name)) continue;
    if (w !== r) { h[w] = name; h[w + 1] = h[r + 1]; }
    w += 2;
  }
  if (w !== h.length) h.length = w;
  return count > 1 ? MULTIPLE : auth;
}

/** Removes every header `name` (lower-case). */
export function removeHeader(h: string[], name: string): void {
  let w = 0;
  for (let r = 0; r < h.length; r += 2) {
    if (h[r] === name) continue;
    if (w !== r) { h[w] = h[r]; h[w + 1] = h[r + 1]; }
    w += 2;
  }
  if (w !== h.length) h.length = w;
}

/** The token of an `Authorization: Bearer <token>` value (scheme case-insensitive), else null. */
export function bearerToken(value: string): string | null {
  // "bearer " with the scheme in any case (| 0x20 lower-cases ASCII letters), no allocation.
  if (value.length < 8 || value.charCodeAt(6) !== 0x20 ||
      (value.charCodeAt(0) | 0x20) !== 0x62 || (value.charCodeAt(1) | 0x20) !== 0x65 || (value.charCodeAt(2) | 0x20) !== 0x61 ||
      (value.charCodeAt(3) | 0x20) !== 0x72 || (value.charCodeAt(4) | 0x20) !== 0x65 || (value.charCodeAt(5) | 0x20) !== 0x72) return null;
  let start = 7;
  while (start < value.length && value.charCodeAt(start) === 0x20) start++;
  let end = value.length;
  while (end > start && (value.charCodeAt(end - 1) === 0x20 || value.charCodeAt(end - 1) === 0x09)) end--;
  if (start === end) return null;
  const token = start === 7 && end === value.length ? value.slice(7) : value.slice(start, end);
  // token68: no spaces inside.
  return token.indexOf(' ') === -1 ? token : null;
}

/** Value of cookie `name` in the request's Cookie header(s), or null. */
export function cookieValue(h: readonly string[], name: string): string | null {
  for (let r = 0; r < h.length; r += 2) {
    if (h[r] !== 'cookie') continue;
    for (const part of h[r + 1].split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      if (part.slice(0, eq).trim() !== name) continue;
      let v = part.slice(eq + 1).trim();
      if (v.length >= 2 && v.charCodeAt(0) === 0x22 && v.charCodeAt(v.length - 1) === 0x22) v = v.slice(1, -1);
      return v === '' ? null : v;
    }
  }
  return null;
}

/** Value of query parameter `name` (percent-decoded), or null. */
export function queryValue(query: string, name: string): string | null {
  if (query === '') return null;
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq) !== name) continue;
    const raw = pair.slice(eq + 1);
    if (raw === '') return null;
    try {
      return decodeURIComponent(raw.replace(/\+/g, ' '));
    } catch {
      return null;
    }
  }
  return null;
}

/** Whether `granted` covers every scope in `required`. */
export function hasScopes(granted: readonly string[], required: readonly string[]): boolean {
  for (let i = 0; i < required.length; i++) {
    if (!granted.includes(required[i])) return false;
  }
  return true;
}

/**
 * Whether `token` is shaped as a JWS compact serialization: three non-empty base64url
 * segments (RFC 7515 §7.1). On a route with a JWT and an introspection provider, such a token
 * is verified locally and any other is introspected. Nothing allocated.
 */
export function isJwsCompact(token: string): boolean {
  const d1 = token.indexOf('.');
  if (d1 <= 0) return false;
  const d2 = token.indexOf('.', d1 + 1);
  if (d2 < 0 || d2 === d1 + 1 || d2 === token.length - 1 || token.indexOf('.', d2 + 1) !== -1) return false;
  return isBase64url(token, 0, d1) && isBase64url(token, d1 + 1, d2) && isBase64url(token, d2 + 1, token.length);
}
