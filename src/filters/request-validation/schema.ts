// The `request-validation` filter's part of the config schema: `routes[].validate`, per method
// (or `*` for every method without its own) a JSON Schema (draft 2020-12) for the body and/or
// the query parameters. The schemas themselves are checked by ajv at compile (compile.ts).
import { z } from 'zod';
import { section } from '../../control/schema-kit.js';

const jsonSchema = z.union([z.record(z.string(), z.unknown()), z.boolean()]);
const methodSchemas = section({ body: jsonSchema.optional(), query: jsonSchema.optional() });

export const validateRouteKeys = {
  validate: z.record(z.string().regex(/^(?:[A-Z]{1,20}|\*)$/, 'must be a method in capitals (POST) or *'), methodSchemas).optional(),
};
export type ValidateSettings = NonNullable<z.infer<typeof validateRouteKeys.validate>>;
