// JSON tree (json-text.ts) + path/query bindings -> protobuf binary, walking the descriptors.
import protobuf from 'protobufjs';
import type { Enum, Root, Writer } from 'protobufjs';

import { childPath, MAX_DEPTH, ProtoJsonError, safeName } from './errors.js';
import { JsonNumber, JsonObject, type JsonValue } from './json-text.js';
import { typeInfo, resolveAnyType, wireOf, Wkt, type FieldInfo, type Kind, type TypeInfo } from './descriptors.js';
import {
  base64Decode, floatOf, int32InRange, int64Input, INT32, INT64, UINT32, UINT64,
  parseDuration, parseFieldMask, parseTimestamp,
} from './scalars.js';

/** Values bound from the path or the query, by field, below one message. */
export class BoundNode {
  readonly children = new Map<FieldInfo, BoundNode | BoundLeaf>();
}

/** One bound field: its string values (several for a repeated field) and where they came from.
 * For a map field, `keys[i]` is the map key of `values[i]` (query `labels[key]=value`). */
export class BoundLeaf {
  readonly values: string[] = [];
  readonly keys: string[] | null;
  constructor(readonly origin: 'path' | 'query', map = false) {
    this.keys = map ? [] : null;
  }
}

export interface EncodeContext {
  readonly ignoreUnknownFields: boolean;
  readonly registry: Root;
}

function tag(w: Writer, id: number, wire: number): void {
  w.uint32((id << 3) | wire);
}

function describe(v: JsonValue): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'boolean') return 'a boolean';
  if (v instanceof JsonNumber) return 'a number';
  if (Array.isArray(v)) return 'an array';
  return 'an object';
}

/** Text of a JSON number or string, for the numeric kinds (both are accepted). */
function numericText(v: JsonValue, path: string, what: string): { text: string; isString: boolean } {
  if (v instanceof JsonNumber) return { text: v.text, isString: false };
  if (typeof v === 'string') return { text: v, isString: true };
  throw new ProtoJsonError(path, `expected ${what}, got ${describe(v)}`);
}

/** Writes one scalar or enum value without a tag, or throws. `fromText`: the value is a path or
 * query string, so bool and enum numbers come as text too. Callers drop unknown enum names that
 * ignoreUnknownFields lets through before calling (ignoredEnum). */
function writeScalar(w: Writer, fi: FieldInfo, kind: Kind, v: JsonValue, path: string, fromText: boolean): void {
  switch (kind) {
    case 'string':
      if (typeof v !== 'string') throw new ProtoJsonError(path, `expected a string, got ${describe(v)}`);
      w.string(v);
      return;
    case 'bytes':
      if (typeof v !== 'string') throw new ProtoJsonError(path, `expected bytes as a base64 string, got ${describe(v)}`);
      w.bytes(base64Decode(v, path));
      return;
    case 'bool':
      if (typeof v === 'boolean') { w.bool(v); return; }
      if (fromText && (v === 'true' || v === 'false')) { w.bool(v === 'true'); return; }
      throw new ProtoJsonError(path, `expected a boolean, got ${describe(v)}`);
    case 'double': case 'float': {
      const { text, isString } = numericText(v, path, kind === 'float' ? 'a float' : 'a double');
      const n = floatOf(text, isString, kind === 'float', path);
      if (kind === 'float') w.float(n); else w.double(n);
      return;
    }
    case 'int32': case 'sint32': case 'sfixed32': {
      const n = int32InRange(numericText(v, path, 'an int32').text, INT32, path);
      if (kind === 'int32') w.int32(n); else if (kind === 'sint32') w.sint32(n); else w.sfixed32(n);
      return;
    }
    case 'uint32': case 'fixed32': {
      const n = int32InRange(numericText(v, path, 'a uint32').text, UINT32, path);
      if (kind === 'uint32') w.uint32(n); else w.fixed32(n);
      return;
    }
    // protobufjs's Writer takes a Number (exact below 2^53) or {low, high} bits for 64-bit values.
    case 'int64': case 'sint64': case 'sfixed64': {
      const bits = int64Input(numericText(v, path, 'an int64').text, INT64, path) as number;
      if (kind === 'int64') w.int64(bits); else if (kind === 'sint64') w.sint64(bits); else w.sfixed64(bits);
      return;
    }
    case 'uint64': case 'fixed64': {
      const bits = int64Input(numericText(v, path, 'a uint64').text, UINT64, path) as number;
      if (kind === 'uint64') w.uint64(bits); else w.fixed64(bits);
      return;
    }
    case 'enum': {
      const e = fi.enumType!;
      if (fi.isNullValue && v === null) { w.int32(0); return; }
      if (typeof v === 'string') {
        const n = enumNumber(e, v);
        if (n !== undefined) { w.int32(n); return; }
        if (fromText && /^-?[0-9]+$/.test(v)) { w.int32(int32InRange(v, INT32, path)); return; }
        throw new ProtoJsonError(path, `unknown value for enum ${e.name}`);
      }
      if (v instanceof JsonNumber) { w.int32(int32InRange(v.text, INT32, path)); return; }
      throw new ProtoJsonError(path, `expected an enum name or number, got ${describe(v)}`);
    }
    case 'message':
      throw new Error('writeScalar on a message');
  }
}

