// The filter registry: every filter a route's chain can hold, one line each. The config schema
// (src/control/config-schema.ts: route keys and top-level sections) and the compiler
// (src/control/compile.ts: each route's chain, ordered by phase, then by this list) read this
// list; the workers build by name from builders.ts, which imports only the filters' runtime
// modules. Adding a filter is its folder and one line here and in builders.ts.
// docs/architecture.md#writing-a-filter.
import { FILTER_PHASES } from '../data/chain.js';
import { authJwt } from './auth-jwt/index.js';
import { keyAuth } from './key-auth/index.js';
import { identityStrip } from './identity-strip/index.js';
import { rateLimit } from './rate-limit/index.js';
import { apiVersion } from './api-version/index.js';
import { accessLog } from './access-log/index.js';
import { tracing } from './tracing/index.js';
import { serverTiming, serverTimingAuthMark } from './server-timing/index.js';
import { metrics } from './metrics/index.js';
import { ipRules } from './ip-rules/index.js';
import { cors } from './cors/index.js';
import { clientCert } from './client-cert/index.js';
import { waf } from './waf/index.js';
import { routeLimits } from './route-limits/index.js';
import { requestValidation } from './request-validation/index.js';
import { extAuthz } from './ext-authz/index.js';

export const FILTERS = [
  tracing, // first: a refused request is traced too
  routeLimits,
  ipRules,
  cors,
  identityStrip,
  clientCert,
  authJwt,
  keyAuth,
  extAuthz, // phase authz: after authentication, so the verified identity goes to the service
  rateLimit,
  requestValidation, // before the WAF: a body that fails its schema is refused without inspection
  waf, // after rate-limit: a flood is refused before it is inspected
  apiVersion,
  serverTimingAuthMark,
  serverTiming,
  metrics,
  accessLog, // last: its onRequest marks when the request leaves for the upstream
] as const;

export type RegisteredFilter = (typeof FILTERS)[number];

/** The registry in chain order: by phase, and in the list's order within a phase (sort is stable). */
export const FILTERS_IN_CHAIN_ORDER: readonly RegisteredFilter[] =
  [...FILTERS].sort((a, b) => FILTER_PHASES.indexOf(a.phase) - FILTER_PHASES.indexOf(b.phase));

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;
/** Every filter's route keys, as one zod shape (config-schema.ts spreads it into `routes[]`). */
export type FilterRouteKeys = UnionToIntersection<RegisteredFilter['routeKeys']>;
/** Every filter's top-level sections, as one zod shape. */
export type FilterSections = UnionToIntersection<RegisteredFilter['sections']>;

function merged<K extends 'routeKeys' | 'sections'>(part: K, owner: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const by = new Map<string, string>();
  for (const f of FILTERS) {
    for (const [key, schema] of Object.entries(f[part])) {
      // Two filters claiming one key is a programming error: fail at module load, in every test.
      if (by.has(key)) throw new Error(`filters ${by.get(key)} and ${f.name} both define ${owner} key ${key}`);
      by.set(key, f.name);
      out[key] = schema;
    }
  }
  return out;
}
export const filterRouteKeys = merged('routeKeys', 'routes[]') as FilterRouteKeys;
export const filterSections = merged('sections', 'top-level') as FilterSections;
