// The per-route filter chain. A filter owns one concern; `build` runs once per route per
// generation in each worker, `onRequest` once per request and returns a verdict:
//   NEXT  — go on with the next filter;
//   REPLY — the filter answered the request itself (e.g. 401, 429); stop;
//   WAIT  — the filter started async work and will call resumeChain(ctx) (or answer) later.
// An index loop with a stored resume point, not next() closures: no allocation per step.
// When every filter said NEXT, the request is forwarded (upstream/proxy.ts forward): a
// direct call, no completion callback held in module state. The chain is entered, and
// resumed, through one try/catch: a throw in a filter is a bug, answered 500 and logged once.
import { NEXT, REPLY, type Filter, type FilterPhase, type RequestContext } from './request-context.js';
import { GW_ERR, type GatewayErrorSpec } from '../shared/errors.js';
import type { FromWorker } from '../shared/messages.js';
import type { CompiledFilter, CompiledFilterRuntimes } from '../shared/compiled-config.js';
import type { ZodType } from 'zod';
import type { HealthTable } from '../shared/health-table.js';
import { bodyUnreadOf, sendEmptyReply, sendLocalReply, sendRelayedReply } from './exchange.js';
import { logRequestFault } from './faults.js';
import { forward } from './upstream/proxy.js';

export { NEXT, REPLY, WAIT, FILTER_PHASES } from './request-context.js';
export type { Verdict, Filter, ResponseHead, FilterPhase } from './request-context.js';
export { logRequestFault } from './faults.js';

/**
 * A filter's local reply (401, 429, 503 …): stops the request's upstream side and answers
 * `spec` as JSON with `extraHeaders`. Returns REPLY for the filter to return.
 */
export function localReply(ctx: RequestContext, spec: GatewayErrorSpec, extraHeaders: readonly string[] | null = null): typeof REPLY {
  sendLocalReply(ctx, spec, bodyUnreadOf(ctx.body), extraHeaders);
  return REPLY;
}

/**
 * A filter's answer relayed from another service (an authorization service's denial):
 * `status`, `headers` (flat) and `body`, recorded as `spec`. Returns REPLY.
 */
export function relayedReply(ctx: RequestContext, spec: GatewayErrorSpec, status: number, headers: readonly string[], body: Buffer): typeof REPLY {
  sendRelayedReply(ctx, spec, status, headers, body, bodyUnreadOf(ctx.body));
  return REPLY;
}

/** A filter's bodiless answer (a CORS preflight's 204); its headers come from onResponse. */
export function emptyReply(ctx: RequestContext, status: number): typeof REPLY {
  sendEmptyReply(ctx, status, bodyUnreadOf(ctx.body));
  return REPLY;
}

/** What a filter's build() gets from its worker. */
export interface WorkerEnv {
  readonly workerIndex: number;
  /** Sends a message to the control plane. */
  post(msg: FromWorker): void;
  /** The instance's rate-limit bucket table (src/shared/bucket-table.ts), shared by every
   * worker; absent outside a supervisor (tests, benches), where the filter makes its own. */
  readonly rateLimitTable?: SharedArrayBuffer;
  /** This worker's metric counters for the generation being built (src/shared/metrics-layout.ts),
   * allocated by the control plane; absent when metrics are off or outside a supervisor. */
  readonly metrics?: SharedArrayBuffer;
  /** The instance's health table (src/shared/health-table.ts): the pickers skip targets it
   * marks down, outlier ejection writes it; absent outside a supervisor. */
  readonly healthTable?: HealthTable;
  /** The generation's instance-level filter data (CompiledConfig's CompiledFilterRuntimes
   * fields, e.g. the consumer table of key-auth); absent outside a generation. */
  readonly runtimes?: CompiledFilterRuntimes;
}

/** A key path in the config (`['routes', 3, 'rate_limit', 0]`); the control plane adds file and line. */
export type FilterConfigPath = readonly (string | number)[];

/** What a filter's compile() gets besides the config. */
export interface FilterCompileContext {
  /** Records a problem at a key path; compile goes on so that every problem is reported at once. */
  report(path: FilterConfigPath, message: string): void;
  /** The config file's folder: where relative paths in the config (keys_file) are resolved. */
  readonly baseDir: string;
}