/** The number of an enum value name. protobufjs's Enum.values inherits from valuesById, so a
 * plain lookup would take "3" for a name: only own keys are names. */
function enumNumber(e: Enum, name: string): number | undefined {
  return Object.hasOwn(e.values, name) ? e.values[name] : undefined;
}

/** Proto3 implicit-presence fields are not written when they hold the default. */
function isDefault(fi: FieldInfo, kind: Kind, v: JsonValue): boolean {
  switch (kind) {
    case 'string': case 'bytes': return v === '';
    case 'bool': return v === false || v === 'false';
    case 'enum':
      return (v instanceof JsonNumber && integerZero(v.text)) || v === null /* NullValue */
        || (typeof v === 'string' && (v === '0' || enumNumber(fi.enumType!, v) === 0));
    case 'message': return false;
    default: return (v instanceof JsonNumber || typeof v === 'string') && integerZero(typeof v === 'string' ? v : v.text);
  }
}

function integerZero(text: string): boolean {
  return /^0(?:\.0+)?(?:[eE][+-]?[0-9]+)?$/.test(text);
}

/** Encodes `v` as a value of message type `info` into `w` (the message's bytes only, no tag). */
export function encodeMessage(w: Writer, info: TypeInfo, v: JsonValue, path: string, ctx: EncodeContext, depth: number, bound: BoundNode | null): void {
  if (depth > MAX_DEPTH) throw new ProtoJsonError(path, `messages nested deeper than ${MAX_DEPTH}`, 'too_deep');
  if (info.wkt !== Wkt.None) {
    if (bound !== null && bound.children.size > 0) throw new ProtoJsonError(path, `${info.type.name} cannot take fields from the path or query`);
    encodeWkt(w, info, v, path, ctx, depth);
    return;
  }
  if (!(v instanceof JsonObject)) throw new ProtoJsonError(path, `expected an object for ${info.type.name}, got ${describe(v)}`);
  // First check the keys and note, per field, which one sets it (index + 1; 0 = none, -1 = null);
  // then write in field-number order, as protobuf's serializers do, so the bytes are canonical
  // whatever the key order (an Any's value, a cache key, a test can compare them).
  const at = new Int32Array(info.fields.length);
  let oneofs: Map<string, FieldInfo> | null = null;
  const { keys, values } = v;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const fi = info.byKey.get(key);
    if (fi === undefined) {
      if (ctx.ignoreUnknownFields) continue;
      throw new ProtoJsonError(childPath(path, safeName(key)), 'unknown field', 'unknown_field');
    }
    if (at[fi.index] !== 0) throw new ProtoJsonError(childPath(path, key), 'field set twice');
    const val = values[i]!;
    // null means "unset", except for google.protobuf.Value and NullValue, where it is a value.
    if (val === null && !(!fi.repeated && !fi.map && (fi.isNullValue || fi.messageType?.fullName === '.google.protobuf.Value'))) {
      at[fi.index] = -1;
      continue;
    }
    at[fi.index] = i + 1;
    const boundHere = bound?.children.get(fi);
    if (boundHere instanceof BoundLeaf) throw conflict(childPath(path, key), boundHere.origin);
    if (fi.oneof !== null) {
      oneofs ??= new Map();
      if (oneofs.has(fi.oneof)) throw new ProtoJsonError(childPath(path, key), `more than one field of oneof ${fi.oneof} is set`);
      oneofs.set(fi.oneof, fi);
    }
  }
  if (bound !== null) {
    for (const fi of bound.children.keys()) {
      if (fi.oneof === null || at[fi.index] > 0) continue;
      const other = oneofs?.get(fi.oneof);
      if (other !== undefined && other !== fi) throw new ProtoJsonError(childPath(path, fi.jsonName), `more than one field of oneof ${fi.oneof} is set`);
    }
  }
  for (const fi of info.byNumber) {
    const k = at[fi.index]!;
    const b = bound?.children.get(fi);
    if (k > 0) {
      encodeField(w, fi, values[k - 1]!, childPath(path, keys[k - 1]!), ctx, depth, (b as BoundNode | undefined) ?? null);
    } else if (b instanceof BoundNode) {
      encodeField(w, fi, new JsonObject(), childPath(path, fi.jsonName), ctx, depth, b);
    } else if (b !== undefined) {
      encodeBoundLeaf(w, fi, b, childPath(path, fi.jsonName), ctx, depth);
    }
  }
}

