// Which parts of a request the WAF inspects, and how each is split into values (issue 16):
// the path; every query parameter name and value; the named headers (Cookie, Referer,
// User-Agent by default) and every cookie's value; a JSON body walked (every key and string,
// within depth / key / byte bounds); an application/x-www-form-urlencoded body; a multipart
// body's fields. Field names, for exclusions: `path`, `query.<name>`, `header.<name>`,
// `cookie.<name>`, `body.<key>.<key>` (JSON, array indices left out), `body.<name>` (forms).
// Values are inspected where they lie (WafScan.valueIn on a range of the query string or the
// header): nothing is split or sliced unless a rule may fire on it.
import { ConstField, SliceField, type FieldName, type WafScan } from './engine.js';
import { scanJson, JSON_SCAN } from './json-scan.js';

export interface InspectLimits {
  /** Lower-case header names whose values are inspected. */
  readonly headers: readonly string[];
  /** `header.<name>` per name of `headers`. */
  readonly headerFields: readonly FieldName[];
  readonly jsonMaxDepth: number;
  readonly jsonMaxKeys: number;
  /** Bodies larger than this are not parsed (the body limit of the route still applies). */
  readonly bodyMaxBytes: number;
}

export function inspectLimits(l: Omit<InspectLimits, 'headerFields'>): InspectLimits {
  return { ...l, headerFields: l.headers.map((h) => new ConstField('header.' + h)) };
}

/** What the walk found it could not inspect (a JSON body past its bounds, an unparsable body). */
export const UNINSPECTED = { none: 0, bounds: 1, malformed: 2 } as const;

const PATH = new ConstField('path');
const BODY = new ConstField('body');
/** One request at a time per thread: the field objects are reused. */
const pairName = new SliceField();
const cookieName = new SliceField();

export function inspectPath(scan: WafScan, path: string): void {
  scan.valueIn(path, 0, path.length, false, PATH);
}

/** Every name and value of a query string or a form body; `prefix` is `query.` or `body.`. */
export function inspectPairs(scan: WafScan, text: string, prefix: string): void {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('&', start);
    if (end < 0) end = text.length;
    if (end > start) {
      const eq = text.indexOf('=', start);
      const nameEnd = eq >= 0 && eq < end ? eq : end;
      const field = pairName.set(prefix, text, start, nameEnd);
      scan.valueIn(text, start, nameEnd, true, field);
      if (nameEnd < end) scan.valueIn(text, nameEnd + 1, end, true, field);
    }
    start = end + 1;
  }
}

/** The named headers, and each cookie's name and value. */
export function inspectHeaders(scan: WafScan, headers: readonly string[], limits: InspectLimits): void {
  const names = limits.headers;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    for (let k = 0; k < names.length; k++) {
      if (name.length !== names[k].length || name.toLowerCase() !== names[k]) continue;
      const value = headers[i + 1];
      if (names[k] === 'cookie') inspectCookies(scan, value);
      else scan.memoValue(value, limits.headerFields[k]);
      break;
    }
  }
}

/** String.prototype.trim's whitespace (a cookie's name and value are trimmed as by trim()). */
function isTrimmed(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13) || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

function inspectCookies(scan: WafScan, header: string): void {
  let start = 0;
  while (start <= header.length) {
    let end = header.indexOf(';', start);
    if (end < 0) end = header.length;
    const eq = header.indexOf('=', start);
    const hasValue = eq >= 0 && eq < end;
    let ns = start, ne = hasValue ? eq : end;
    while (ns < ne && isTrimmed(header.charCodeAt(ns))) ns++;
    while (ne > ns && isTrimmed(header.charCodeAt(ne - 1))) ne--;
    const field = cookieName.set('cookie.', header, ns, ne);
    if (hasValue) {
      let vs = eq + 1, ve = end;
      while (vs < ve && isTrimmed(header.charCodeAt(vs))) vs++;
      while (ve > vs && isTrimmed(header.charCodeAt(ve - 1))) ve--;
      // A value may repeat request after request (a session id): memoised, unless the scan
      // shows that no rule can fire on it (most values), which needs no slice.
      if (scan.mayFireIn(header, vs, ve)) scan.memoValue(header.slice(vs, ve), field);
    }
    scan.valueIn(header, ns, ne, false, field);
    start = end + 1;
  }
}

/** A JSON value: every key and every string (numbers and booleans cannot carry an attack). */
export function inspectJson(scan: WafScan, value: unknown, limits: InspectLimits): number {
  const state = { keys: 0, result: UNINSPECTED.none as number };
  walk(scan, value, 'body', 0, limits, state);
  return state.result;
}

/** prefix + name: a JSON field as the walk names it. */
class WalkField implements FieldName {
  prefix = '';
  name = '';
  fieldName(): string { return this.prefix + this.name; }
}
const walkField = new WalkField();

function walkValue(scan: WafScan, value: string, prefix: string, name: string): void {
  walkField.prefix = prefix;
  walkField.name = name;
  scan.value(value, false, walkField);
}

