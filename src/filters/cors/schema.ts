// The `cors` filter's part of the config schema: the top-level `cors` (the default of every
// route) and `routes[].cors` (the route's own, replacing the default; `false` turns it off).
// Each value is checked alone here; the rules between values (credentials and `*`) are in
// compile.ts.
import { z } from 'zod';
import { HEADER_NAME_TOKEN, rule, section } from '../../control/schema-kit.js';
import { MAX_ORIGIN_LENGTH } from './limits.js';


const SCHEME = /^[a-z][a-z0-9+.-]*$/;
const HOST = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])$/;
const METHOD_TOKEN = /^[A-Z0-9!#$%&'*+.^_`|~-]+$/;

/** An `allow_origins` entry: `*`, `scheme://host[:port]`, or `scheme://*.domain[:port]`. */
export function checkOrigin(raw: string): string | null {
  if (raw === '*') return null;
  if (raw === 'null') return 'the "null" origin cannot be allowed: sandboxed frames and local files send it, so any page could';
  const sep = raw.indexOf('://');
  if (sep <= 0 || !SCHEME.test(raw.slice(0, sep).toLowerCase())) return 'must be an origin like "https://app.example.com", a wildcard like "https://*.example.com", or "*"';
  let rest = raw.slice(sep + 3).toLowerCase();
  if (rest.includes('/')) return 'an origin has no path: write only scheme://host[:port]';
  const port = /:(\d{1,5})$/.exec(rest);
  if (port) {
    if (Number(port[1]) > 65535) return 'the port must be at most 65535';
    rest = rest.slice(0, -port[0].length);
  }
  if (rest.startsWith('*.')) rest = rest.slice(2);
  if (rest.includes('*')) return 'a wildcard must be the whole first label, like "https://*.example.com"';
  if (!HOST.test(rest)) return 'the host is not a valid host name or [IPv6] address';
  return null;
}

/** At most this many unbounded quantifiers (`*`, `+`, `{n,}`) in an `allow_origin_regex`. */
const MAX_UNBOUNDED = 2;

/**
 * An `allow_origin_regex` entry. JavaScript's RegExp backtracks (no RE2 here), so only shapes
 * whose matching stays polynomial and small on an Origin of at most MAX_ORIGIN_LENGTH bytes are
 * accepted: no backreference or lookaround, no quantifier on a group (`(a+)+`, `(a|ab)*`), at
 * most two unbounded quantifiers.
 */
export function checkOriginRegex(raw: string): string | null {
  try {
    new RegExp(raw);
  } catch (err) {
    return `is not a valid regular expression: ${(err as Error).message}`;
  }
  let unbounded = 0;
  let inClass = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === '\\') {
      const next = raw[i + 1] ?? '';
      if (!inClass && (/[1-9]/.test(next) || next === 'k')) return 'backreferences are not allowed (their matching can take exponential time)';
      i++;
      continue;
    }
    if (inClass) { if (c === ']') inClass = false; continue; }
    if (c === '[') { inClass = true; continue; }
    if (c === '(' && raw[i + 1] === '?' && (raw[i + 2] === '=' || raw[i + 2] === '!' || (raw[i + 2] === '<' && (raw[i + 3] === '=' || raw[i + 3] === '!')))) {
      return 'lookahead and lookbehind are not allowed';
    }
    const quantifier = c === '*' || c === '+' || c === '?' || (c === '{' && /^\{\d+(,\d*)?\}/.test(raw.slice(i)));
    if (!quantifier) continue;
    if (raw[i - 1] === ')' && c !== '?') return 'a quantifier on a group is not allowed (nested repetition backtracks catastrophically); write the alternatives out, or use a wildcard origin';
    if (c === '*' || c === '+' || (c === '{' && /^\{\d+,\}/.test(raw.slice(i)))) unbounded++;
  }
  if (unbounded > MAX_UNBOUNDED) return `at most ${MAX_UNBOUNDED} unbounded quantifiers (*, +, {n,}) are allowed`;
  return null;
}

function checkHeaderName(raw: string): string | null {
  return raw === '*' || HEADER_NAME_TOKEN.test(raw) ? null : 'must be a header name like "content-type", or "*"';
}

function checkMethod(raw: string): string | null {
  if (raw === '*' || METHOD_TOKEN.test(raw)) return null;
  return METHOD_TOKEN.test(raw.toUpperCase()) ? `must be upper-case (${JSON.stringify(raw.toUpperCase())})` : 'must be an HTTP method like "PUT", or "*"';
}

const headerNames = z.array(z.string().superRefine(rule(checkHeaderName))).default([]);

export const corsSchema = section({
  allow_origins: z.array(z.string().superRefine(rule(checkOrigin))).default([]),
  allow_origin_regex: z.array(z.string().superRefine(rule(checkOriginRegex))).default([]),
  allow_methods: z.array(z.string().superRefine(rule(checkMethod))).min(1).optional(),
  allow_headers: headerNames,
  expose_headers: headerNames,
  allow_credentials: z.boolean().default(false),
  max_age: z.number().int().min(0).max(86400).optional(),
});

export type RawCors = z.output<typeof corsSchema>;

/**
 * A failed `routes[].cors`: zod reports a union as a whole, so for a mapping the message names
 * the mapping's first problem with its key (`max_age: expected a number, …`).
 */
function unionMessage(issue: z.core.$ZodRawIssue): string {
  const errors = issue.code === 'invalid_union' ? issue.errors : [];
  const inner = typeof issue.input === 'object' && issue.input !== null ? errors[1]?.[0] : undefined;
  if (inner === undefined) return 'must be a mapping of CORS settings, or false for none';
  return inner.path.length === 0 ? inner.message : `${inner.path.join('.')}: ${inner.message}`;
}

/** `routes[].cors`: the route's own settings, or `false` for none (not even the default). */
export const corsRouteKeys = { cors: z.union([z.literal(false), corsSchema], { error: unionMessage }).optional() };
/** The top-level `cors`: the default of every route without its own. */
export const corsSections = { cors: corsSchema.optional() };