function conflict(path: string, origin: 'path' | 'query'): ProtoJsonError {
  return new ProtoJsonError(path, `field is bound from the ${origin} and must not also be set in the body`, 'bound_conflict');
}

function encodeBoundLeaf(w: Writer, fi: FieldInfo, leaf: BoundLeaf, path: string, ctx: EncodeContext, depth: number): void {
  if (leaf.keys !== null) {
    // Map entries from the query: key and value from their text, checked as in a body.
    const epath = `${path}[]`;
    for (let i = 0; i < leaf.values.length; i++) {
      tag(w, fi.id, 2);
      w.fork();
      writeMapKey(w, fi, leaf.keys[i]!, epath);
      if (fi.kind === 'message') {
        tag(w, 2, 2);
        w.fork();
        encodeWkt(w, typeInfo(fi.messageType!), leaf.values[i]!, epath, ctx, depth + 1, true);
        w.ldelim();
      } else {
        tag(w, 2, fi.wire);
        writeScalar(w, fi, fi.kind, leaf.values[i]!, epath, true);
      }
      w.ldelim();
    }
    return;
  }
  if (fi.kind === 'message') {
    // A well-known type with a string form (checked when it was bound).
    for (const s of leaf.values) {
      tag(w, fi.id, 2);
      w.fork();
      encodeWkt(w, typeInfo(fi.messageType!), s, path, ctx, depth + 1, true);
      w.ldelim();
    }
    return;
  }
  for (const s of leaf.values) {
    if (!fi.repeated && !fi.presence && isDefault(fi, fi.kind, s)) continue;
    tag(w, fi.id, fi.wire);
    writeScalar(w, fi, fi.kind, s, path, true);
  }
}