// The parsed value's walk: for a body the byte scanner (json-scan.ts) hands back (past its
// bounds, or not JSON as it reads it), and for a value another filter parsed.
function walk(scan: WafScan, value: unknown, field: string, depth: number, limits: InspectLimits, state: { keys: number; result: number }): void {
  if (typeof value === 'string') { walkValue(scan, value, field, ''); return; }
  if (value === null || typeof value !== 'object') return;
  if (depth >= limits.jsonMaxDepth) { state.result = UNINSPECTED.bounds; return; }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) walk(scan, value[i], field, depth + 1, limits, state);
    return;
  }
  const prefix = field + '.';
  for (const key in value as Record<string, unknown>) {
    if (++state.keys > limits.jsonMaxKeys) { state.result = UNINSPECTED.bounds; return; }
    walkValue(scan, key, prefix, key);
    const v = (value as Record<string, unknown>)[key];
    if (typeof v === 'string') walkValue(scan, v, prefix, key);
    else if (v !== null && typeof v === 'object') walk(scan, v, prefix + key, depth + 1, limits, state);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A multipart/form-data body's fields (not files: a part with a filename is skipped). A field
 * name is UTF-8 (RFC 7578 section 5.1), decoded fatally, so that `exclude` entries name it as
 * written; a name that is not UTF-8 makes the body malformed: it is inspected as one text.
 */
export function inspectMultipart(scan: WafScan, body: Buffer, contentType: string): number {
  const m = /boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  if (m === null) return UNINSPECTED.malformed;
  const delimiter = Buffer.from('--' + (m[1] ?? m[2]), 'latin1');
  const mark = scan.mark();
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const partStart = at + delimiter.length;
    if (body[partStart] === 0x2d && body[partStart + 1] === 0x2d) break; // --boundary--: the end
    const next = body.indexOf(delimiter, partStart);
    const partEnd = next < 0 ? body.length : next;
    const headEnd = body.indexOf('\r\n\r\n', partStart);
    if (headEnd >= 0 && headEnd + 4 <= partEnd) {
      const head = body.toString('latin1', partStart, headEnd);
      if (!/filename\s*=/i.test(head)) {
        const nameAt = /name="([^"]{0,200})"/i.exec(head);
        let name = '';
        if (nameAt !== null) {
          const from = partStart + nameAt.index + nameAt[0].indexOf('"') + 1;
          try {
            name = utf8.decode(body.subarray(from, from + nameAt[1].length));
          } catch {
            scan.rollback(mark);
            scan.value(body.toString('utf8'), false, BODY);
            return UNINSPECTED.malformed;
          }
        }
        let contentEnd = partEnd;
        if (body[contentEnd - 2] === 0x0d && body[contentEnd - 1] === 0x0a && contentEnd - 2 >= headEnd + 4) contentEnd -= 2;
        const field = new ConstField('body.' + name);
        scan.value(name, false, field);
        scan.value(body.toString('utf8', headEnd + 4, contentEnd), false, field);
      }
    }
    at = next;
  }
  return UNINSPECTED.none;
}

export const BODY_KIND = { none: 0, json: 1, form: 2, multipart: 3 } as const;

/** The body kind by Content-Type (parameters and case ignored; +json types are JSON). */
export function bodyKind(contentType: string): number {
  const semi = contentType.indexOf(';');
  const type = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  if (type === 'application/json' || type.endsWith('+json')) return BODY_KIND.json;
  if (type === 'application/x-www-form-urlencoded') return BODY_KIND.form;
  if (type === 'multipart/form-data') return BODY_KIND.multipart;
  return BODY_KIND.none;
}

/** A JSON body that does not parse: inspected as one text (a lenient upstream parser may still read it). */
export const MALFORMED_JSON: unique symbol = Symbol('malformed JSON');

/** Where a body's parsed JSON comes from when the byte scanner hands it back: a parse shared with other filters (the filter's context), or its own. */
export interface JsonSource {
  /** The body as JSON, or MALFORMED_JSON. */
  json(body: Buffer): unknown;
}

export const OWN_PARSE: JsonSource = {
  json(body) {
    try { return JSON.parse(body.toString('utf8')); } catch { return MALFORMED_JSON; }
  },
};

/**
 * Inspects a buffered body by its kind; returns an UNINSPECTED code. A JSON body is read
 * from its bytes (json-scan.ts); one the scanner hands back is parsed (`source`) and walked,
 * or inspected as one text when it is not JSON.
 */
export function inspectBody(scan: WafScan, body: Buffer, contentType: string, limits: InspectLimits, source: JsonSource = OWN_PARSE): number {
  if (body.length > limits.bodyMaxBytes) return UNINSPECTED.bounds;
  const kind = bodyKind(contentType);
  if (kind === BODY_KIND.json) {
    const mark = scan.mark();
    if (scanJson(scan, body, limits.jsonMaxDepth, limits.jsonMaxKeys) === JSON_SCAN.ok) return UNINSPECTED.none;
    // Past the bounds, or not JSON as the scanner reads it: read as before, from a clean slate.
    scan.rollback(mark);
    const parsed = source.json(body);
    if (parsed === MALFORMED_JSON) { scan.value(body.toString('utf8'), false, BODY); return UNINSPECTED.malformed; }
    return inspectJson(scan, parsed, limits);
  }
  if (kind === BODY_KIND.form) { inspectPairs(scan, body.toString('utf8'), 'body.'); return UNINSPECTED.none; }
  if (kind === BODY_KIND.multipart) return inspectMultipart(scan, body, contentType);
  return UNINSPECTED.none;
}
