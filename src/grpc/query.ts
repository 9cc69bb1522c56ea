// Query parameters → request fields (the fields no path variable and no body binds):
// `a.b=1` for nested fields, `x=1&x=2` for repeated ones, `m[k]=v` for an entry of a map field
// (grpc-gateway v2's form), `+` as a space, percent-decoded (strict UTF-8). A parameter naming
// a path-bound field, or a field the body carries, is a 400, never an override (grpc-gateway
// #3069).
import type protobuf from 'protobufjs';
import { decodePercent, PercentError } from './percent.js';
import { fieldAt } from './transcoder.js';
import { TranscodeInputError, type BoundValue } from './codec.js';

/** Field names by proto name and by JSON (lowerCamel) name, per message type. */
const namesOf = new WeakMap<protobuf.Type, Map<string, string>>();
function protoName(type: protobuf.Type, name: string): string | undefined {
  let names = namesOf.get(type);
  if (names === undefined) {
    names = new Map();
    for (const f of type.fieldsArray) {
      names.set(f.name, f.name);
      names.set(f.name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()), f.name);
    }
    namesOf.set(type, names);
  }
  return names.get(name);
}

/** `a.b` of the query (proto or JSON names) as a proto field path, or null if no such field. */
function resolvePath(type: protobuf.Type, dotted: string): string[] | null {
  const out: string[] = [];
  let t: protobuf.Type = type;
  const parts = dotted.split('.');
  for (let i = 0; i < parts.length; i++) {
    const name = protoName(t, parts[i]);
    if (name === undefined) return null;
    out.push(name);
    if (i < parts.length - 1) {
      const f = fieldAt(t, out.slice(-1));
      if (typeof f === 'string') return null;
      const next = f.resolve().resolvedType;
      if (next === null || !('fields' in next)) return null;
      t = next as protobuf.Type;
    }
  }
  return out;
}

const isPrefix = (a: readonly string[], b: readonly string[]) => a.length <= b.length && a.every((s, i) => s === b[i]);

/**
 * The query's values for `type`. `bound` are the path's (a parameter naming one, or a field
 * under or above one, is refused); `bodyField` ('' none, '*' all) the body's: with `*` every
 * parameter is unknown, and the body's field may not be named either.
 */
export function queryValues(
  query: string, type: protobuf.Type, bound: readonly BoundValue[], bodyField: string, rejectUnknown: boolean,
): BoundValue[] {
  const out: BoundValue[] = [];
  if (query === '') return out;
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    let key: string, value: string;
    try {
      key = decodePercent(eq < 0 ? pair : pair.slice(0, eq), false, true);
      value = eq < 0 ? '' : decodePercent(pair.slice(eq + 1), false, true);
    } catch (err) {
      if (err instanceof PercentError) throw new TranscodeInputError(`query parameter: ${err.message}`);
      throw err;
    }
    // `name[key]`: a map entry. The key is what lies between the first `[` (a field path has
    // none) and the final `]`, decoded with the rest, so `labels%5Bk%5D` is the same parameter
    // and a key may hold brackets. Whether `name` is a map is the codec's check (bound.ts).
    let name = key;
    let mapKey: string | undefined;
    const open = key.indexOf('[');
    if (open > 0 && key.charCodeAt(key.length - 1) === 0x5d /* ] */) {
      name = key.slice(0, open);
      mapKey = key.slice(open + 1, -1);
    }
    const path = bodyField === '*' ? null : resolvePath(type, name);
    if (path === null || (bodyField !== '' && path[0] === bodyField)) {
      if (rejectUnknown) throw new TranscodeInputError(`unknown query parameter ${JSON.stringify(key)}`, 'unknown_query');
      continue;
    }
    for (const b of bound) {
      if (isPrefix(path, b.fieldPath) || isPrefix(b.fieldPath, path)) {
        throw new TranscodeInputError(`query parameter ${JSON.stringify(key)} names the field "${b.fieldPath.join('.')}", which the path binds`, 'conflict');
      }
    }
    const field = fieldAt(type, path);
    if (typeof field !== 'string' && !field.map && field.resolve().resolvedType !== null && 'fields' in field.resolvedType!) {
      // Well-known types with a string form (Timestamp, Duration, FieldMask, wrappers) are the
      // codec's to read; other messages cannot come from one string.
      if (!field.resolvedType!.fullName.startsWith('.google.protobuf.')) {
        throw new TranscodeInputError(`query parameter ${JSON.stringify(key)} names a message field; name one of its fields (${key}.x=...)`);
      }
    }
    out.push({ fieldPath: path, value, source: 'query', mapKey });
  }
  return out;
}
