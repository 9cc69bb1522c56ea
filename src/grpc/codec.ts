// The transcoder's one door to the proto3 JSON codec (src/grpc/json/, its own helper's):
// every JSON ⇄ protobuf conversion of a call goes through these two functions, so the codec
// is swapped or offloaded in one place.
import type protobuf from 'protobufjs';
import { BoundFields, ProtoJsonError, jsonToProto, protoToJson } from './json/index.js';

export interface PrintOptions {
  emitDefaults: boolean;
  protoFieldNames: boolean;
  enumsAsNumbers: boolean;
}

/** A field bound from the path or the query: its path in the message and its text. */
export interface BoundValue {
  fieldPath: string[];
  value: string;
  source: 'path' | 'query';
}

/** A request the client got wrong: 400 with this message. */
export class TranscodeInputError extends Error {
  constructor(message: string, readonly kind: 'invalid' | 'unknown_query' | 'conflict' = 'invalid') { super(message); }
}

const EMPTY = new Uint8Array(0);
const PARSE = { ignoreUnknownFields: false };

function inputError(err: unknown): unknown {
  if (!(err instanceof ProtoJsonError)) return err;
  // The codec says "bound from the path and must not also be set in the body/query".
  return new TranscodeInputError(err.message, err.message.includes('is bound from the') ? 'conflict' : 'invalid');
}

/** Parses the body JSON (null: no body) into `type` with the bound values merged in, encodes it. */
export function encodeRequest(type: protobuf.Type, body: Buffer | null, bodyField: string, bound: readonly BoundValue[]): Uint8Array {
  try {
    let fields: BoundFields | undefined;
    if (bound.length > 0) {
      fields = new BoundFields(type);
      for (const b of bound) fields.set(b.fieldPath.join('.'), b.value, b.source);
    }
    return jsonToProto(type, body ?? EMPTY, PARSE, fields, bodyField === '*' || bodyField === '' ? undefined : bodyField);
  } catch (err) {
    throw inputError(err);
  }
}

/** A message as proto3 JSON; `field` ('' = all): only that field of it (response_body). */
export function printMessage(type: protobuf.Type, bytes: Uint8Array, opts: PrintOptions, field = ''): string {
  const json = protoToJson(type, bytes, { emitDefaults: opts.emitDefaults, protoFieldNames: opts.protoFieldNames, enumsAs: opts.enumsAsNumbers ? 'number' : 'name' });
  if (field === '') return json;
  // int64 values are JSON strings, so a parse and a stringify keep every value as printed.
  const obj = JSON.parse(json) as Record<string, unknown>;
  const camel = field.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  const value = obj[opts.protoFieldNames ? field : (type.fields[field]?.options?.json_name as string | undefined) ?? camel];
  return JSON.stringify(value ?? defaultOf(type.fields[field]));
}

/** The JSON of an unset field (response_body of a field left at its default). */
function defaultOf(field: protobuf.Field | undefined): unknown {
  if (field === undefined) return null;
  if (field.repeated) return [];
  if (field.map) return {};
  switch (field.type) {
    case 'string': case 'bytes': return '';
    case 'bool': return false;
    case 'int64': case 'uint64': case 'sint64': case 'fixed64': case 'sfixed64': return '0';
    case 'double': case 'float': case 'int32': case 'uint32': case 'sint32': case 'fixed32': case 'sfixed32': return 0;
    default: return field.resolve().resolvedType !== null && 'values' in field.resolvedType! ? Object.keys((field.resolvedType as protobuf.Enum).values)[0] ?? 0 : null;
  }
}
