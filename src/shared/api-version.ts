// API versioning: what both planes share. The `Accept` parser (RFC 9110 §12.5.1: media
// ranges, parameters, quoted strings, q-values), the compiled `versioning` section, and the
// version bits the route table's VERSION_MASK words use (src/shared/route-table.ts).
// docs/configuration.md#api-versioning.

/** Where a request's version came from (RequestContext.apiVersionSource). */
export const VERSION_SOURCE = {
  /** Versioning is off, or the route serves every version and the request named none. */
  NONE: 0,
  /** The request named none: `versioning.default`. */
  DEFAULT: 1,
  ACCEPT: 2,
  HEADER: 3,
  QUERY: 4,
  /** The route's own `version` (a path-versioned route: plain routing). */
  ROUTE: 5,
} as const;
export type VersionSourceCode = (typeof VERSION_SOURCE)[keyof typeof VERSION_SOURCE];
/** Names by source code, as logs and metrics may print them. */
export const VERSION_SOURCE_NAMES: readonly string[] = ['none', 'default', 'accept', 'header', 'query', 'route'];

/** The request-side sources a config may order (`versioning.sources`). */
export const REQUEST_SOURCES = ['accept', 'header', 'query'] as const;
export type RequestSource = (typeof REQUEST_SOURCES)[number];
export const SOURCE_CODE: Readonly<Record<RequestSource, VersionSourceCode>> = {
  accept: VERSION_SOURCE.ACCEPT, header: VERSION_SOURCE.HEADER, query: VERSION_SOURCE.QUERY,
};

/**
 * At most this many versions per config: each takes one bit of a route's 32-bit version mask,
 * and bit 31 stands for a version the config does not declare (so it matches only routes
 * without match.version, whose mask is -1). find-my-way caps its constraint bitmaps likewise.
 */
export const MAX_VERSIONS = 31;
/** Version index of a version the request names but the config does not declare. */
export const UNKNOWN_VERSION = 31;
/** Version names: `2`, `2.1`, `2024-01-01`, `beta` (lower-case: media types compare case-insensitively). */
export const VERSION_NAME = /^[a-z0-9][a-z0-9._-]{0,31}$/;

export function versionBit(index: number): number {
  return 1 << index; // index 31 gives the sign bit, which is fine for a mask AND
}

/** The compiled `versioning` section (CompiledConfig.versioning). Plain data. */
export interface CompiledVersioning {
  /** Request sources in the configured order. */
  sources: RequestSource[];
  /** The version header as configured (for Vary) and lower-case (for lookup). */
  header: string;
  headerLower: string;
  /** The query parameter name. */
  query: string;
  /** `company` of `application/vnd.company.v2+json`, lower-case; '' = only `version=` parameters. */
  vendor: string;
  /** Declared versions; index = bit in route version masks. */
  versions: string[];
  /** Index of `versioning.default`, or -1 (a request naming no version must name one). */
  defaultIndex: number;
  /** Some route has match.version (else nothing is derived per request). */
  constrained: boolean;
  /** Vary value by VERSION_SOURCE code ('' = none): versionVary(). */
  vary: string[];
}

/**
 * The Vary value for a version that came from `source`: every request header consulted to
 * find it, i.e. the header sources up to and including it (a cache must key on an earlier
 * source's absence too); for the default, all of them. The query is part of the URL: no Vary.
 */
export function versionVary(sources: readonly RequestSource[], header: string): string[] {
  const out = ['', '', '', '', '', ''];
  const seen: string[] = [];
  for (const source of sources) {
    if (source === 'accept') seen.push('Accept');
    if (source === 'header') seen.push(header);
    out[SOURCE_CODE[source]] = seen.join(', ');
  }
  out[VERSION_SOURCE.DEFAULT] = seen.join(', ');
  return out;
}

// ---- Accept --------------------------------------------------------------------------------

/** One media range of an Accept header: type, subtype and parameter names lower-case. */
export interface MediaRange {
  type: string;
  subtype: string;
  /** Parameters other than q, in order: [name, value] with quoted strings unquoted. */
  params: [string, string][];
  /** The weight in thousandths (q=0.5 → 500); 1000 when absent. */
  q: number;
}

const enum C { TAB = 0x09, SP = 0x20, DQUOTE = 0x22, COMMA = 0x2c, SLASH = 0x2f, SEMI = 0x3b, EQ = 0x3d, BSLASH = 0x5c }

/** RFC 9110 tchar. */
function isTchar(c: number): boolean {
  if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) return true;
  // ! # $ % & ' * + - . ^ _ ` | ~
  return c === 0x21 || (c >= 0x23 && c <= 0x27) || c === 0x2a || c === 0x2b || c === 0x2d || c === 0x2e ||
    c === 0x5e || c === 0x5f || c === 0x60 || c === 0x7c || c === 0x7e;
}

/** qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths; -1 if invalid. */
export function parseQ(text: string): number {
  const m = /^(?:0(?:\.(\d{0,3}))?|1(?:\.0{0,3})?)$/.exec(text);
  if (!m) return -1;
  if (text.charCodeAt(0) === 0x31) return 1000;
  return m[1] === undefined ? 0 : Number((m[1] + '000').slice(0, 3));
}

