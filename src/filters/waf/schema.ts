// The `waf` filter's part of the config schema: a top-level `waf` section (the default for
// every route) and a route's `waf` (its own settings over the default, or false: off).
import { z } from 'zod';
import { HEADER_NAME_TOKEN, section } from '../../control/schema-kit.js';

const exclusion = section({
  rule: z.number().int().min(1).optional(),
  field: z.string().min(1).max(256).optional(),
}).refine((e) => e.rule !== undefined || e.field !== undefined, { error: 'needs rule, field or both' });

export const wafSchema = section({
  mode: z.enum(['block', 'report']).optional(),
  paranoia: z.number().int().min(1).max(4).optional(),
  threshold: z.number().int().min(1).max(1000).optional(),
  headers: z.array(z.string().regex(HEADER_NAME_TOKEN, 'must be a header name')).max(32).optional(),
  inspect_body: z.boolean().optional(),
  json_max_depth: z.number().int().min(1).max(256).optional(),
  json_max_keys: z.number().int().min(1).max(100_000).optional(),
  unbuffered_body: z.enum(['refuse', 'allow']).optional(),
  exclude: z.array(exclusion).max(1000).optional(),
});
export type WafSettings = z.infer<typeof wafSchema>;

export const wafRouteKeys = { waf: z.union([z.literal(false), wafSchema]).optional() };
export const wafSections = { waf: wafSchema.optional() };