/** One field with its tag(s). */
function encodeField(w: Writer, fi: FieldInfo, v: JsonValue, path: string, ctx: EncodeContext, depth: number, bound: BoundNode | null): void {
  if (fi.map) return encodeMap(w, fi, v, path, ctx, depth);
  if (fi.repeated) {
    if (!Array.isArray(v)) throw new ProtoJsonError(path, `expected an array, got ${describe(v)}`);
    if (fi.kind === 'message') {
      const isValue = fi.messageType!.fullName === '.google.protobuf.Value';
      const mi = typeInfo(fi.messageType!);
      for (let i = 0; i < v.length; i++) {
        const el = v[i]!;
        if (el === null && !isValue) throw new ProtoJsonError(`${path}[${i}]`, 'null is not allowed in a repeated field');
        tag(w, fi.id, 2);
        w.fork();
        encodeMessage(w, mi, el, `${path}[${i}]`, ctx, depth + 1, null);
        w.ldelim();
      }
      return;
    }
    if (fi.packed && v.length > 0) {
      tag(w, fi.id, 2);
      w.fork();
      for (let i = 0; i < v.length; i++) writeElement(w, fi, v[i]!, `${path}[${i}]`, ctx);
      w.ldelim();
      return;
    }
    const wire = fi.wire;
    for (let i = 0; i < v.length; i++) {
      const el = v[i]!;
      if (el === null) throw new ProtoJsonError(`${path}[${i}]`, 'null is not allowed in a repeated field');
      if (ignoredEnum(fi, el, ctx)) continue;
      tag(w, fi.id, wire);
      writeScalar(w, fi, fi.kind, el, `${path}[${i}]`, false);
    }
    return;
  }
  if (fi.kind === 'message') {
    tag(w, fi.id, 2);
    w.fork();
    encodeMessage(w, typeInfo(fi.messageType!), v, path, ctx, depth + 1, bound);
    w.ldelim();
    return;
  }
  if (!fi.presence && isDefault(fi, fi.kind, v)) {
    // Still validate (an out-of-range "0e999999" must not pass silently): cheap, defaults are short.
    writeScalar(new protobuf.Writer(), fi, fi.kind, v, path, false);
    return;
  }
  if (ignoredEnum(fi, v, ctx)) return;
  tag(w, fi.id, fi.wire);
  writeScalar(w, fi, fi.kind, v, path, false);
}

/** An enum name this schema does not know, which ignoreUnknownFields drops like an unknown field. */
function ignoredEnum(fi: FieldInfo, v: JsonValue, ctx: EncodeContext): boolean {
  return fi.kind === 'enum' && ctx.ignoreUnknownFields && typeof v === 'string' && enumNumber(fi.enumType!, v) === undefined;
}

function writeElement(w: Writer, fi: FieldInfo, el: JsonValue, path: string, ctx: EncodeContext): void {
  if (el === null) throw new ProtoJsonError(path, 'null is not allowed in a repeated field');
  if (ignoredEnum(fi, el, ctx)) return;
  writeScalar(w, fi, fi.kind, el, path, false);
}

function encodeMap(w: Writer, fi: FieldInfo, v: JsonValue, path: string, ctx: EncodeContext, depth: number): void {
  if (!(v instanceof JsonObject)) throw new ProtoJsonError(path, `expected an object for a map, got ${describe(v)}`);
  const seen = new Set<string>();
  const isValue = fi.messageType?.fullName === '.google.protobuf.Value';
  for (let i = 0; i < v.keys.length; i++) {
    const key = v.keys[i]!;
    const epath = `${path}[]`;
    if (seen.has(key)) throw new ProtoJsonError(epath, 'map key set twice');
    seen.add(key);
    const val = v.values[i]!;
    if (val === null && !isValue && !fi.isNullValue) throw new ProtoJsonError(epath, 'null is not allowed as a map value');
    if (fi.kind !== 'message' && ignoredEnum(fi, val, ctx)) continue;
    tag(w, fi.id, 2);
    w.fork();
    writeMapKey(w, fi, key, epath);
    if (fi.kind === 'message') {
      tag(w, 2, 2);
      w.fork();
      encodeMessage(w, typeInfo(fi.messageType!), val, epath, ctx, depth + 1, null);
      w.ldelim();
    } else {
      tag(w, 2, fi.wire);
      writeScalar(w, fi, fi.kind, val, epath, false);
    }
    w.ldelim();
  }
}

/** A map entry's key field (tag and value) from its text: the same forms in a body's keys and
 * in the query's `name[key]`. */
