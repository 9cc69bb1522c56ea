// The `ext-authz` filter's compile: `ext_authz.services` and `routes[].ext_authz` into each
// route's filter config (config.ts). The schema (schema.ts) checked each value alone; these are
// the rules between values: unique service names, a route names a defined service. The
// identity headers auth-jwt and key-auth inject (every provider's claims_to_headers, every
// consumer's headers) are always sent to the service, so they are read from the `auth` and
// `consumers` sections here.
import type { FilterCompilation, FilterCompileContext } from '../../data/chain.js';
import { unknownNameMessage } from '../../control/config-error.js';
import { clientIdentityHeaders } from '../identity-headers.js';
import type { RawExtAuthz, RawExtAuthzService, RawRouteExtAuthz } from './schema.js';
import { KEY_KIND, type CompiledAuthzService, type CompiledKeyPart, type ExtAuthzFilterConfig } from './config.js';

/** What compile reads of the config. */
export interface ExtAuthzInput {
  ext_authz?: RawExtAuthz;
  auth?: { providers: readonly { claims_to_headers: Readonly<Record<string, string>> }[] };
  consumers?: readonly { headers: Readonly<Record<string, string>> }[];
  routes: readonly { ext_authz?: RawRouteExtAuthz }[];
}

const KINDS: Record<string, number> = {
  method: KEY_KIND.METHOD, host: KEY_KIND.HOST, path: KEY_KIND.PATH, query: KEY_KIND.QUERY, subject: KEY_KIND.SUBJECT,
};

function keyPart(raw: string): CompiledKeyPart {
  // The schema checked the shape: a kind above or `header:NAME`.
  if (raw.startsWith('header:')) return { kind: KEY_KIND.HEADER, name: raw.slice('header:'.length).toLowerCase() };
  return { kind: KINDS[raw], name: '' };
}

const lowerUnique = (names: readonly string[]): string[] => [...new Set(names.map((n) => n.toLowerCase()))];

function compileService(raw: RawExtAuthzService, identityHeaders: readonly string[]): CompiledAuthzService {
  const url = new URL(raw.url); // checked by the schema
  // The url's own path is part of the prefix: `http://opa:8181/envoy` + `/v1` + the request's path.
  const base = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '');
  const prefix = raw.path_prefix.replace(/\/+$/, '');
  const service: Omit<CompiledAuthzService, 'stateKey'> = {
    name: raw.name,
    origin: url.origin,
    pathPrefix: base + prefix,
    timeoutMs: raw.timeout_ms,
    maxConnections: raw.max_connections,
    statusOnError: raw.status_on_error,
    allowedHeaders: lowerUnique(raw.allowed_headers),
    identityHeaders,
    upstreamHeaders: lowerUnique(raw.allowed_upstream_headers),
    clientHeaders: lowerUnique(raw.allowed_client_headers),
    cache: raw.cache === undefined ? null : { ttlMs: raw.cache.ttl_s * 1000, entries: raw.cache.entries, key: raw.cache.key.map(keyPart) },
  };
  return { ...service, stateKey: JSON.stringify(service) };
}

export function compileExtAuthz(config: ExtAuthzInput, { report }: FilterCompileContext): FilterCompilation<ExtAuthzFilterConfig> {
  const identityHeaders = clientIdentityHeaders(config);
  const services = new Map<string, CompiledAuthzService>();
  (config.ext_authz?.services ?? []).forEach((raw, index) => {
    if (services.has(raw.name)) {
      report(['ext_authz', 'services', index, 'name'], `duplicate ext_authz service name ${JSON.stringify(raw.name)}`);
      return;
    }
    services.set(raw.name, compileService(raw, identityHeaders));
  });
  const defined = [...services.keys()];
  config.routes.forEach((route, index) => {
    const name = route.ext_authz?.service;
    if (name !== undefined && !services.has(name)) {
      report(['routes', index, 'ext_authz', 'service'], unknownNameMessage('ext_authz service', name, defined, 'no ext_authz.services are defined'));
    }
  });
  return {
    route(index) {
      const key = config.routes[index].ext_authz;
      const service = key === undefined ? undefined : services.get(key.service);
      return key === undefined || service === undefined ? null : { service, failureModeAllow: key.failure_mode_allow };
    },
  };
}
