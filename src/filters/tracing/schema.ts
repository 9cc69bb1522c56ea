// The `tracing` filter's part of the config schema: the top-level `tracing` section (W3C trace
// context on every route, the sampling ratio of new traces, optional OTLP/HTTP export) and
// `routes[].tracing` (false: this route neither reads nor sends trace context).
import { z } from 'zod';
import { milliseconds, section } from '../../control/schema-kit.js';

function checkEndpoint(raw: string): string | null {
  let url: URL;
  try { url = new URL(raw); } catch { return 'must be an http:// or https:// URL, like "http://127.0.0.1:4318/v1/traces"'; }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http:// or https:// URL';
  if (url.username !== '' || url.password !== '') return 'must not hold credentials';
  return null;
}

export const otlpSection = section({
  endpoint: z.string().superRefine((value, ctx) => {
    const error = checkEndpoint(value);
    if (error !== null) ctx.addIssue({ code: 'custom', message: error });
  }),
  service_name: z.string().min(1).max(256).default('lobby'),
  batch_size: z.number().int().min(1).max(10_000).default(512),
  flush_interval_ms: milliseconds.default(1000),
  max_queue: z.number().int().min(1).max(1_000_000).default(8192),
  timeout_ms: milliseconds.default(5000),
});

export const tracingSection = section({
  enabled: z.boolean().default(true),
  sample: z.number().min(0).max(1).default(1),
  otlp: otlpSection.optional(),
});

export type RawTracing = z.output<typeof tracingSection>;
export type RawOtlp = z.output<typeof otlpSection>;

export const tracingRouteKeys = { tracing: z.boolean().optional() };
export const tracingSections = { tracing: tracingSection.optional() };
