// The `ext-authz` filter's part of the config schema: the top-level `ext_authz` section (the
// authorization services a route can ask) and a route's `ext_authz` key. Each value alone is
// checked here; the rules between values (unique names, a route names a defined service) are
// in compile.ts.
import { z } from 'zod';
import { GATEWAY_OWNED_REQUEST_HEADERS } from '../../shared/http-syntax.js';
import type { FilterMend } from '../../data/chain.js';
import { HEADER_NAME_TOKEN, isMapping, milliseconds, name, NAME_PATTERN, positiveInt, rule, section } from '../../control/schema-kit.js';
import { EXT_AUTHZ_FAILURE_HEADER, SUBJECT_HEADER } from './names.js';

/** Headers HTTP itself or the gateway owns on any message: never copied from an authz answer. */
const FRAMING_HEADERS = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'transfer-encoding', 'content-length',
  'host', 'x-correlation-id',
]);

function headerName(raw: string): string | null {
  return HEADER_NAME_TOKEN.test(raw) ? null : 'must be an HTTP header name (letters, digits and !#$%&\'*+.^`|~-)';
}

/** `allowed_headers`: request headers sent to the service; the gateway's own never reach a filter. */
export function checkAllowedHeader(raw: string): string | null {
  const bad = headerName(raw);
  if (bad !== null) return bad;
  const lower = raw.toLowerCase();
  if (GATEWAY_OWNED_REQUEST_HEADERS.has(lower) || lower === SUBJECT_HEADER || lower === EXT_AUTHZ_FAILURE_HEADER) {
    return `cannot be ${JSON.stringify(raw)}: the gateway handles that header itself (Host, the correlation id and the identity are always sent)`;
  }
  return null;
}

/** `allowed_upstream_headers`: headers of an allowing answer set on the upstream request. */
export function checkUpstreamHeader(raw: string): string | null {
  const bad = headerName(raw);
  if (bad !== null) return bad;
  const lower = raw.toLowerCase();
  if (FRAMING_HEADERS.has(lower) || GATEWAY_OWNED_REQUEST_HEADERS.has(lower) || lower === EXT_AUTHZ_FAILURE_HEADER) {
    return `cannot be ${JSON.stringify(raw)}: HTTP or the gateway owns that header on the upstream request`;
  }
  return null;
}

/** `allowed_client_headers`: headers of a denying answer sent to the client. */
export function checkClientHeader(raw: string): string | null {
  const bad = headerName(raw);
  if (bad !== null) return bad;
  return FRAMING_HEADERS.has(raw.toLowerCase()) ? `cannot be ${JSON.stringify(raw)}: HTTP or the gateway owns that header on the response` : null;
}

/** A cache key attribute: `method`, `host`, `path`, `query`, `subject` or `header:NAME`. */
export function checkCacheKey(raw: string): string | null {
  if (raw === 'method' || raw === 'host' || raw === 'path' || raw === 'query' || raw === 'subject') return null;
  if (raw.startsWith('header:')) {
    const arg = raw.slice('header:'.length);
    if (!HEADER_NAME_TOKEN.test(arg)) return 'header: needs a header name, like "header:authorization"';
    if (GATEWAY_OWNED_REQUEST_HEADERS.has(arg.toLowerCase())) {
      return `header:${arg} cannot be a key: the gateway handles that header itself and no filter sees it (use "host" for the Host)`;
    }
    return null;
  }
  return 'must be "method", "host", "path", "query", "subject" or "header:NAME"';
}

/** `url`: http(s)://host[:port][/base], without credentials, query or fragment. */
export function checkServiceUrl(raw: string): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'must be an http:// or https:// URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http:// or https:// URL';
  if (url.username !== '' || url.password !== '') return 'must not contain credentials (user:password@)';
  if (url.search !== '' || url.hash !== '' || raw.includes('?') || raw.includes('#')) return 'must not have a query or a fragment';
  return null;
}

