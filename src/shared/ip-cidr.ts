// IP addresses and CIDR ranges for `server.trusted_proxies` (client-IP extraction for rate
// limits and IP rules). Both families are held as four 32-bit words (IPv4 as ::ffff:a.b.c.d), so one
// comparison loop serves both and an IPv4-mapped IPv6 address matches an IPv4 range.
// Parsing is by char codes (no regex, no split) because it runs per request for requests
// whose sender is a trusted proxy.
import { hexValue } from './path-normalize.js';

/** A parsed address: four big-endian 32-bit words. Reused by the caller to avoid allocation. */
export type IpWords = Uint32Array;

export function ipWords(): IpWords {
  return new Uint32Array(4);
}

function parseIpv4Into(text: string, start: number, end: number, out: IpWords): boolean {
  let value = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = start; i <= end; i++) {
    const c = i === end ? 46 : text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || part > 255) return false;
      value = (value * 256 + part) >>> 0;
      parts++;
      part = 0;
      digits = 0;
      continue;
    }
    if (c < 48 || c > 57 || digits === 3) return false;
    part = part * 10 + (c - 48);
    digits++;
  }
  if (parts !== 4) return false;
  out[0] = 0; out[1] = 0; out[2] = 0xffff; out[3] = value;
  return true;
}

const groups = new Uint16Array(8);
const words16 = new Uint16Array(8);
const v4tail = new Uint32Array(4);

function parseIpv6Into(text: string, start: number, end: number, out: IpWords): boolean {
  let count = 0;
  let gap = -1;
  let i = start;
  if (end - start >= 2 && text.charCodeAt(i) === 58 && text.charCodeAt(i + 1) === 58) { gap = 0; i += 2; }
  while (i < end) {
    if (count === 8) return false;
    // An embedded IPv4 tail (::ffff:1.2.3.4).
    let dot = -1;
    for (let j = i; j < end && text.charCodeAt(j) !== 58; j++) if (text.charCodeAt(j) === 46) { dot = j; break; }
    if (dot >= 0) {
      if (count > 6) return false;
      if (!parseIpv4Into(text, i, end, v4tail)) return false;
      groups[count++] = v4tail[3] >>> 16;
      groups[count++] = v4tail[3] & 0xffff;
      i = end;
      break;
    }
    let value = 0;
    let digits = 0;
    while (i < end) {
      const d = hexValue(text.charCodeAt(i));
      if (d < 0) break;
      if (++digits > 4) return false;
      value = value * 16 + d;
      i++;
    }
    if (digits === 0) return false;
    groups[count++] = value;
    if (i === end) break;
    if (text.charCodeAt(i) !== 58) return false;
    i++;
    if (i < end && text.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = count;
      i++;
    } else if (i === end) {
      return false;
    }
  }
  if (gap < 0 && count !== 8) return false;
  if (gap >= 0 && count > 7) return false;
  const words = words16;
  words.fill(0);
  if (gap < 0) {
    words.set(groups.subarray(0, 8));
  } else {
    for (let k = 0; k < gap; k++) words[k] = groups[k];
    const tail = count - gap;
    for (let k = 0; k < tail; k++) words[8 - tail + k] = groups[gap + k];
  }
  for (let k = 0; k < 4; k++) out[k] = ((words[2 * k] << 16) | words[2 * k + 1]) >>> 0;
  return true;
}

