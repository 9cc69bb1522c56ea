// The data plane's side of the filter registry: each filter's build(), by name, imported from
// the filters' runtime modules only. The workers load this file, never src/filters/index.ts,
// whose schemas and compile steps would bring zod and the control plane's checks into every
// worker (about 7 MB of heap each). index.ts's factories point at these same functions, and
// test/architecture/worker-imports.test.ts checks that both lists name the same filters.
import type { Filter, FilterBuilder, WorkerEnv } from '../data/chain.js';
import type { CompiledFilter, CompiledFilterRuntimes } from '../shared/compiled-config.js';
import { buildTracing } from './tracing/filter.js';
import { buildIpRules } from './ip-rules/filter.js';
import { buildCors } from './cors/filter.js';
import { buildIdentityStrip } from './identity-strip/filter.js';
import { buildClientCert } from './client-cert/filter.js';
import { buildAuthJwt } from './auth-jwt/filter.js';
import { buildKeyAuth, prepareKeyAuth } from './key-auth/filter.js';
import { buildRateLimit } from './rate-limit/filter.js';
import { buildApiVersion } from './api-version/filter.js';
import { buildServerTiming, buildServerTimingAuthMark } from './server-timing/filter.js';
import { buildMetrics } from './metrics/filter.js';
import { buildAccessLog } from './access-log/filter.js';
import { buildWaf } from './waf/filter.js';
import { buildRouteLimits } from './route-limits/filter.js';
import { buildRequestValidation } from './request-validation/filter.js';
import { buildExtAuthz } from './ext-authz/filter.js';

/** Each filter's build(), by the name its compiled entries carry. */
export const FILTER_BUILDERS: Readonly<Record<string, (config: never, env: WorkerEnv) => Filter>> = {
  'tracing': buildTracing,
  'ip-rules': buildIpRules,
  'cors': buildCors,
  'identity-strip': buildIdentityStrip,
  'client-cert': buildClientCert,
  'auth-jwt': buildAuthJwt,
  'key-auth': buildKeyAuth,
  'rate-limit': buildRateLimit,
  'api-version': buildApiVersion,
  'server-timing-auth': buildServerTimingAuthMark,
  'server-timing': buildServerTiming,
  'metrics': buildMetrics,
  'access-log': buildAccessLog,
  'waf': buildWaf,
  'route-limits': buildRouteLimits,
  'request-validation': buildRequestValidation,
  'ext-authz': buildExtAuthz,
};

/** What a filter builds once per generation in each worker, while the worker prepares it
 * (before `prepared`: routes' filters are built on first use, this must not wait for that). */
export const FILTER_PREPARES: readonly ((runtimes: CompiledFilterRuntimes) => void)[] = [prepareKeyAuth];

/**
 * Builds a route's filter from its compiled entry. The entry was made by the same filter's
 * compile() (compile.ts tags it with the filter's name), so its config has that filter's type;
 * this lookup is where the typed pair is joined again after the structured clone.
 */
export const buildFilter: FilterBuilder = (filter: CompiledFilter, env: WorkerEnv): Filter => {
  const build = Object.hasOwn(FILTER_BUILDERS, filter.name) ? FILTER_BUILDERS[filter.name] : undefined;
  if (build === undefined) throw new Error(`unknown filter ${filter.name}`);
  return (build as (config: unknown, env: WorkerEnv) => Filter)(filter.config, env);
};
