// Protobuf binary -> proto3 JSON text, walking the descriptors. Fields print in declaration
// order; unknown fields are skipped (JSON has no place for them).
import protobuf from 'protobufjs';
import type { Reader, Root } from 'protobufjs';

import { childPath, MAX_DEPTH, ProtoJsonError } from './errors.js';
import { typeInfo, resolveAnyType, wireOf, Wkt, type FieldInfo, type Kind, type TypeInfo } from './descriptors.js';
import { base64Encode, printDouble, printDuration, printFieldMask, printFloat, printTimestamp } from './scalars.js';

export interface DecodeContext {
  readonly emitDefaults: boolean;
  readonly protoFieldNames: boolean;
  readonly enumsAs: 'name' | 'number';
  readonly registry: Root;
}

type Raw = number | string | boolean | Uint8Array;
interface Long { toString(): string; toNumber(): number }

function readRaw(r: Reader, kind: Kind): Raw {
  switch (kind) {
    case 'int32': case 'enum': return r.int32();
    case 'uint32': return r.uint32();
    case 'sint32': return r.sint32();
    case 'fixed32': return r.fixed32();
    case 'sfixed32': return r.sfixed32();
    case 'float': return r.float();
    case 'double': return r.double();
    case 'bool': return r.bool();
    case 'string': return r.string();
    case 'bytes': case 'message': return r.bytes();
    // 64-bit values stay exact: protobufjs returns a Long, whose toString is exact.
    case 'int64': return (r.int64() as unknown as Long).toString();
    case 'uint64': return (r.uint64() as unknown as Long).toString();
    case 'sint64': return (r.sint64() as unknown as Long).toString();
    case 'fixed64': return (r.fixed64() as unknown as Long).toString();
    case 'sfixed64': return (r.sfixed64() as unknown as Long).toString();
  }
}

function isDefaultRaw(v: Raw): boolean {
  return v === 0 ? Object.is(v, 0) : v === '0' || v === false || v === '' || (v instanceof Uint8Array && v.length === 0);
}

/** Per field index: a Raw (singular scalar), Uint8Array[] (singular message: occurrences merge),
 * Raw[] (repeated), Map (map: key text -> value, last wins). */
type Slot = Raw | Uint8Array[] | Raw[] | Map<string, Raw> | undefined;

interface Collected {
  slots: Slot[];
  /** Oneof name -> index of the member seen last (the one that is set). */
  oneofs: Map<string, number> | null;
}

const EMPTY = new Uint8Array(0);

function collect(info: TypeInfo, bytes: Uint8Array, path: string): Collected {
  const slots: Slot[] = new Array(info.fields.length);
  let oneofs: Map<string, number> | null = null;
  const r = protobuf.Reader.create(bytes);
  try {
    while (r.pos < r.len) {
      const t = r.uint32();
      const wire = t & 7;
      const fi = info.byId.get(t >>> 3);
      if (fi === undefined) { r.skipType(wire); continue; }
      const expected = wireOf(fi.kind);
      if (fi.map) {
        if (wire !== 2) { r.skipType(wire); continue; }
        const map = (slots[fi.index] ??= new Map<string, Raw>()) as Map<string, Raw>;
        readEntry(fi, r.bytes(), map);
      } else if (fi.repeated) {
        const arr = (slots[fi.index] ??= []) as Raw[];
        if (wire === 2 && expected !== 2) {
          const end = r.uint32() + r.pos;
          while (r.pos < end) arr.push(readRaw(r, fi.kind));
        } else if (wire === expected) {
          arr.push(readRaw(r, fi.kind));
        } else {
          r.skipType(wire);
        }
      } else if (wire !== expected) {
        r.skipType(wire);
      } else {
        if (fi.kind === 'message') {
          const prev = slots[fi.index];
          // A oneof switching members drops what the other member had.
          if (Array.isArray(prev) && (fi.oneof === null || oneofs?.get(fi.oneof) === fi.index)) prev.push(r.bytes());
          else slots[fi.index] = [r.bytes()];
        } else {
          slots[fi.index] = readRaw(r, fi.kind);
        }
        if (fi.oneof !== null) (oneofs ??= new Map()).set(fi.oneof, fi.index);
      }
    }
  } catch (e) {
    if (e instanceof ProtoJsonError) throw e;
    throw new ProtoJsonError(path, `malformed protobuf for ${info.type.name}`);
  }
  return { slots, oneofs };
}

function keyText(raw: Raw): string {
  return typeof raw === 'string' ? raw : String(raw);
}

