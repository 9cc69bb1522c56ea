// What the codec needs to know about a protobufjs Type, computed once per Type and cached: field
// lookup by JSON name and proto name, wire kinds, presence, and which well-known type it is.
import protobuf from 'protobufjs';
import type { Type, Field, Enum, Root } from 'protobufjs';

/** Well-known types with their own JSON form. */
export const enum Wkt {
  None, Any, Timestamp, Duration, FieldMask, Struct, Value, ListValue, Empty, Wrapper,
}

const WKT_BY_NAME: Record<string, Wkt> = {
  '.google.protobuf.Any': Wkt.Any,
  '.google.protobuf.Timestamp': Wkt.Timestamp,
  '.google.protobuf.Duration': Wkt.Duration,
  '.google.protobuf.FieldMask': Wkt.FieldMask,
  '.google.protobuf.Struct': Wkt.Struct,
  '.google.protobuf.Value': Wkt.Value,
  '.google.protobuf.ListValue': Wkt.ListValue,
  '.google.protobuf.Empty': Wkt.Empty,
  '.google.protobuf.DoubleValue': Wkt.Wrapper,
  '.google.protobuf.FloatValue': Wkt.Wrapper,
  '.google.protobuf.Int64Value': Wkt.Wrapper,
  '.google.protobuf.UInt64Value': Wkt.Wrapper,
  '.google.protobuf.Int32Value': Wkt.Wrapper,
  '.google.protobuf.UInt32Value': Wkt.Wrapper,
  '.google.protobuf.BoolValue': Wkt.Wrapper,
  '.google.protobuf.StringValue': Wkt.Wrapper,
  '.google.protobuf.BytesValue': Wkt.Wrapper,
};

/** protobufjs scalar type names; 'enum' and 'message' for the others. */
export type Kind =
  | 'double' | 'float' | 'int32' | 'uint32' | 'sint32' | 'fixed32' | 'sfixed32'
  | 'int64' | 'uint64' | 'sint64' | 'fixed64' | 'sfixed64' | 'bool' | 'string' | 'bytes'
  | 'enum' | 'message';

const WIRE: Record<Kind, number> = {
  double: 1, float: 5, int32: 0, uint32: 0, sint32: 0, fixed32: 5, sfixed32: 5,
  int64: 0, uint64: 0, sint64: 0, fixed64: 1, sfixed64: 1, bool: 0, string: 2, bytes: 2,
  enum: 0, message: 2,
};

export function wireOf(kind: Kind): number {
  return WIRE[kind];
}

export interface FieldInfo {
  readonly field: Field;
  readonly index: number;
  readonly id: number;
  readonly protoName: string;
  readonly jsonName: string;
  /** The two output keys, quoted once. */
  readonly jsonKey: string;
  readonly protoKey: string;
  readonly kind: Kind;
  readonly repeated: boolean;
  readonly map: boolean;
  /** For maps: the key kind (the value kind is `kind`). */
  readonly keyKind: Kind | null;
  /** Set only when present on the wire (messages, oneof members, proto3 `optional`, proto2). */
  readonly presence: boolean;
  /** Real oneof name (not proto3 optional's synthetic one), for the "two members set" check. */
  readonly oneof: string | null;
  readonly packed: boolean;
  readonly enumType: Enum | null;
  readonly messageType: Type | null;
  /** google.protobuf.NullValue: JSON null is its value. */
  readonly isNullValue: boolean;
}

export interface TypeInfo {
  readonly type: Type;
  readonly fullName: string;
  readonly wkt: Wkt;
  readonly fields: readonly FieldInfo[];
  readonly byKey: ReadonlyMap<string, FieldInfo>;
  readonly byId: ReadonlyMap<number, FieldInfo>;
}

const cache = new WeakMap<Type, TypeInfo>();

/** protoc's ToJsonName: drop each '_' and upper-case the character after it. */
export function lowerCamel(name: string): string {
  return name.replace(/_(.?)/g, (_m, c: string) => c.toUpperCase());
}

export function typeInfo(type: Type): TypeInfo {
  let info = cache.get(type);
  if (info === undefined) {
    info = build(type);
    cache.set(type, info);
  }
  return info;
}

function build(type: Type): TypeInfo {
  const fields: FieldInfo[] = [];
  const byKey = new Map<string, FieldInfo>();
  const byId = new Map<number, FieldInfo>();
  type.fieldsArray.forEach((f, index) => {
    f.resolve();
    const rt = f.resolvedType;
    const isEnum = rt instanceof protobuf.Enum;
    const isMsg = rt instanceof protobuf.Type;
    const kind: Kind = isEnum ? 'enum' : isMsg ? 'message' : (f.type as Kind);
    if (!isEnum && !isMsg && !(f.type in WIRE)) throw new Error(`${type.fullName}.${f.name}: unsupported field type ${f.type}`);
    const map = f instanceof protobuf.MapField;
    const protoName = f.protoName ?? f.name;
    const explicit = (f.options as Record<string, unknown> | undefined)?.json_name;
    const jsonName = typeof explicit === 'string' ? explicit : (f.jsonName ?? lowerCamel(protoName));
    const synthetic = (f.options as Record<string, unknown> | undefined)?.proto3_optional === true;
    const repeated = f.repeated && !map;
    const fi: FieldInfo = {
      field: f, index, id: f.id, protoName, jsonName, kind,
      jsonKey: JSON.stringify(jsonName), protoKey: JSON.stringify(protoName),
      repeated, map,
      keyKind: map ? ((f as protobuf.MapField).keyType as Kind) : null,
      presence: !repeated && !map && (isMsg || f.partOf != null || (f.hasPresence as boolean)),
      oneof: f.partOf != null && !synthetic ? f.partOf.name : null,
      packed: repeated && wireOf(kind) !== 2 && f.packed,
      enumType: isEnum ? rt : null,
      messageType: isMsg ? rt : null,
      isNullValue: isEnum && rt.fullName === '.google.protobuf.NullValue',
    };
    fields.push(fi);
    byId.set(f.id, fi);
    byKey.set(jsonName, fi);
    if (!byKey.has(protoName)) byKey.set(protoName, fi);
  });
  return { type, fullName: type.fullName, wkt: WKT_BY_NAME[type.fullName] ?? Wkt.None, fields, byKey, byId };
}

let wktRoot: Root | null = null;

/** A root with every well-known type, for Any values whose type the caller's root lacks. */
export function wellKnownRoot(): Root {
  if (wktRoot === null) {
    const root = new protobuf.Root();
    for (const f of ['any', 'duration', 'empty', 'field_mask', 'struct', 'timestamp', 'wrappers']) {
      root.loadSync(`google/protobuf/${f}.proto`, { keepCase: true });
    }
    root.resolveAll();
    wktRoot = root;
  }
  return wktRoot;
}

/** The message type named by an Any's type URL ("type.googleapis.com/pkg.Msg"), or null. */
export function resolveAnyType(url: string, registry: Root): Type | null {
  const slash = url.lastIndexOf('/');
  const name = url.slice(slash + 1);
  if (slash < 0 || name === '' || !/^[A-Za-z_][A-Za-z0-9_.]*$/.test(name)) return null;
  for (const root of [registry, wellKnownRoot()]) {
    const found = root.lookup(name);
    if (found instanceof protobuf.Type) return found;
  }
  return null;
}
