// The `request-validation` filter (issue 16; docs/security-filters.md#request-validation): a
// route's `validate` schemas, compiled by ajv at config load (a schema ajv refuses is a config
// error at its key path) and again in each worker (compiled functions do not cross threads).
import type { FilterCompilation, FilterCompileContext, FilterFactory } from '../../data/chain.js';
import { methodBit } from '../../shared/methods.js';
import { validateRouteKeys, type ValidateSettings } from './schema.js';
import { compileSchema } from './ajv.js';
import { buildRequestValidation, type RequestValidationConfig } from './filter.js';

export interface RequestValidationInput {
  routes: readonly { validate?: ValidateSettings }[];
}

export function compileRequestValidation(config: RequestValidationInput, ctx: FilterCompileContext): FilterCompilation<RequestValidationConfig> {
  const compiled = config.routes.map((route, index): RequestValidationConfig | null => {
    if (route.validate === undefined) return null;
    const entries: { methodBit: number; body: unknown; query: unknown }[] = [];
    for (const [method, schemas] of Object.entries(route.validate)) {
      for (const part of ['body', 'query'] as const) {
        const schema = schemas[part];
        if (schema === undefined) continue;
        try {
          compileSchema(schema, part);
        } catch (err) {
          ctx.report(['routes', index, 'validate', method, part], `not a valid JSON Schema (draft 2020-12): ${(err as Error).message}`);
        }
      }
      entries.push({ methodBit: method === '*' ? 0 : methodBit(method), body: schemas.body ?? null, query: schemas.query ?? null });
    }
    return { entries };
  });
  return { route: (index) => compiled[index] };
}

export const requestValidation = {
  name: 'request-validation',
  phase: 'policy',
  routeKeys: validateRouteKeys,
  sections: {},
  compile: compileRequestValidation,
  build: buildRequestValidation,
} as const satisfies FilterFactory<RequestValidationConfig, RequestValidationInput>;