/** Parses `text[start, end)` as an IPv4 or IPv6 address (brackets and a zone are not accepted). */
export function parseIpInto(text: string, out: IpWords, start = 0, end = text.length): boolean {
  while (start < end && text.charCodeAt(start) === 32) start++;
  while (end > start && text.charCodeAt(end - 1) === 32) end--;
  if (end - start < 2 || end - start > 45) return false;
  for (let i = start; i < end; i++) if (text.charCodeAt(i) === 58) return parseIpv6Into(text, start, end, out);
  return parseIpv4Into(text, start, end, out);
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

/**
 * Parses `text[start, end)` as a client address as proxies write it in X-Forwarded-For: an
 * address, `a.b.c.d:port`, `[v6]` or `[v6]:port` (the port is dropped), between optional
 * spaces. False for anything else (a zone, a name, a malformed address or port).
 */
export function parseHostInto(text: string, out: IpWords, start = 0, end = text.length): boolean {
  while (start < end && isSpace(text.charCodeAt(start))) start++;
  while (end > start && isSpace(text.charCodeAt(end - 1))) end--;
  if (start === end) return false;
  let addrEnd = end;
  if (text.charCodeAt(start) === 91 /* [ */) {
    const close = text.indexOf(']', start);
    if (close < 0 || close >= end) return false;
    if (close + 1 < end && (text.charCodeAt(close + 1) !== 58 || !isPort(text, close + 2, end))) return false;
    // Brackets hold IPv6 only (parseIpv6Into also takes ::ffff:a.b.c.d).
    return close - start - 1 >= 2 && close - start - 1 <= 45 && parseIpv6Into(text, start + 1, close, out);
  }
  let colons = 0;
  let colon = -1;
  for (let i = start; i < end; i++) if (text.charCodeAt(i) === 58) { colons++; colon = i; }
  if (colons === 1) { // a.b.c.d:port (an IPv6 address has at least two colons)
    if (!isPort(text, colon + 1, end)) return false;
    addrEnd = colon;
  }
  return parseIpInto(text, out, start, addrEnd);
}

function isPort(text: string, start: number, end: number): boolean {
  if (end - start < 1 || end - start > 5) return false;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return false;
    n = n * 10 + c;
  }
  return n <= 65535;
}

/**
 * The canonical text of an address, the rate-limit key of a client IP: an IPv4 address (also
 * IPv4-mapped IPv6, ::ffff:a.b.c.d) in dotted decimal, any other IPv6 address in RFC 5952 form
 * (lower case, no leading zeros, the first longest run of two or more zero groups as ::).
 */
export function formatIp(w: IpWords): string {
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) {
    const v = w[3];
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const g = words16;
  for (let k = 0; k < 4; k++) { g[2 * k] = w[k] >>> 16; g[2 * k + 1] = w[k] & 0xffff; }
  let best = -1;
  let bestLen = 1; // a single zero group is not compressed
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === best) { out += '::'; i += bestLen - 1; continue; }
    if (out !== '' && !out.endsWith(':')) out += ':';
    out += g[i].toString(16);
  }
  return out;
}

const keyScratch = ipWords();

/** The canonical address of `text[start, end)` (see parseHostInto, formatIp), or '' when it is not one. */
export function canonicalIp(text: string, start = 0, end = text.length): string {
  return parseHostInto(text, keyScratch, start, end) ? formatIp(keyScratch) : '';
}

/**
 * The key of a socket peer address as uWebSockets.js writes it: dotted IPv4 is canonical already
 * (kept as is: no work on the plain path); its IPv6 text (eight 4-digit groups, IPv4 clients of a
 * dual-stack listener as mapped addresses) is canonicalised, so a client has one key whether it
 * comes directly or through a trusted proxy.
 */
export function peerKey(peer: string): string {
  return peer.length <= 15 ? peer : canonicalIp(peer) || peer;
}

export interface Cidr {
  /** Network address words (already masked). */
  words: number[];
  /** Prefix length in the 128-bit space (an IPv4 /24 is 96 + 24). */
  bits: number;
}

