// The `access-log` filter's part of the config schema: the top-level `access_log` section (the
// default for every route, and the line of requests that match no route) and `routes[].access_log`
// (overrides it key by key for one route).
import { z } from 'zod';
import { section } from '../../control/schema-kit.js';
import { ACCESS_LOG_FIELDS } from './fields.js';

const fields = z.array(z.enum(ACCESS_LOG_FIELDS)).min(1, { error: 'must list at least one field (omit fields for all)' });
const sample = z.number().min(0).max(1);
/** `stdout`, or a file (relative to the config file's folder); opened for appending. */
const path = z.string().min(1);

export const accessLogSection = section({
  enabled: z.boolean().default(true),
  path: path.default('stdout'),
  sample: sample.default(1),
  only_errors: z.boolean().default(false),
  fields: fields.optional(),
});

export const accessLogRoute = section({
  enabled: z.boolean().optional(),
  path: path.optional(),
  sample: sample.optional(),
  only_errors: z.boolean().optional(),
  fields: fields.optional(),
});

export type RawAccessLog = z.output<typeof accessLogSection>;
export type RawRouteAccessLog = z.output<typeof accessLogRoute>;

export const accessLogRouteKeys = { access_log: accessLogRoute.optional() };
export const accessLogSections = { access_log: accessLogSection.optional() };
