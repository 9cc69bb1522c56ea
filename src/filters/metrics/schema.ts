// The `metrics` filter's part of the config schema: the top-level `metrics` section.
import { z } from 'zod';
import { section } from '../../control/schema-kit.js';

/** Prometheus client defaults, widened to 10 s: a gateway's requests span 1 ms to seconds. */
export const DEFAULT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** More buckets make every scrape and every route's histogram bigger; this is plenty. */
export const MAX_BUCKETS = 40;

const buckets = z.array(z.number().positive().finite())
  .min(1, { error: 'must list at least one bucket bound (seconds)' })
  .max(MAX_BUCKETS, { error: `must list at most ${MAX_BUCKETS} bucket bounds` })
  .superRefine((list, ctx) => {
    for (let i = 1; i < list.length; i++) {
      if (list[i] <= list[i - 1]) {
        ctx.addIssue({ code: 'custom', path: [i], message: `must be greater than the bound before it (${list[i - 1]}): bounds are ascending seconds` });
      }
    }
  });

export const metricsSchema = section({
  /** Default: on when there is an `admin` listener (the only place metrics are read), else off. */
  enabled: z.boolean().optional(),
  status_codes: z.enum(['class', 'code']).default('class'),
  buckets: buckets.default(DEFAULT_BUCKETS),
  upstream_buckets: buckets.optional(),
  latency_reports: z.boolean().default(true),
});

export type RawMetrics = z.output<typeof metricsSchema>;

export const metricsSections = { metrics: metricsSchema.prefault({}) };
