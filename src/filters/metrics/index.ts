// The `metrics` filter: schema.ts (the `metrics` section), compile.ts (control plane: labels,
// buckets and each route's counter offsets), filter.ts (data plane: onEnd records into the
// worker's shared counters), latency.ts (per-route HDR histograms for the live latency report).
// The control plane's side (allocation, summing, exposition) is src/control/metrics-store.ts and
// src/control/observability.ts. docs/observability.md.
import type { FilterFactory } from '../../data/chain.js';
import { compileMetrics, type MetricsFilterConfig, type MetricsInput } from './compile.js';
import { buildMetrics } from './filter.js';
import { metricsSections } from './schema.js';

export const metrics = {
  name: 'metrics',
  // Last in the chain: it records in onEnd only, after every other filter had its say.
  phase: 'transform',
  routeKeys: {},
  sections: metricsSections,
  compile: compileMetrics,
  build: buildMetrics,
} as const satisfies FilterFactory<MetricsFilterConfig, MetricsInput>;
