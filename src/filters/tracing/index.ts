// The `tracing` filter: W3C trace context (trace-context.ts) read and propagated with Lobby's
// own span id, and optional OTLP/HTTP export of one span per sampled request (otlp.ts).
// schema.ts (`tracing` at the top, `routes[].tracing: false`), compile.ts, filter.ts.
// Phase `edge`, first in the registry: a request refused by auth or a rate limit is traced too.
import type { FilterFactory } from '../../data/chain.js';
import { tracingRouteKeys, tracingSections } from './schema.js';
import { compileTracing, type TracingFilterConfig, type TracingInput } from './compile.js';
import { buildTracing } from './filter.js';

export const tracing = {
  name: 'tracing',
  phase: 'edge',
  routeKeys: tracingRouteKeys,
  sections: tracingSections,
  compile: compileTracing,
  build: buildTracing,
} as const satisfies FilterFactory<TracingFilterConfig, TracingInput>;
