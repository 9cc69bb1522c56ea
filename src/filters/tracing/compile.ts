// The `tracing` filter's compile: every route gets the filter when `tracing` is on, unless the
// route says `tracing: false`.
import type { FilterCompilation } from '../../data/chain.js';
import type { RawTracing } from './schema.js';

export interface TracingFilterConfig {
  /** Probability that a trace started here is sampled. */
  sample: number;
  otlp: {
    endpoint: string; serviceName: string; batchSize: number; flushIntervalMs: number; maxQueue: number; timeoutMs: number;
  } | null;
}

export interface TracingInput {
  tracing?: RawTracing;
  routes: readonly { tracing?: boolean }[];
}

export function compileTracing(config: TracingInput): FilterCompilation<TracingFilterConfig> {
  const t = config.tracing;
  const compiled: TracingFilterConfig | null = t === undefined || !t.enabled ? null : {
    sample: t.sample,
    otlp: t.otlp === undefined ? null : {
      endpoint: t.otlp.endpoint, serviceName: t.otlp.service_name, batchSize: t.otlp.batch_size,
      flushIntervalMs: t.otlp.flush_interval_ms, maxQueue: t.otlp.max_queue, timeoutMs: t.otlp.timeout_ms,
    },
  };
  return { route: (index) => (compiled !== null && config.routes[index].tracing !== false ? compiled : null) };
}
