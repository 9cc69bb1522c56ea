// The `api-version` filter's part of the config schema: the top-level `versioning` section,
// a route's `version` (the version of a path-versioned route) and the `match.version`
// constraint (config-schema.ts puts versionConstraint under `match`, beside host and methods).
import { z } from 'zod';
import { didYouMean } from '../../control/config-error.js';
import { HEADER_NAME_TOKEN, rule, section } from '../../control/schema-kit.js';
import { MAX_VERSIONS, REQUEST_SOURCES, VERSION_NAME } from '../../shared/api-version.js';

export function checkVersionName(raw: string): string | null {
  return VERSION_NAME.test(raw) ? null
    : 'must be a version name: lower-case letters, digits, ".", "_" and "-", at most 32 characters (like "2" or "2024-01-01")';
}

/** A version name; a YAML integer (`version: 2`) is taken as its decimal text. */
export const versionName = z
  .union([z.string(), z.number().int().min(0).transform(String)])
  .superRefine(rule(checkVersionName));

/** `match.version`: one version, or the list of versions a route serves. */
export const versionConstraint = z.union([
  versionName,
  z.array(versionName).min(1, { error: 'must name at least one version (omit version to serve every version)' }),
]);

function checkSource(raw: string): string | null {
  if ((REQUEST_SOURCES as readonly string[]).includes(raw)) return null;
  if (raw === 'path') {
    return '"path" is not a source to configure: a version in the path (/v2/...) is plain routing (match.prefix: /v2), ' +
      'and routes[].version names that route\'s version';
  }
  return `must be one of ${REQUEST_SOURCES.map((s) => JSON.stringify(s)).join(', ')}, got ${JSON.stringify(raw)};${didYouMean(raw, REQUEST_SOURCES)}`
    .replace(/;$/, '');
}

// ISO 8601 date or date-time (with a zone, so every worker and instance reads the same instant).
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2}))?$/;

/** A date of `deprecated` / `sunset` → epoch ms, or NaN. */
export function parseVersionDate(raw: string): number {
  return ISO_DATE.test(raw) ? Date.parse(raw.length === 10 ? `${raw}T00:00:00Z` : raw) : NaN;
}

function checkDate(raw: string): string | null {
  return Number.isFinite(parseVersionDate(raw)) ? null
    : 'must be an ISO 8601 date or date-time with a zone, like "2025-06-30" or "2025-06-30T00:00:00Z"';
}

// What may go between < and > of a Link header: URI characters only (RFC 3986), no <, >, ", space.
const LINK_URI = /^(?:https?:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?)?\/[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]*$/;

function checkLink(raw: string): string | null {
  return LINK_URI.test(raw) ? null : 'must be an http(s) URL or an absolute path ("/docs/v2"), in URI characters (percent-encode others)';
}

const versionSpec = section({
  deprecated: z.string().superRefine(rule(checkDate)).optional(),
  sunset: z.string().superRefine(rule(checkDate)).optional(),
  successor_link: z.string().superRefine(rule(checkLink)).optional(),
});

export const versioningSchema = section({
  sources: z.array(z.string().superRefine(rule(checkSource)))
    .min(1, { error: 'must list at least one source' })
    .default(['accept', 'header', 'query']),
  header: z.string().regex(HEADER_NAME_TOKEN, 'must be a header name').default('Api-Version'),
  query: z.string().regex(/^[A-Za-z0-9_.~-]+$/, 'must be a query parameter name ([A-Za-z0-9_.~-]+)').default('version'),
  vendor: z.string().regex(/^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$/, 'must be the lower-case vendor of application/vnd.<vendor>.v2+json, like "company"').optional(),
  default: versionName.optional(),
  versions: z
    .record(z.string().superRefine(rule(checkVersionName)), versionSpec.nullable().transform((v) => v ?? {}))
    .refine((versions) => Object.keys(versions).length > 0, { error: 'must declare at least one version' })
    .refine((versions) => Object.keys(versions).length <= MAX_VERSIONS, { error: `must declare at most ${MAX_VERSIONS} versions` }),
});

export type RawVersioning = z.output<typeof versioningSchema>;

export const apiVersionRouteKeys = { version: versionName.optional() };
export const apiVersionSections = { versioning: versioningSchema.optional() };
