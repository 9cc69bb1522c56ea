// The `cors` filter's compile: which routes get the filter (their own `cors`, else the top-level
// default; `cors: false` none), the rules between values, and the header blocks, built here once
// so a response only copies them:
//   - `*` is never sent with credentials: `allow_origins: ["*"]`, `allow_headers`,
//     `expose_headers` or `allow_methods` with `*` and `allow_credentials: true` are refused
//     (a browser treats `*` as a literal name on a credentialed request);
//   - origins: exact ones in a set, `scheme://*.domain` wildcards as a prefix and a suffix
//     (no regex), `allow_origin_regex` anchored (its shape checked in schema.ts);
//   - `allow_methods` defaults to the route's `match.methods` (else the usual methods).
import type { FilterCompilation, FilterCompileContext, FilterConfigPath } from '../../data/chain.js';
import type { RawCors } from './schema.js';

declare module '../../shared/compiled-config.js' {
  interface CompiledFilterRuntimes {
    /** Some route has cors: OPTIONS preflights are routed by Access-Control-Request-Method (server.ts). */
    corsPreflights?: true;
  }
}

export interface CorsFilterConfig {
  /** `allow_origins: ["*"]`: every origin, answered `*` (never with credentials). */
  readonly anyOrigin: boolean;
  /** Exact origins, lower-case scheme and host. */
  readonly exact: readonly string[];
  /** `scheme://*.domain[:port]` as `scheme://` and `.domain[:port]`. */
  readonly wildcards: readonly { readonly prefix: string; readonly suffix: string }[];
  /** Regex sources, anchored. */
  readonly regex: readonly string[];
  /** After Access-Control-Allow-Origin, on a preflight's 204: flat [name, value, ...]. */
  readonly preflight: readonly string[];
  /** After Access-Control-Allow-Origin, on every other response of an allowed origin. */
  readonly actual: readonly string[];
  /** The answer depends on Origin (every origin but `*`): `Vary: Origin` on every response. */
  readonly varyOrigin: boolean;
}

export interface CorsInput {
  cors?: RawCors;
  routes: readonly { cors?: RawCors | false; match: { methods?: string[] } }[];
}

/** A route without `match.methods` and without `allow_methods`. */
const DEFAULT_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

function checkRules(cors: RawCors, at: FilterConfigPath, report: FilterCompileContext['report']): boolean {
  let ok = true;
  const bad = (path: FilterConfigPath, message: string) => { report([...at, ...path], message); ok = false; };
  if (cors.allow_origins.length === 0 && cors.allow_origin_regex.length === 0) {
    bad(['allow_origins'], 'must list at least one origin (or set allow_origin_regex)');
  }
  const star = cors.allow_origins.indexOf('*');
  if (star >= 0 && cors.allow_origins.length + cors.allow_origin_regex.length > 1) {
    bad(['allow_origins', star], '"*" allows every origin: list no other origin beside it');
  }
  if (cors.allow_credentials) {
    const why = 'cannot be "*" with allow_credentials: true (browsers refuse "*" on credentialed requests; list the';
    if (star >= 0) bad(['allow_origins', star], `${why} origins, wildcards like "https://*.example.com" are allowed)`);
    for (const key of ['allow_headers', 'expose_headers', 'allow_methods'] as const) {
      const i = cors[key]?.indexOf('*') ?? -1;
      if (i >= 0) bad([key, i], `${why} names)`);
    }
  }
  return ok;
}

function compileOne(cors: RawCors, methods: readonly string[] | undefined): CorsFilterConfig {
  const exact: string[] = [];
  const wildcards: { prefix: string; suffix: string }[] = [];
  for (const raw of cors.allow_origins) {
    if (raw === '*') continue;
    const origin = raw.toLowerCase();
    const sep = origin.indexOf('://') + 3;
    if (origin.startsWith('*.', sep)) wildcards.push({ prefix: origin.slice(0, sep), suffix: origin.slice(sep + 1) });
    else if (!exact.includes(origin)) exact.push(origin);
  }
  const anyOrigin = cors.allow_origins.includes('*');
  const common: string[] = cors.allow_credentials ? ['access-control-allow-credentials', 'true'] : [];
  const preflight = [
    ...common,
    'access-control-allow-methods', (cors.allow_methods ?? methods ?? DEFAULT_METHODS).join(', '),
    ...(cors.allow_headers.length > 0 ? ['access-control-allow-headers', cors.allow_headers.join(', ')] : []),
    ...(cors.max_age !== undefined ? ['access-control-max-age', String(cors.max_age)] : []),
  ];
  const actual = [...common, ...(cors.expose_headers.length > 0 ? ['access-control-expose-headers', cors.expose_headers.join(', ')] : [])];
  return {
    anyOrigin,
    exact,
    wildcards,
    regex: cors.allow_origin_regex.map((source) => `^(?:${source})$`),
    preflight,
    actual,
    varyOrigin: !anyOrigin,
  };
}

export function compileCors(config: CorsInput, { report }: FilterCompileContext): FilterCompilation<CorsFilterConfig> {
  const defaultOk = config.cors === undefined || checkRules(config.cors, ['cors'], report);
  const perRoute = config.routes.map((route, index) => {
    const own = route.cors;
    if (own === false) return null;
    if (own !== undefined) return checkRules(own, ['routes', index, 'cors'], report) ? compileOne(own, route.match.methods) : null;
    return config.cors !== undefined && defaultOk ? compileOne(config.cors, route.match.methods) : null;
  });
  const any = perRoute.some((c) => c !== null);
  return { route: (index) => perRoute[index], ...(any ? { runtime: { corsPreflights: true as const } } : {}) };
}