function writeMapKey(w: Writer, fi: FieldInfo, key: string, epath: string): void {
  const keyKind = fi.keyKind!;
  tag(w, 1, wireOf(keyKind));
  if (keyKind === 'bool') {
    if (key !== 'true' && key !== 'false') throw new ProtoJsonError(epath, 'expected a map key "true" or "false"');
    w.bool(key === 'true');
    return;
  }
  // Integer keys are plain decimal text ("1e2" is a JSON number form, not a key form).
  if (keyKind !== 'string' && !/^-?(?:0|[1-9][0-9]*)$/.test(key)) throw new ProtoJsonError(epath, 'expected a map key as a decimal integer string');
  writeScalar(w, fi, keyKind, keyKind === 'string' ? key : new JsonNumber(key), epath, false);
}

// ---- well-known types ------------------------------------------------------------------------

function field(info: TypeInfo, name: string): FieldInfo {
  return info.byKey.get(name)!;
}

function writeSecondsNanos(w: Writer, seconds: number, nanos: number): void {
  if (seconds !== 0) { w.uint32(8); w.int64(seconds); }
  if (nanos !== 0) { w.uint32(16); w.int32(nanos); }
}

function expectString(v: JsonValue, path: string, what: string): string {
  if (typeof v !== 'string') throw new ProtoJsonError(path, `expected ${what} as a string, got ${describe(v)}`);
  return v;
}

/** Encodes a well-known type from its JSON form. `fromText`: a path/query string. */
export function encodeWkt(w: Writer, info: TypeInfo, v: JsonValue, path: string, ctx: EncodeContext, depth: number, fromText = false): void {
  switch (info.wkt) {
    case Wkt.Timestamp: {
      const [s, n] = parseTimestamp(expectString(v, path, 'a Timestamp'), path);
      return writeSecondsNanos(w, s, n);
    }
    case Wkt.Duration: {
      const [s, n] = parseDuration(expectString(v, path, 'a Duration'), path);
      return writeSecondsNanos(w, s, n);
    }
    case Wkt.FieldMask: {
      for (const p of parseFieldMask(expectString(v, path, 'a FieldMask'), path, fromText)) { w.uint32(10); w.string(p); }
      return;
    }
    case Wkt.Wrapper: {
      const fi = field(info, 'value');
      if (v === null) throw new ProtoJsonError(path, 'null is not a wrapper value');
      if (isDefault(fi, fi.kind, v)) { writeScalar(new protobuf.Writer(), fi, fi.kind, v, path, fromText); return; }
      tag(w, 1, fi.wire);
      writeScalar(w, fi, fi.kind, v, path, fromText);
      return;
    }
    case Wkt.Empty:
      if (!(v instanceof JsonObject)) throw new ProtoJsonError(path, `expected an object for Empty, got ${describe(v)}`);
      if (v.keys.length > 0 && !ctx.ignoreUnknownFields) throw new ProtoJsonError(childPath(path, safeName(v.keys[0]!)), 'unknown field', 'unknown_field');
      return;
    case Wkt.Struct:
      return encodeStruct(w, v, path, ctx, depth);
    case Wkt.ListValue:
      return encodeList(w, v, path, ctx, depth);
    case Wkt.Value:
      return encodeValue(w, v, path, ctx, depth);
    case Wkt.Any:
      return encodeAny(w, v, path, ctx, depth);
    case Wkt.None:
      throw new Error('encodeWkt on a plain message');
  }
}

function encodeStruct(w: Writer, v: JsonValue, path: string, ctx: EncodeContext, depth: number): void {
  if (!(v instanceof JsonObject)) throw new ProtoJsonError(path, `expected an object for Struct, got ${describe(v)}`);
  if (depth > MAX_DEPTH) throw new ProtoJsonError(path, `messages nested deeper than ${MAX_DEPTH}`, 'too_deep');
  const seen = new Set<string>();
  for (let i = 0; i < v.keys.length; i++) {
    const key = v.keys[i]!;
    // Struct keys are data, not field names: kept exactly as written.
    if (seen.has(key)) throw new ProtoJsonError(`${path}[]`, 'Struct key set twice');
    seen.add(key);
    w.uint32(10);
    w.fork();
    w.uint32(10);
    w.string(key);
    w.uint32(18);
    w.fork();
    encodeValue(w, v.values[i]!, `${path}[]`, ctx, depth + 1);
    w.ldelim();
    w.ldelim();
  }
}

