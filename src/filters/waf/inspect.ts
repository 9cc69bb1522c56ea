// Which parts of a request the WAF inspects, and how each is split into values (issue 16):
// the path; every query parameter name and value; the named headers (Cookie, Referer,
// User-Agent by default) and every cookie's value; a JSON body walked (every key and string,
// within depth / key / byte bounds); an application/x-www-form-urlencoded body; a multipart
// body's fields. Field names, for exclusions: `path`, `query.<name>`, `header.<name>`,
// `cookie.<name>`, `body.<key>.<key>` (JSON, array indices left out), `body.<name>` (forms).
import { WafScan } from './engine.js';

export interface InspectLimits {
  /** Lower-case header names whose values are inspected. */
  readonly headers: readonly string[];
  readonly jsonMaxDepth: number;
  readonly jsonMaxKeys: number;
  /** Bodies larger than this are not parsed (the body limit of the route still applies). */
  readonly bodyMaxBytes: number;
}

/** What the walk found it could not inspect (a JSON body past its bounds, an unparsable body). */
export const UNINSPECTED = { none: 0, bounds: 1, malformed: 2 } as const;

export function inspectPath(scan: WafScan, path: string): void {
  if (!WafScan.rawIsClean(path)) scan.value(path, false, 'path', '');
}

/** Every name and value of a query string or a form body. */
export function inspectPairs(scan: WafScan, text: string, prefix: string): void {
  if (text === '' || WafScan.rawIsClean(text)) return;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('&', start);
    if (end < 0) end = text.length;
    if (end > start) {
      const eq = text.indexOf('=', start);
      const nameEnd = eq >= 0 && eq < end ? eq : end;
      const name = text.slice(start, nameEnd);
      scan.value(name, true, prefix, name);
      if (nameEnd < end) scan.value(text.slice(nameEnd + 1, end), true, prefix, name);
    }
    start = end + 1;
  }
}

/** The named headers, and each cookie's name and value. */
export function inspectHeaders(scan: WafScan, headers: readonly string[], names: readonly string[]): void {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    for (let k = 0; k < names.length; k++) {
      if (name.length !== names[k].length || name.toLowerCase() !== names[k]) continue;
      const value = headers[i + 1];
      if (names[k] === 'cookie') inspectCookies(scan, value);
      else if (!WafScan.rawIsClean(value)) scan.memoValue(value, 'header.' + names[k]);
      break;
    }
  }
}

function inspectCookies(scan: WafScan, header: string): void {
  if (WafScan.rawIsClean(header.replace(/; /g, ' '))) return;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    const name = (eq < 0 ? part : part.slice(0, eq)).trim();
    const value = eq < 0 ? '' : part.slice(eq + 1).trim();
    if (!WafScan.rawIsClean(value)) scan.memoValue(value, 'cookie.' + name);
    if (!WafScan.rawIsClean(name)) scan.value(name, false, 'cookie.', name);
  }
}

/** A JSON value: every key and every string (numbers and booleans cannot carry an attack). */
export function inspectJson(scan: WafScan, value: unknown, limits: InspectLimits): number {
  const state = { keys: 0, result: UNINSPECTED.none as number };
  walk(scan, value, 'body', 0, limits, state);
  return state.result;
}

function walk(scan: WafScan, value: unknown, field: string, depth: number, limits: InspectLimits, state: { keys: number; result: number }): void {
  if (typeof value === 'string') { scan.value(value, false, field, ''); return; }
  if (value === null || typeof value !== 'object') return;
  if (depth >= limits.jsonMaxDepth) { state.result = UNINSPECTED.bounds; return; }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) walk(scan, value[i], field, depth + 1, limits, state);
    return;
  }
  const prefix = field + '.';
  for (const key in value as Record<string, unknown>) {
    if (++state.keys > limits.jsonMaxKeys) { state.result = UNINSPECTED.bounds; return; }
    scan.key(key, prefix);
    const v = (value as Record<string, unknown>)[key];
    // A string's field name is made only if a rule fires on it (WafScan.value).
    if (typeof v === 'string') scan.value(v, false, prefix, key);
    else if (v !== null && typeof v === 'object') walk(scan, v, prefix + key, depth + 1, limits, state);
  }
}

/** A multipart/form-data body's fields (not files: a part with a filename is skipped). */
export function inspectMultipart(scan: WafScan, body: Buffer, contentType: string): number {
  const m = /boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  if (m === null) return UNINSPECTED.malformed;
  const delimiter = '--' + (m[1] ?? m[2]);
  const text = body.toString('latin1');
  const parts = text.split(delimiter);
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i];
    if (part.startsWith('--')) break;
    const headEnd = part.indexOf('\r\n\r\n');
    if (headEnd < 0) continue;
    const head = part.slice(0, headEnd);
    if (/filename\s*=/i.test(head)) continue;
    const name = /name="([^"]{0,200})"/i.exec(head)?.[1] ?? '';
    let content = part.slice(headEnd + 4);
    if (content.endsWith('\r\n')) content = content.slice(0, -2);
    const utf8 = Buffer.from(content, 'latin1').toString('utf8');
    scan.value(name, false, 'body.', name);
    scan.value(utf8, false, 'body.', name);
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

/**
 * Inspects a buffered body by its kind; returns an UNINSPECTED code. `parse` gives the JSON
 * (the filter shares one parse per request: src/data/request-body.ts), or MALFORMED_JSON.
 */
export function inspectBody(scan: WafScan, body: Buffer, contentType: string, limits: InspectLimits, parse: () => unknown = () => parseJson(body)): number {
  if (body.length > limits.bodyMaxBytes) return UNINSPECTED.bounds;
  const kind = bodyKind(contentType);
  if (kind === BODY_KIND.json) {
    const parsed = parse();
    if (parsed === MALFORMED_JSON) { scan.value(body.toString('utf8'), false, 'body', ''); return UNINSPECTED.malformed; }
    return inspectJson(scan, parsed, limits);
  }
  if (kind === BODY_KIND.form) { inspectPairs(scan, body.toString('utf8'), 'body.'); return UNINSPECTED.none; }
  if (kind === BODY_KIND.multipart) return inspectMultipart(scan, body, contentType);
  return UNINSPECTED.none;
}

function parseJson(body: Buffer): unknown {
  try { return JSON.parse(body.toString('utf8')); } catch { return MALFORMED_JSON; }
}
