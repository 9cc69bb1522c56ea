// The pieces every part of the config schema is written with: config-schema.ts (server,
// services, routes, admin, redis) and each filter's own fragment (src/filters/*/schema.ts),
// and mended with when it fails (compile.ts validateConfig, each filter's FilterMend).
// A separate module so a filter's schema does not import the schema it is assembled into.
import { z } from 'zod';

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };
export const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
export const fail = <T>(error: string): Parsed<T> => ({ ok: false, error });

/** Route, service, limit and provider names. */
export const NAME_PATTERN = /^[A-Za-z0-9_.-]+$/;
/** RFC 9110 token characters (header names, cookie names). */
export const HEADER_NAME_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Node's timers fire at once (with a warning) beyond 2^31-1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

/** Turns a `value → error | null` rule into a zod refinement. */
export function rule(check: (value: string) => string | null) {
  return (value: string, ctx: z.RefinementCtx) => {
    const error = check(value);
    if (error !== null) ctx.addIssue({ code: 'custom', message: error });
  };
}
export const errorOf = <T>(parsed: Parsed<T>): string | null => (parsed.ok ? null : parsed.error);

/**
 * The keys of each section by its unknown-key message: zod reports all unknown keys of a
 * mapping in one issue, and toConfigIssues needs the allowed keys to suggest one per key.
 */
export const ALLOWED_KEYS = new Map<string, readonly string[]>();

/** A mapping with a fixed set of keys; an unknown key is reported with the allowed ones. */
export function section<Shape extends z.ZodRawShape>(shape: Shape) {
  const keys = Object.keys(shape);
  const message = `unknown key (allowed: ${keys.join(', ')})`;
  ALLOWED_KEYS.set(message, keys);
  return z.strictObject(shape, {
    error: (issue) => (issue.code === 'unrecognized_keys' ? message : undefined),
  });
}

export const positiveInt = z.number().int().positive();
const TIMER_LIMIT = { error: `must be at most ${MAX_TIMER_MS} ms (about 24.8 days), the longest timer Node.js supports` };
export const milliseconds = positiveInt.max(MAX_TIMER_MS, TIMER_LIMIT);
/** A duration where 0 means "none". */
export const millisecondsOrZero = z.number().int().min(0).max(MAX_TIMER_MS, TIMER_LIMIT);
export const name = z.string().regex(NAME_PATTERN, 'must match [A-Za-z0-9_.-]+');

// Mending a config whose schema failed (compile.ts validateConfig, and filters' FilterMend).
export type Mapping = Record<string, unknown>;
export const isMapping = (value: unknown): value is Mapping => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Mends a section of named entries (`services`, `rate_limits`) at a schema issue under it: a
 * failed entry becomes `placeholder()` under its name, so references to it resolve (a name the
 * schema refuses is dropped), and is suppressed; a failed section is emptied. Every name that
 * failed goes into `failedNames`, for the caller to suppress the references to it.
 */
export function mendNamedEntry(
  config: Mapping,
  path: readonly (string | number)[],
  failedNames: Set<string>,
  suppress: (path: readonly (string | number)[]) => void,
  placeholder: () => Mapping,
): void {
  const [section, key] = path;
  const entries = config[section];
  if (key === undefined || !isMapping(entries)) {
    for (const name of isMapping(entries) ? Object.keys(entries) : []) failedNames.add(name);
    config[section] = {};
    return;
  }
  const name = String(key);
  failedNames.add(name);
  suppress([section, name]);
  if (NAME_PATTERN.test(name)) entries[name] = placeholder();
  else delete entries[name];
}
