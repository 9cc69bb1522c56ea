// The `key-auth` filter's part of the config schema: the top-level `consumers` section (named
// clients, their API keys as hashes, metadata headers, optional rate and route allow-list)
// and a route's `key_auth` key. Each value alone is checked here; the rules between values
// (unique names and key ids, a hash in one consumer only, routes that exist) are in compile.ts.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { HEADER_NAME_TOKEN, isMapping, name, NAME_PATTERN, rule, section } from '../../control/schema-kit.js';
import type { FilterMend } from '../../data/chain.js';
import { GATEWAY_OWNED_REQUEST_HEADERS } from '../../shared/http-syntax.js';
import { KEY_DIGEST_BYTES } from '../../shared/consumer-config.js';
import { checkIdentityHeader } from '../auth-jwt/schema.js';
import { parsePer } from '../rate-limit/schema.js';

const HEX_DIGEST = /^[0-9a-fA-F]{64}$/;
const BASE64URL_DIGEST = /^[A-Za-z0-9_-]{43}$/;

/** The 32 digest bytes of a `sha256:<64 hex>` or `sha256:<43 base64url>` hash, or null. */
export function keyDigestOf(raw: string): Buffer | null {
  if (!raw.startsWith('sha256:')) return null;
  const text = raw.slice(7);
  if (HEX_DIGEST.test(text)) return Buffer.from(text, 'hex');
  if (BASE64URL_DIGEST.test(text)) {
    const bytes = Buffer.from(text, 'base64url');
    return bytes.length === KEY_DIGEST_BYTES ? bytes : null;
  }
  return null;
}

/** Writes the 32 digest bytes of a valid hash at `target[at]` (compile's table: no Buffer per key). */
export function writeKeyDigest(raw: string, target: Buffer, at: number): boolean {
  if (!raw.startsWith('sha256:')) return false;
  const text = raw.slice(7);
  if (text.length === 64 && HEX_DIGEST.test(text)) return target.write(text, at, KEY_DIGEST_BYTES, 'hex') === KEY_DIGEST_BYTES;
  const bytes = keyDigestOf(raw);
  if (bytes === null) return false;
  bytes.copy(target, at);
  return true;
}

/** A key's `hash`. */
export function checkKeyHash(raw: string): string | null {
  if (keyDigestOf(raw) !== null) return null;
  return raw.startsWith('sha256:')
    ? 'must be sha256: followed by the 64 hex digits or 43 base64url characters of the digest (`lobby hash-key` prints it)'
    : 'must be "sha256:<digest>" (`lobby hash-key` prints it for a key); keys are never written in clear';
}

/** What `lobby hash-key` prints and the config takes for `key`: `sha256:<hex>`. */
export function keyHashText(key: string | Buffer): string {
  return `sha256:${(typeof key === 'string' ? createHash('sha256').update(key, 'utf8') : createHash('sha256').update(key)).digest('hex')}`;
}

/** A consumer metadata header name: as a JWT claim header (the same owned names are refused). */
export function checkConsumerHeader(raw: string): string | null {
  const error = checkIdentityHeader(raw);
  if (error !== null) return error;
  if (GATEWAY_OWNED_REQUEST_HEADERS.has(raw.toLowerCase())) return `cannot be ${JSON.stringify(raw)}: the gateway owns that header`;
  return null;
}

/** A metadata value goes upstream as its UTF-8 bytes: no control characters (CR, LF, NUL ...) or DEL. */
export function checkConsumerHeaderValue(raw: string): string | null {
  // eslint-disable-next-line no-control-regex -- the point: control characters are refused
  return /[\x00-\x08\x0a-\x1f\x7f]/.test(raw) ? 'must not contain control characters (CR, LF, NUL ...)' : null;
}

const consumerKeySchema = section({
  id: name,
  hash: z.string().superRefine(rule(checkKeyHash)),
  disabled: z.boolean().default(false),
  /** When the admin API made the key (ISO 8601); informational. */
  created_at: z.string().max(64).optional(),
});

const consumerRateSchema = section({
  rate: z.number().int().positive().max(1_000_000_000),
  per: z.union([z.string(), z.number()]).superRefine((value, ctx) => {
    const parsed = parsePer(value);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.error });
  }).default('1s'),
  burst: z.number().int().positive().max(1_000_000_000).optional(),
});

export const consumerSchema = section({
  name,
  headers: z.record(z.string().superRefine(rule(checkConsumerHeader)), z.string().max(4096).superRefine(rule(checkConsumerHeaderValue))).default({}),
  keys: z.array(consumerKeySchema).default([]),
  rate_limit: consumerRateSchema.optional(),
  routes: z.array(name).optional(),
});

export const routeKeyAuthSchema = section({
  header: z.string().regex(HEADER_NAME_TOKEN, 'must be an HTTP header name').refine(
    (h) => !GATEWAY_OWNED_REQUEST_HEADERS.has(h.toLowerCase()), { error: 'the gateway handles that header itself; name another (x-api-key)' },
  ).default('x-api-key'),
  query: z.string().regex(/^[A-Za-z0-9._~-]+$/, 'must be a query parameter name ([A-Za-z0-9._~-]+)').optional(),
  forward_key: z.boolean().default(false),
  optional: z.boolean().default(false),
});

/** The route keys this filter adds to `routes[]`. */
export const keyAuthRouteKeys = { key_auth: routeKeyAuthSchema.optional() };
/** The top-level sections this filter adds. */
export const keyAuthSections = { consumers: z.array(consumerSchema).optional() };

/**
 * One-pass error reporting (FilterMend): a failed consumer becomes one without keys under its
 * name, so the other consumers' rules (unique names and hashes, routes that exist) still run;
 * a failed `consumers` list is dropped. Routes reference no consumer, so nothing else is suppressed.
 */
export const keyAuthMend: FilterMend = {
  sections(config, failed, suppress) {
    for (const [, index] of failed) {
      if (typeof index !== 'number' || !Array.isArray(config.consumers)) {
        delete config.consumers;
        suppress(['consumers']);
        continue;
      }
      const entry = config.consumers[index];
      const consumerName = isMapping(entry) && typeof entry.name === 'string' && NAME_PATTERN.test(entry.name) ? entry.name : `.unparsed-consumer-${index}`;
      config.consumers[index] = { name: consumerName };
      suppress(['consumers', index]);
    }
    return true;
  },
};

export type RawConsumer = z.output<typeof consumerSchema>;
export type RawRouteKeyAuth = z.output<typeof routeKeyAuthSchema>;

/** Every consumer metadata header (lower case, sorted): removed from every client request, so none can pose as a consumer. */
export function consumerHeaderNames(consumers: readonly { headers: Readonly<Record<string, string>> }[] | undefined): string[] {
  const names = new Set<string>();
  for (const c of consumers ?? []) for (const header of Object.keys(c.headers)) names.add(header.toLowerCase());
  return [...names].sort();
}
