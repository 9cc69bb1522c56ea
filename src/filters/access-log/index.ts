// The `access-log` filter: schema.ts (`access_log` at the top and under `routes[]`), compile.ts
// (control plane: per-route settings over the global ones, and the line of unrouted
// requests), filter.ts (data plane: the line, in onEnd), writer.ts (per-worker buffered pino
// destinations, reopened on SIGUSR1, flushed on drain). Phase `transform`, last in the
// registry: its onRequest marks the moment the request leaves for the upstream.
import type { FilterFactory } from '../../data/chain.js';
import { accessLogRouteKeys, accessLogSections } from './schema.js';
import { compileAccessLog, type AccessLogFilterConfig, type AccessLogInput } from './compile.js';
import { buildAccessLog } from './filter.js';

export const accessLog = {
  name: 'access-log',
  phase: 'transform',
  routeKeys: accessLogRouteKeys,
  sections: accessLogSections,
  compile: compileAccessLog,
  build: buildAccessLog,
} as const satisfies FilterFactory<AccessLogFilterConfig, AccessLogInput>;
