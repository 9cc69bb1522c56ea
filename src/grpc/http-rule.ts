// google.api.http rules: path templates parsed and compiled at config load into a matcher
// that walks a request's segments against each rule (no regular expression per request).
//
// Template = "/" Segments [ ":" Verb ] ; Segment = "*" | "**" | LITERAL | Variable ;
// Variable = "{" FieldPath [ "=" Segments ] "}"   (google/api/http.proto)
import { decodePercent } from './percent.js';

/** One segment of a compiled template: a literal, `*` (one segment) or `**` (the rest). */
type Segment = { kind: 'literal'; text: string } | { kind: 'one' } | { kind: 'rest' };

export interface TemplateVariable {
  /** The field path it binds (`book.name` → ['book', 'name']). */
  fieldPath: string[];
  /** Segment range [start, end) in the template; end = -1 when it ends with `**`. */
  start: number;
  end: number;
}

export interface PathTemplate {
  segments: Segment[];
  variables: TemplateVariable[];
  verb: string | null;
  /** The template ends with `**` (matches any number of trailing segments, also none). */
  endsWithRest: boolean;
}

const LITERAL = /^[A-Za-z0-9\-._~!$&'()*+,;=@%]+$/;
const FIELD_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** Parses a template; a string is the reason it is not one. */
export function parseTemplate(raw: string): PathTemplate | string {
  if (!raw.startsWith('/')) return 'must start with "/"';
  let body = raw.slice(1);
  let verb: string | null = null;
  // The verb is after the last ':' that is outside braces.
  let depth = 0;
  let colon = -1;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === '{') depth++;
    else if (c === '}') depth--;
    else if (c === ':' && depth === 0) colon = i;
  }
  if (depth !== 0) return 'has an unmatched "{" or "}"';
  if (colon >= 0) {
    verb = body.slice(colon + 1);
    body = body.slice(0, colon);
    if (!LITERAL.test(verb)) return `has an invalid verb ":${verb}"`;
  }
  const segments: Segment[] = [];
  const variables: TemplateVariable[] = [];
  // Split on '/' outside braces.
  const parts: string[] = [];
  let start = 0;
  depth = 0;
  for (let i = 0; i <= body.length; i++) {
    const c = body[i];
    if (c === '{') depth++;
    else if (c === '}') depth--;
    else if ((c === '/' && depth === 0) || i === body.length) { parts.push(body.slice(start, i)); start = i + 1; }
  }
  const pushSegment = (text: string): string | null => {
    if (text === '*') segments.push({ kind: 'one' });
    else if (text === '**') segments.push({ kind: 'rest' });
    else if (text !== '' && LITERAL.test(text) && !text.includes('*')) segments.push({ kind: 'literal', text });
    else return `has an invalid segment ${JSON.stringify(text)}`;
    return null;
  };
  for (const part of parts) {
    if (part.startsWith('{')) {
      if (!part.endsWith('}')) return `has an invalid variable ${JSON.stringify(part)}`;
      const inner = part.slice(1, -1);
      const eq = inner.indexOf('=');
      const path = eq < 0 ? inner : inner.slice(0, eq);
      if (!FIELD_PATH.test(path)) return `has an invalid field path ${JSON.stringify(path)} in ${part}`;
      const from = segments.length;
      for (const sub of (eq < 0 ? '*' : inner.slice(eq + 1)).split('/')) {
        if (sub.startsWith('{')) return 'nests a variable in a variable';
        const error = pushSegment(sub);
        if (error !== null) return error;
      }
      variables.push({ fieldPath: path.split('.'), start: from, end: segments.length });
    } else {
      const error = pushSegment(part);
      if (error !== null) return error;
    }
  }
  const restAt = segments.findIndex((s) => s.kind === 'rest');
  if (restAt >= 0 && restAt !== segments.length - 1) return '"**" must be the last segment';
  if (new Set(variables.map((v) => v.fieldPath.join('.'))).size !== variables.length) return 'binds a field twice';
  return { segments, variables, verb, endsWithRest: restAt >= 0 };
}

/** One HTTP binding of a method, compiled. */
export interface CompiledBinding<M> {
  method: string;
  template: PathTemplate;
  /** '' no body, '*' the whole message, else a field name of the request. */
  body: string;
  /** '' the whole response, else a field of the response message. */
  responseBody: string;
  target: M;
}

/** What match() found: the binding and the bound field values (decoded), or why not. */
export type RuleMatch<M> =
  | { binding: CompiledBinding<M>; bound: { fieldPath: string[]; value: string }[] }
  | { binding: null; allow: string[] };

/** Splits a normalized path into segments and its verb, the way templates read them. */
function splitPath(path: string): { segments: string[]; verb: string | null } {
  const segments = path.slice(1).split('/');
  const last = segments[segments.length - 1];
  const colon = last.lastIndexOf(':');
  if (colon <= 0) return { segments, verb: null };
  return { segments: [...segments.slice(0, -1), last.slice(0, colon)], verb: last.slice(colon + 1) };
}

function matchSegments<M>(b: CompiledBinding<M>, segs: string[]): boolean {
  const t = b.template.segments;
  if (b.template.endsWithRest ? segs.length < t.length - 1 : segs.length !== t.length) return false;
  for (let i = 0; i < t.length; i++) {
    const s = t[i];
    if (s.kind === 'rest') return true;
    if (s.kind === 'literal' ? segs[i] !== s.text : segs[i] === '') return false;
  }
  return true;
}

/**
 * The rules of a route, tried in order: the first whose method, segments and verb match wins.
 * (A path whose last segment holds a ':' is tried both with and without the verb split, as a
 * `{name}` value may contain ':'.)
 */
export class RuleMatcher<M> {
  constructor(readonly bindings: readonly CompiledBinding<M>[]) {}

  match(method: string, path: string): RuleMatch<M> {
    const split = splitPath(path);
    const whole = split.verb === null ? split.segments : path.slice(1).split('/');
    let allow: string[] | null = null;
    for (const b of this.bindings) {
      const segs = b.template.verb === null ? whole : split.verb === b.template.verb ? split.segments : null;
      if (segs === null || !matchSegments(b, segs)) continue;
      if (b.method !== method) { (allow ??= []).includes(b.method) || allow.push(b.method); continue; }
      return { binding: b, bound: bindVariables(b.template, segs) };
    }
    return { binding: null, allow: allow ?? [] };
  }
}

function bindVariables(t: PathTemplate, segs: string[]): { fieldPath: string[]; value: string }[] {
  const out: { fieldPath: string[]; value: string }[] = [];
  for (const v of t.variables) {
    const end = v.end === t.segments.length && t.endsWithRest ? segs.length : v.end;
    if (end - v.start === 1 && t.segments[v.start].kind !== 'rest') {
      out.push({ fieldPath: v.fieldPath, value: decodePercent(segs[v.start], false) });
    } else {
      // A multi-segment variable keeps `%2F` encoded: the '/' it stands for is not a separator.
      out.push({ fieldPath: v.fieldPath, value: decodePercent(segs.slice(v.start, end).join('/'), true) });
    }
  }
  return out;
}