/** `path_prefix`: put before the request's path in the check request. */
export function checkPathPrefix(raw: string): string | null {
  if (raw === '') return null;
  if (!/^\/[\x21-\x7e]*$/.test(raw)) return 'must start with "/" and be visible ASCII';
  if (raw.includes('?') || raw.includes('#')) return 'must not contain "?" or "#"';
  return null;
}

const headerList = (check: (raw: string) => string | null) => z.array(z.string().superRefine(rule(check)));

const cacheSchema = section({
  ttl_s: positiveInt.max(86_400, { error: 'must be at most 86400 (a day)' }),
  entries: positiveInt.max(10_000_000).default(10_000),
  key: z.array(z.string().superRefine(rule(checkCacheKey))).min(1, { error: 'must name at least one attribute the decision depends on' }),
});

/** The headers of a denial that reach the client when `allowed_client_headers` is not given. */
export const DEFAULT_CLIENT_HEADERS = ['content-type', 'www-authenticate', 'location', 'retry-after'];

const serviceSchema = section({
  name,
  url: z.string().superRefine(rule(checkServiceUrl)),
  path_prefix: z.string().superRefine(rule(checkPathPrefix)).default(''),
  timeout_ms: milliseconds.max(60_000, { error: 'must be at most 60000 ms' }).default(200),
  max_connections: positiveInt.max(1024).default(32),
  status_on_error: z.number().int().min(400).max(599).default(403),
  allowed_headers: headerList(checkAllowedHeader).default(['authorization']),
  allowed_upstream_headers: headerList(checkUpstreamHeader).default([]),
  allowed_client_headers: headerList(checkClientHeader).default(DEFAULT_CLIENT_HEADERS),
  cache: cacheSchema.optional(),
});

export const extAuthzSchema = section({
  services: z.array(serviceSchema).default([]),
});

export const routeExtAuthzSchema = section({
  service: z.string(),
  failure_mode_allow: z.boolean().default(false),
});

/** The route keys this filter adds to `routes[]`. */
export const extAuthzRouteKeys = { ext_authz: routeExtAuthzSchema.optional() };
/** The top-level sections this filter adds. */
export const extAuthzSections = { ext_authz: extAuthzSchema.optional() };

export type RawExtAuthz = z.output<typeof extAuthzSchema>;
export type RawExtAuthzService = RawExtAuthz['services'][number];
export type RawRouteExtAuthz = z.output<typeof routeExtAuthzSchema>;

/**
 * One-pass error reporting (FilterMend): a failed service becomes a placeholder under its name,
 * so routes naming it compile, and their `ext_authz` is suppressed; a failed section or service
 * list leaves no service, and every route's `ext_authz` is suppressed.
 */
export const extAuthzMend: FilterMend = {
  sections(config, failed, suppress) {
    const failedNames = new Set<string>();
    let allFailed = false;
    for (const [, key, index] of failed) {
      const section = config.ext_authz;
      if (key === undefined || !isMapping(section)) {
        delete config.ext_authz;
        allFailed = true;
      } else if (key !== 'services' || typeof index !== 'number' || !Array.isArray(section.services)) {
        section.services = [];
        allFailed = true;
      } else {
        const serviceName = isMapping(section.services[index]) ? section.services[index].name : undefined;
        if (typeof serviceName === 'string') failedNames.add(serviceName);
        const valid = typeof serviceName === 'string' && NAME_PATTERN.test(serviceName);
        section.services[index] = { name: valid ? serviceName : `.unparsed-service-${index}`, url: 'http://placeholder.invalid' };
        suppress(['ext_authz', 'services', index]);
      }
    }
    if ((!allFailed && failedNames.size === 0) || !Array.isArray(config.routes)) return true;
    config.routes.forEach((route: unknown, index: number) => {
      const service = isMapping(route) && isMapping(route.ext_authz) ? route.ext_authz.service : undefined;
      if (service !== undefined && (allFailed || failedNames.has(String(service)))) suppress(['routes', index, 'ext_authz']);
    });
    return true;
  },
};