/** The result of a filter's compile() for one config. */
export interface FilterCompilation<C> {
  /** The filter's config for routes[index], or null when the route does not use the filter. */
  route(index: number): C | null;
  /**
   * Instance-level compiled data (one per config, not per route), merged into the
   * CompiledConfig; each filter declares its fields in CompiledFilterRuntimes
   * (src/shared/compiled-config.ts) from its own folder.
   */
  readonly runtime?: Partial<CompiledFilterRuntimes>;
  /**
   * The filter's config for requests that match no route (404, 405, and requests refused
   * before routing: 400, 414, 431 ...), or null/absent: only such a filter's onEnd runs for
   * them (the access log's line for a 404). CompiledConfig.unroutedFilters.
   */
  readonly unrouted?: C | null;
}

/**
 * How a filter takes part in one-pass error reporting (src/control/compile.ts validateConfig):
 * when the schema fails, the rules between values still run, on a copy of the config in which
 * every part that failed is replaced by a neutral stand-in, and issues that would only echo a
 * schema issue are suppressed. compile.ts mends what it owns (a failed route key is dropped and
 * its issues suppressed, whoever's key it is); a filter mends its own sections.
 */
export interface FilterMend {
  /**
   * Once per failed pass, with the schema issues under the filter's sections (`path[0]` is one
   * of them; there may be none). Replaces each part of `config` that failed (the copy, as
   * submitted, not validated) by a stand-in that passes the schema and the rules between values
   * (a named entry keeps its name, so references to it resolve), and calls suppress() for each
   * path whose issues would be echoes: the failed part, and routes' references to it.
   * Returns false for a shape it cannot mend: then only the schema's issues are reported.
   */
  sections?(config: Record<string, unknown>, failed: readonly FilterConfigPath[], suppress: (path: FilterConfigPath) => void): boolean;
  /**
   * Route keys whose rules read another route key (rate-limit: a claim limit needs `auth`):
   * when `routes[i].<read>` is suppressed, so is `routes[i].<key>`.
   */
  readonly routeKeyReads?: Readonly<Record<string, readonly string[]>>;
}

/**
 * A filter: one folder under src/filters/ exports one factory, and src/filters/index.ts lists
 * it (one line). The config schema and every route's chain are assembled from that list.
 *   phase      — where it sits in a chain (FILTER_PHASES; the registry orders within a phase);
 *   routeKeys  — the keys it adds to `routes[]` (zod shapes, written with src/control/schema-kit.ts);
 *   sections   — the top-level sections it adds (e.g. `auth`, `rate_limits`);
 *   compile    — control plane, once per config: validate (report() with key paths), normalise,
 *                precompute; `In` is what it reads of the validated config (a structural part
 *                of RawConfig, checked where the registry is used); returns plain,
 *                structured-cloneable `C` per route (and optional instance-level runtime);
 *   build      — data plane, in each worker once per route per generation, from that `C`;
 *   mend       — optional: how a config whose schema failed is mended to report every error
 *                at once (FilterMend); without it, an issue in its sections stops that pass.
 */
export interface FilterFactory<C, In> {
  readonly name: string;
  readonly phase: FilterPhase;
  readonly routeKeys: Readonly<Record<string, ZodType>>;
  readonly sections: Readonly<Record<string, ZodType>>;
  compile(config: In, ctx: FilterCompileContext): FilterCompilation<C>;
  build(config: C, env: WorkerEnv): Filter;
  readonly mend?: FilterMend;
}

/** Builds a route's filter from its compiled entry (the registry's lookup; generation.ts gets it from its worker). */
export type FilterBuilder = (filter: CompiledFilter, env: WorkerEnv) => Filter;

/**
 * Runs the route's filters from ctx.nextFilter, inside the one fault handler; forwards the
 * request when every filter said NEXT. Entry (server.ts) and resume (a WAIT that finished)
 * both come here. Hot path: an empty chain costs one comparison and a try block.
 */
export function runChain(ctx: RequestContext): void {
  try {
    const filters = ctx.route!.filters;
    for (let i = ctx.nextFilter; i < filters.length; i++) {
      const verdict = filters[i].onRequest(ctx);
      if (verdict === NEXT) continue;
      ctx.nextFilter = i + 1;
      return;
    }
    ctx.nextFilter = filters.length;
    if (!ctx.ended) forward(ctx);
  } catch (err) {
    logRequestFault(ctx, err);
    sendLocalReply(ctx, GW_ERR.internal_error, true);
  }
}

/** Continues the chain after a filter that returned WAIT finished its async work. */
export function resumeChain(ctx: RequestContext): void {
  if (ctx.ended) return;
  runChain(ctx);
}
