// The `access-log` filter's compile: a route's settings are its `access_log` keys over the
// top-level `access_log` (absent = off), resolved here once; the file's folder must exist.
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { FilterCompilation, FilterCompileContext } from '../../data/chain.js';
import type { RawAccessLog, RawRouteAccessLog } from './schema.js';
import { ACCESS_LOG_FIELDS, STDOUT, type AccessLogField } from './fields.js';

export interface AccessLogFilterConfig {
  /** 'stdout', or an absolute file path. */
  path: string;
  sample: number;
  onlyErrors: boolean;
  fields: AccessLogField[];
}

export interface AccessLogInput {
  access_log?: RawAccessLog;
  routes: readonly { access_log?: RawRouteAccessLog }[];
}

export function compileAccessLog(config: AccessLogInput, ctx: FilterCompileContext): FilterCompilation<AccessLogFilterConfig> {
  const global = config.access_log;
  const checked = new Map<string, string>();
  const resolvePath = (raw: string, at: readonly (string | number)[]): string => {
    if (raw === STDOUT) return STDOUT;
    const file = resolve(ctx.baseDir, raw);
    if (!checked.has(file)) {
      const dir = dirname(file);
      const problem = !existsSync(dir) || !statSync(dir).isDirectory() ? `folder ${dir} does not exist`
        : existsSync(file) && statSync(file).isDirectory() ? `${file} is a folder, not a file` : '';
      checked.set(file, problem);
      if (problem !== '') ctx.report(at, `cannot write the access log: ${problem}`);
    }
    return file;
  };
  const compiled = (route: RawRouteAccessLog | undefined, at: readonly (string | number)[]): AccessLogFilterConfig | null => {
    const enabled = route?.enabled ?? (global !== undefined ? global.enabled : route !== undefined);
    if (!enabled) return null;
    const fromRoute = route?.path !== undefined;
    return {
      path: resolvePath(route?.path ?? global?.path ?? STDOUT, fromRoute ? [...at, 'path'] : ['access_log', 'path']),
      sample: route?.sample ?? global?.sample ?? 1,
      onlyErrors: route?.only_errors ?? global?.only_errors ?? false,
      fields: [...(route?.fields ?? global?.fields ?? ACCESS_LOG_FIELDS)],
    };
  };
  const perRoute = config.routes.map((route, index) => compiled(route.access_log, ['routes', index, 'access_log']));
  return {
    route: (index) => perRoute[index],
    unrouted: global !== undefined ? compiled(undefined, ['access_log']) : null,
  };
}