function encodeList(w: Writer, v: JsonValue, path: string, ctx: EncodeContext, depth: number): void {
  if (!Array.isArray(v)) throw new ProtoJsonError(path, `expected an array for ListValue, got ${describe(v)}`);
  if (depth > MAX_DEPTH) throw new ProtoJsonError(path, `messages nested deeper than ${MAX_DEPTH}`, 'too_deep');
  for (let i = 0; i < v.length; i++) {
    w.uint32(10);
    w.fork();
    encodeValue(w, v[i]!, `${path}[${i}]`, ctx, depth + 1);
    w.ldelim();
  }
}

function encodeValue(w: Writer, v: JsonValue, path: string, ctx: EncodeContext, depth: number): void {
  if (depth > MAX_DEPTH) throw new ProtoJsonError(path, `messages nested deeper than ${MAX_DEPTH}`, 'too_deep');
  if (v === null) { w.uint32(8); w.int32(0); return; }
  if (typeof v === 'boolean') { w.uint32(32); w.bool(v); return; }
  if (typeof v === 'string') { w.uint32(26); w.string(v); return; }
  if (v instanceof JsonNumber) {
    const n = Number(v.text);
    if (!Number.isFinite(n)) throw new ProtoJsonError(path, 'number out of range for a Value');
    w.uint32(17);
    w.double(n);
    return;
  }
  w.uint32(Array.isArray(v) ? 50 : 42);
  w.fork();
  if (Array.isArray(v)) encodeList(w, v, path, ctx, depth + 1); else encodeStruct(w, v, path, ctx, depth + 1);
  w.ldelim();
}

function encodeAny(w: Writer, v: JsonValue, path: string, ctx: EncodeContext, depth: number): void {
  if (!(v instanceof JsonObject)) throw new ProtoJsonError(path, `expected an object for Any, got ${describe(v)}`);
  const at = v.keys.indexOf('@type');
  if (at < 0) {
    if (v.keys.length === 0) return;
    throw new ProtoJsonError(path, 'Any needs an "@type"');
  }
  if (v.keys.indexOf('@type', at + 1) >= 0) throw new ProtoJsonError(childPath(path, '@type'), 'field set twice');
  const url = v.values[at];
  if (typeof url !== 'string') throw new ProtoJsonError(childPath(path, '@type'), 'expected a type URL string');
  const type = resolveAnyType(url, ctx.registry);
  if (type === null) throw new ProtoJsonError(childPath(path, '@type'), 'unknown type in the type registry');
  const inner = typeInfo(type);
  const rest = new JsonObject();
  for (let i = 0; i < v.keys.length; i++) {
    if (i === at) continue;
    rest.keys.push(v.keys[i]!);
    rest.values.push(v.values[i]!);
  }
  const body = new protobuf.Writer();
  if (inner.wkt !== Wkt.None) {
    // Well-known types inside Any carry their JSON form in "value".
    if (rest.keys.length !== 1 || rest.keys[0] !== 'value') {
      if (!(inner.wkt === Wkt.Empty && rest.keys.length === 0)) throw new ProtoJsonError(path, `Any of ${type.name} takes exactly "@type" and "value"`);
    } else {
      encodeWkt(body, inner, rest.values[0]!, childPath(path, 'value'), ctx, depth + 1);
    }
  } else {
    encodeMessage(body, inner, rest, path, ctx, depth + 1, null);
  }
  w.uint32(10);
  w.string(url);
  const bytes = body.finish();
  if (bytes.length > 0) { w.uint32(18); w.bytes(bytes); }
}
