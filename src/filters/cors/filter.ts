// The `cors` filter's runtime (phase `edge`, after ip-rules):
//   onRequest: the request's Origin (one pass over the headers) is matched against the route's
//     origins: a set lookup, the wildcards' prefix/suffix checks, then the anchored regexes. An
//     allowed origin is kept on the context (ctx.corsOrigin: `*` or the origin itself, which
//     the match has shown to be an origin's characters). A preflight (OPTIONS with Origin and
//     Access-Control-Request-Method) is answered here, 204, allowed or not: it never reaches
//     the upstream. Any other request goes on as usual, allowed or not.
//   onResponse (upstream responses and every local reply, so a 401 or 429 is readable by the
//     page): `Vary: Origin` unless the answer is `*`; an allowed origin gets
//     Access-Control-Allow-Origin and the block compile.ts built; every access-control-* header
//     the upstream sent is removed first (one pass), so none survives on any response.
import { NEXT, emptyReply, type Filter, type ResponseHead, type Verdict } from '../../data/chain.js';
import type { RequestContext } from '../../data/request-context.js';
import { methodBit } from '../../shared/methods.js';
import type { CorsFilterConfig } from './compile.js';
import { MAX_ORIGIN_LENGTH } from './limits.js';

const OPTIONS = methodBit('OPTIONS');
const ALLOW_ORIGIN = 'access-control-allow-origin';
const REQUEST_METHOD = 'access-control-request-method';

/** Characters of a serialized origin (scheme://host[:port], IPv6 in brackets): what may be echoed. */
function isOriginText(s: string, start: number): boolean {
  for (let i = start; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x3a || c === 0x2f ||
      c === 0x5b || c === 0x5d || c === 0x2b;
    if (!ok) return false;
  }
  return true;
}

/** A wildcard's label part: host characters, no empty label (the suffix starts with its dot). */
function isLabels(s: string, start: number, end: number): boolean {
  if (end <= start || s.charCodeAt(start) === 0x2e || s.charCodeAt(end - 1) === 0x2e) return false;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2e) { if (s.charCodeAt(i - 1) === 0x2e) return false; continue; }
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d)) return false;
  }
  return true;
}

class CorsFilter implements Filter {
  readonly name = 'cors';
  private readonly anyOrigin: boolean;
  private readonly exact: Set<string>;
  private readonly prefixes: string[];
  private readonly suffixes: string[];
  private readonly regex: RegExp[];
  private readonly preflight: readonly string[];
  private readonly actual: readonly string[];
  private readonly varyOrigin: boolean;

  constructor(config: CorsFilterConfig) {
    this.anyOrigin = config.anyOrigin;
    this.exact = new Set(config.exact);
    this.prefixes = config.wildcards.map((w) => w.prefix);
    this.suffixes = config.wildcards.map((w) => w.suffix);
    this.regex = config.regex.map((source) => new RegExp(source));
    this.preflight = config.preflight;
    this.actual = config.actual;
    this.varyOrigin = config.varyOrigin;
  }

  private allows(origin: string): boolean {
    if (this.anyOrigin) return true;
    if (origin.length > MAX_ORIGIN_LENGTH) return false;
    if (this.exact.has(origin)) return true;
    for (let i = 0; i < this.prefixes.length; i++) {
      const prefix = this.prefixes[i];
      const suffix = this.suffixes[i];
      if (origin.startsWith(prefix) && origin.endsWith(suffix) && isLabels(origin, prefix.length, origin.length - suffix.length)) return true;
    }
    for (let i = 0; i < this.regex.length; i++) {
      if (this.regex[i].test(origin)) return isOriginText(origin, 0);
    }
    return false;
  }

  // Hot path: one pass over the request headers; a set lookup for an exact origin.
  onRequest(ctx: RequestContext): Verdict {
    const h = ctx.headers;
    let origin = '';
    let origins = 0;
    let requestMethod = false;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i];
      if (name === 'origin') { origin = h[i + 1]; origins++; } else if (name === REQUEST_METHOD) requestMethod = true;
    }
    // Two Origin headers: no browser sends them; no CORS answer for either.
    if (origins !== 1) return NEXT;
    if (this.allows(origin)) ctx.corsOrigin = this.anyOrigin ? '*' : origin;
    if (ctx.methodBit === OPTIONS && requestMethod) {
      ctx.corsPreflight = true;
      return emptyReply(ctx, 204);
    }
    return NEXT;
  }

  // Hot path: a few header edits with strings made at compile time (and the request's origin).
  onResponse(ctx: RequestContext, head: ResponseHead): void {
    if (this.varyOrigin) head.append('vary', 'Origin');
    const origin = ctx.corsOrigin;
    if (ctx.corsPreflight) {
      if (origin === '') return; // the 204 had no headers but the other filters'
      head.append(ALLOW_ORIGIN, origin);
      const block = this.preflight;
      for (let i = 0; i < block.length; i += 2) head.append(block[i], block[i + 1]);
      return;
    }
    // One pass drops every access-control-* header the upstream sent (Allow-Private-Network too).
    head.removePrefixed('access-control-');
    if (origin === '') return;
    head.append(ALLOW_ORIGIN, origin);
    const block = this.actual;
    for (let i = 0; i < block.length; i += 2) head.append(block[i], block[i + 1]);
  }
}

export function buildCors(config: CorsFilterConfig): Filter {
  return new CorsFilter(config);
}
