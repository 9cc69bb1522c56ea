// One ajv setup for the control plane's check and the workers' build: draft 2020-12, every
// error (so a 400 names every failing pointer), formats from ajv-formats. Query values are
// strings on the wire: their schemas compile with type coercion ("5" for an integer).
import { createRequire } from 'node:module';
import type { ValidateFunction } from 'ajv';

const require = createRequire(import.meta.url);
type AjvClass = new (opts: object) => { compile(schema: unknown): ValidateFunction };
const Ajv2020 = (require('ajv/dist/2020.js') as { default: AjvClass }).default;
const addFormats = (require('ajv-formats') as { default: (ajv: unknown) => void }).default;

function make(coerce: boolean) {
  const ajv = new Ajv2020({ allErrors: true, strict: false, coerceTypes: coerce ? 'array' : false, useDefaults: false, messages: false });
  addFormats(ajv);
  return ajv;
}
let bodyAjv: ReturnType<typeof make> | null = null;
let queryAjv: ReturnType<typeof make> | null = null;

export function compileSchema(schema: unknown, part: 'body' | 'query'): ValidateFunction {
  if (part === 'body') return (bodyAjv ??= make(false)).compile(schema);
  return (queryAjv ??= make(true)).compile(schema);
}
export type { ValidateFunction };