/** `10.0.0.0/8`, `192.168.1.7` (= /32), `fd00::/8`, `::1`. Returns an error message or the range. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const words = ipWords();
  if (!parseIpInto(addr, words)) return 'must be an IP address or CIDR range like "10.0.0.0/8" or "fd00::/8"';
  const v4 = !addr.includes(':');
  const max = v4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const len = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(len) || Number(len) > max) return `prefix length must be 0..${max}`;
    bits = Number(len);
  }
  const total = v4 ? 96 + bits : bits;
  const masked = Array.from(words, (w, k) => maskWord(w, total - 32 * k));
  if (masked.some((w, k) => w !== words[k])) return `has host bits set: write the network address (${formatCidr(masked, bits, v4)})`;
  return { words: masked, bits: total };
}

function maskWord(word: number, bitsInWord: number): number {
  if (bitsInWord >= 32) return word >>> 0;
  if (bitsInWord <= 0) return 0;
  return (word & (0xffffffff << (32 - bitsInWord))) >>> 0;
}

function formatCidr(words: number[], bits: number, v4: boolean): string {
  if (v4) {
    const w = words[3];
    return `${w >>> 24}.${(w >>> 16) & 255}.${(w >>> 8) & 255}.${w & 255}/${bits}`;
  }
  const hex: string[] = [];
  for (const w of words) hex.push((w >>> 16).toString(16), (w & 0xffff).toString(16));
  return `${hex.join(':')}/${bits}`;
}

/** A set of CIDR ranges, matched by a linear scan (a handful of proxy ranges is the norm). */
export class CidrSet {
  private readonly nets: Uint32Array;
  private readonly bits: Uint8Array;
  private readonly scratch = ipWords();

  constructor(cidrs: readonly Cidr[]) {
    this.nets = new Uint32Array(cidrs.length * 4);
    this.bits = new Uint8Array(cidrs.length);
    cidrs.forEach((c, i) => { this.nets.set(c.words, i * 4); this.bits[i] = c.bits; });
  }

  get size(): number {
    return this.bits.length;
  }

  /** True when `text[start, end)` is an address (see parseHostInto) inside one of the ranges. */
  has(text: string, start = 0, end = text.length): boolean {
    if (this.bits.length === 0) return false;
    return parseHostInto(text, this.scratch, start, end) && this.hasWords(this.scratch);
  }

  /** True when the parsed address `w` is inside one of the ranges. */
  hasWords(w: IpWords): boolean {
    for (let i = 0; i < this.bits.length; i++) {
      let bits = this.bits[i];
      let k = 0;
      for (; k < 4; k++, bits -= 32) {
        if (bits <= 0) break;
        if (maskWord(w[k], bits) !== this.nets[i * 4 + k]) break;
      }
      if (k === 4 || bits <= 0) return true;
    }
    return false;
  }
}

const hopScratch = ipWords();

/**
 * The client address (canonical: formatIp) for a request from `peer` carrying `forwardedFor`
 * (the X-Forwarded-For hops, comma-separated, oldest first). Only when `peer` is a trusted proxy
 * is the header read: walking it from the right, every hop that is itself a trusted proxy is
 * skipped and the first one that is not is the client (nginx's real_ip_recursive). When every
 * hop is trusted, the leftmost is taken. An untrusted peer's header is ignored (anyone can send
 * one). A hop that is not an address (`hello`, `1.2.3`, an empty hop) ends the walk with the
 * peer itself, the proxy that sent it, as nginx and Envoy do: junk never becomes a key.
 */
export function clientAddress(peer: string, forwardedFor: string, trusted: CidrSet): string {
  if (forwardedFor === '' || !trusted.has(peer)) return peerKey(peer);
  return forwardedClientInto(forwardedFor, trusted, hopScratch) ? formatIp(hopScratch) : peerKey(peer);
}

/**
 * The client address of clientAddress() as parsed words in `out` (the IP rules compare it with
 * ranges, so it is not formatted); false when not even the peer is an address.
 */
export function clientAddressInto(peer: string, forwardedFor: string, trusted: CidrSet, out: IpWords): boolean {
  if (forwardedFor !== '' && trusted.has(peer) && forwardedClientInto(forwardedFor, trusted, out)) return true;
  return parseHostInto(peer, out);
}

/** The X-Forwarded-For walk of clientAddress (its one implementation): true with the client's
 * words in `out`, false when a hop is not an address (the peer is then the client). */
function forwardedClientInto(forwardedFor: string, trusted: CidrSet, out: IpWords): boolean {
  let end = forwardedFor.length;
  for (;;) {
    const comma = forwardedFor.lastIndexOf(',', end - 1);
    const start = comma + 1;
    if (!parseHostInto(forwardedFor, out, start, end)) return false;
    if (comma < 0 || !trusted.hasWords(out)) return true;
    end = comma;
  }
}