/** A parse of one element; `end` = index after it (its comma or the end). */
class Scanner {
  i = 0;
  constructor(readonly s: string) {}
  ows(): void {
    const s = this.s;
    while (this.i < s.length && (s.charCodeAt(this.i) === C.SP || s.charCodeAt(this.i) === C.TAB)) this.i++;
  }
  token(): string {
    const s = this.s;
    const start = this.i;
    while (this.i < s.length && isTchar(s.charCodeAt(this.i))) this.i++;
    return s.slice(start, this.i);
  }
  /** quoted-string with quoted-pairs; null if unterminated or holding a control byte. */
  quoted(): string | null {
    const s = this.s;
    let out = '';
    this.i++; // opening quote
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i++);
      if (c === C.DQUOTE) return out;
      if (c === C.BSLASH) {
        if (this.i >= s.length) return null;
        const e = s.charCodeAt(this.i++);
        if ((e < 0x20 && e !== C.TAB) || e === 0x7f) return null;
        out += s[this.i - 1];
        continue;
      }
      if ((c < 0x20 && c !== C.TAB) || c === 0x7f) return null;
      out += s[this.i - 1];
    }
    return null;
  }
  /** Skips to the next top-level comma (after a malformed element), honouring quotes. */
  recover(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === C.COMMA) return;
      if (c === C.DQUOTE) { if (this.quoted() === null) { this.i = s.length; return; } continue; }
      this.i++;
    }
  }
}

function parseRange(sc: Scanner): MediaRange | null {
  const s = sc.s;
  const type = sc.token();
  if (type === '' || s.charCodeAt(sc.i) !== C.SLASH) return null;
  sc.i++;
  const subtype = sc.token();
  if (subtype === '' || (type === '*' && subtype !== '*')) return null;
  const range: MediaRange = { type: type.toLowerCase(), subtype: subtype.toLowerCase(), params: [], q: 1000 };
  for (;;) {
    sc.ows();
    if (sc.i >= s.length || s.charCodeAt(sc.i) === C.COMMA) return range;
    if (s.charCodeAt(sc.i) !== C.SEMI) return null;
    sc.i++;
    sc.ows();
    // An empty parameter (";;" or a trailing ";") is allowed: parameters = *( OWS ";" OWS [ parameter ] ).
    const c = s.charCodeAt(sc.i);
    if (sc.i >= s.length || c === C.SEMI || c === C.COMMA) continue;
    const name = sc.token().toLowerCase();
    if (name === '' || s.charCodeAt(sc.i) !== C.EQ) return null;
    sc.i++;
    let value: string | null;
    if (s.charCodeAt(sc.i) === C.DQUOTE) value = sc.quoted();
    else value = sc.token();
    if (value === null || value === '') return null;
    if (name === 'q') {
      const q = parseQ(value);
      if (q < 0) return null;
      range.q = q;
    } else {
      range.params.push([name, value]);
    }
  }
}

/**
 * The media ranges of an Accept header value, in order. A malformed element is skipped (the
 * rest still counts: RFC 9110 lets a server ignore what it cannot parse); empty list
 * elements (`a, , b`) are allowed.
 */
export function parseAccept(header: string): MediaRange[] {
  const out: MediaRange[] = [];
  const sc = new Scanner(header);
  while (sc.i <= header.length) {
    sc.ows();
    if (sc.i >= header.length) break;
    if (header.charCodeAt(sc.i) === C.COMMA) { sc.i++; continue; }
    const range = parseRange(sc);
    if (range !== null) out.push(range);
    else sc.recover();
    if (sc.i < header.length) sc.i++; // the comma
  }
  return out;
}

/**
 * The API version a media range names, or null: `application/vnd.<vendor>.v<version>` with an
 * optional `+suffix` (`application/vnd.company.v2+json`), else a `version` parameter
 * (`application/json; version=2`). `vendor` is lower-case; '' disables the vnd form.
 */
export function rangeVersion(range: MediaRange, vendor: string): string | null {
  if (vendor !== '' && range.type === 'application') {
    const head = `vnd.${vendor}.v`;
    if (range.subtype.startsWith(head)) {
      const plus = range.subtype.indexOf('+', head.length);
      const version = range.subtype.slice(head.length, plus < 0 ? range.subtype.length : plus);
      if (version !== '') return version;
    }
  }
  for (const [name, value] of range.params) if (name === 'version') return value;
  return null;
}

/** Accept headers that cannot name a version skip the parser (most say `*∕*` or `application/json`). */
const MAY_NAME_VERSION = /vnd\.|version/i;

/**
 * The versions an Accept header asks for, most preferred first: by q (descending; q=0 means
 * "not this one" and is dropped), then by position. Each version once, at its best place.
 */
export function acceptedVersions(header: string, vendor: string): string[] {
  if (!MAY_NAME_VERSION.test(header)) return [];
  const named: { version: string; q: number; at: number }[] = [];
  parseAccept(header).forEach((range, at) => {
    const version = rangeVersion(range, vendor);
    if (version !== null) named.push({ version, q: range.q, at });
  });
  named.sort((a, b) => b.q - a.q || a.at - b.at);
  const out: string[] = [];
  const refused = new Set(named.filter((n) => n.q === 0).map((n) => n.version));
  for (const n of named) if (n.q > 0 && !refused.has(n.version) && !out.includes(n.version)) out.push(n.version);
  return out;
}

// ---- Deprecation headers -----------------------------------------------------------------

/** `Deprecation` (RFC 9745): a structured-field Date, `@` + Unix seconds. */
export function deprecationValue(epochMs: number): string {
  return `@${Math.floor(epochMs / 1000)}`;
}

/** `Sunset` (RFC 8594): an HTTP-date. */
export function sunsetValue(epochMs: number): string {
  return new Date(epochMs).toUTCString();
}

/** `Link` to the successor version (RFC 5829 `successor-version`). */
export function successorLinkValue(uri: string): string {
  return `<${uri}>; rel="successor-version"`;
}