function readEntry(fi: FieldInfo, bytes: Uint8Array, map: Map<string, Raw>): void {
  const r = protobuf.Reader.create(bytes);
  const keyKind = fi.keyKind!;
  let key: Raw = defaultRaw(keyKind);
  let value: Raw | undefined;
  while (r.pos < r.len) {
    const t = r.uint32();
    const id = t >>> 3;
    const wire = t & 7;
    if (id === 1 && wire === wireOf(keyKind)) key = readRaw(r, keyKind);
    else if (id === 2 && wire === wireOf(fi.kind)) value = readRaw(r, fi.kind);
    else r.skipType(wire);
  }
  map.set(keyText(key), value ?? defaultRaw(fi.kind));
}

function defaultRaw(kind: Kind): Raw {
  switch (kind) {
    case 'string': return '';
    case 'bytes': case 'message': return EMPTY;
    case 'bool': return false;
    case 'int64': case 'uint64': case 'sint64': case 'fixed64': case 'sfixed64': return '0';
    default: return 0;
  }
}

function printScalar(fi: FieldInfo, kind: Kind, v: Raw, path: string, ctx: DecodeContext, depth: number): string {
  switch (kind) {
    case 'string': return JSON.stringify(v);
    case 'bytes': return `"${base64Encode(v as Uint8Array)}"`;
    case 'bool': return v ? 'true' : 'false';
    case 'float': return printFloat(v as number);
    case 'double': return printDouble(v as number);
    case 'int64': case 'uint64': case 'sint64': case 'fixed64': case 'sfixed64': return `"${v as string}"`;
    case 'enum': {
      if (fi.isNullValue) return 'null';
      if (ctx.enumsAs === 'number') return String(v);
      const name = fi.enumType!.valuesById[v as number];
      return name === undefined ? String(v) : JSON.stringify(name);
    }
    case 'message': return printMessage(typeInfo(fi.messageType!), v as Uint8Array, path, ctx, depth + 1);
    default: return String(v);
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

function printDefault(fi: FieldInfo, ctx: DecodeContext): string {
  if (fi.map) return '{}';
  if (fi.repeated) return '[]';
  if (fi.kind === 'enum') {
    if (fi.isNullValue) return 'null';
    const name = fi.enumType!.valuesById[0];
    return ctx.enumsAs === 'number' || name === undefined ? '0' : JSON.stringify(name);
  }
  return printScalar(fi, fi.kind, defaultRaw(fi.kind), '', ctx, 0);
}

/** JSON text of one message of type `info`. */
export function printMessage(info: TypeInfo, bytes: Uint8Array, path: string, ctx: DecodeContext, depth: number): string {
  if (depth > MAX_DEPTH) throw new ProtoJsonError(path, `messages nested deeper than ${MAX_DEPTH}`);
  if (info.wkt !== Wkt.None) return printWkt(info, bytes, path, ctx, depth);
  const { slots, oneofs } = collect(info, bytes, path);
  let out = '';
  for (const fi of info.fields) {
    const v = slots[fi.index];
    let text: string;
    if (v === undefined || (!fi.presence && !fi.repeated && !fi.map && isDefaultRaw(v as Raw))) {
      if (!ctx.emitDefaults || fi.presence) continue;
      text = printDefault(fi, ctx);
    } else {
      if (fi.oneof !== null && oneofs?.get(fi.oneof) !== fi.index) continue;
      text = printField(fi, v, childPath(path, fi.jsonName), ctx, depth);
    }
    out += (out === '' ? '{' : ',') + (ctx.protoFieldNames ? fi.protoKey : fi.jsonKey) + ':' + text;
  }
  return out === '' ? '{}' : out + '}';
}

function printField(fi: FieldInfo, v: Slot, path: string, ctx: DecodeContext, depth: number): string {
  if (fi.map) {
    let out = '';
    for (const [k, val] of v as Map<string, Raw>) {
      out += (out === '' ? '{' : ',') + JSON.stringify(k) + ':' + printScalar(fi, fi.kind, val, `${path}[]`, ctx, depth);
    }
    return out === '' ? '{}' : out + '}';
  }
  if (fi.repeated) {
    const arr = v as Raw[];
    let out = '[';
    for (let i = 0; i < arr.length; i++) {
      if (i > 0) out += ',';
      out += printScalar(fi, fi.kind, arr[i]!, `${path}[${i}]`, ctx, depth);
    }
    return out + ']';
  }
  if (fi.kind === 'message') return printMessage(typeInfo(fi.messageType!), concat(v as Uint8Array[]), path, ctx, depth + 1);
  return printScalar(fi, fi.kind, v as Raw, path, ctx, depth);
}

// ---- well-known types ------------------------------------------------------------------------

function slotOf(info: TypeInfo, c: Collected, name: string): Slot {
  return c.slots[info.byKey.get(name)!.index];
}

function secondsNanos(info: TypeInfo, bytes: Uint8Array, path: string): [number, number] {
  const c = collect(info, bytes, path);
  const s = slotOf(info, c, 'seconds');
  const n = slotOf(info, c, 'nanos');
  const secs = s === undefined ? 0 : Number(s as string);
  return [secs, n === undefined ? 0 : (n as number)];
}

function printWkt(info: TypeInfo, bytes: Uint8Array, path: string, ctx: DecodeContext, depth: number): string {
  switch (info.wkt) {
    case Wkt.Timestamp: {
      const [s, n] = secondsNanos(info, bytes, path);
      return `"${printTimestamp(s, n, path)}"`;
    }
    case Wkt.Duration: {
      const [s, n] = secondsNanos(info, bytes, path);
      return `"${printDuration(s, n, path)}"`;
    }
    case Wkt.FieldMask: {
      const paths = (slotOf(info, collect(info, bytes, path), 'paths') ?? []) as string[];
      return JSON.stringify(printFieldMask(paths, path));
    }
    case Wkt.Wrapper: {
      const fi = info.byKey.get('value')!;
      const v = collect(info, bytes, path).slots[fi.index] as Raw | undefined;
      return printScalar(fi, fi.kind, v ?? defaultRaw(fi.kind), path, ctx, depth);
    }
    case Wkt.Empty:
      return '{}';
    case Wkt.Struct:
      return printStruct(info, bytes, path, ctx, depth);
    case Wkt.ListValue: {
      const items = (slotOf(info, collect(info, bytes, path), 'values') ?? []) as Uint8Array[];
      const vi = typeInfo(info.byKey.get('values')!.messageType!);
      return '[' + items.map((b, i) => printValue(vi, b, `${path}[${i}]`, ctx, depth + 1)).join(',') + ']';
    }
    case Wkt.Value:
      return printValue(info, bytes, path, ctx, depth);
    case Wkt.Any:
      return printAny(info, bytes, path, ctx, depth);
    case Wkt.None:
      throw new Error('printWkt on a plain message');
  }
}

function printStruct(info: TypeInfo, bytes: Uint8Array, path: string, ctx: DecodeContext, depth: number): string {
  const fi = info.byKey.get('fields')!;
  const map = collect(info, bytes, path).slots[fi.index] as Map<string, Uint8Array> | undefined;
  if (map === undefined) return '{}';
  const vi = typeInfo(fi.messageType!);
  let out = '';
  for (const [k, v] of map) out += (out === '' ? '{' : ',') + JSON.stringify(k) + ':' + printValue(vi, v, `${path}[]`, ctx, depth + 1);
  return out === '' ? '{}' : out + '}';
}

function printValue(info: TypeInfo, bytes: Uint8Array, path: string, ctx: DecodeContext, depth: number): string {
  if (depth > MAX_DEPTH) throw new ProtoJsonError(path, `messages nested deeper than ${MAX_DEPTH}`);
  const c = collect(info, bytes, path);
  const set = c.oneofs?.get('kind');
  if (set === undefined) throw new ProtoJsonError(path, 'google.protobuf.Value has no kind set');
  const fi = info.fields[set]!;
  const v = c.slots[set]!;
  switch (fi.protoName) {
    case 'null_value': return 'null';
    case 'number_value':
      if (!Number.isFinite(v as number)) throw new ProtoJsonError(path, 'a Value number cannot be NaN or Infinity');
      return printDouble(v as number);
    case 'string_value': return JSON.stringify(v);
    case 'bool_value': return v ? 'true' : 'false';
    default: return printMessage(typeInfo(fi.messageType!), concat(v as Uint8Array[]), path, ctx, depth + 1);
  }
}

function printAny(info: TypeInfo, bytes: Uint8Array, path: string, ctx: DecodeContext, depth: number): string {
  const c = collect(info, bytes, path);
  const url = (slotOf(info, c, 'type_url') ?? '') as string;
  const value = (slotOf(info, c, 'value') ?? EMPTY) as Uint8Array;
  if (url === '') {
    if (value.length === 0) return '{}';
    throw new ProtoJsonError(path, 'Any has a value but no type URL');
  }
  const type = resolveAnyType(url, ctx.registry);
  if (type === null) throw new ProtoJsonError(childPath(path, '@type'), 'Any type is not in the type registry');
  const inner = typeInfo(type);
  const head = `{"@type":${JSON.stringify(url)}`;
  const body = printMessage(inner, value, path, ctx, depth + 1);
  if (inner.wkt !== Wkt.None) return `${head},"value":${body}}`;
  return body === '{}' ? head + '}' : `${head},${body.slice(1)}`;
}
