// The transcoder's one door to the proto3 JSON codec (src/grpc/json/, its own helper's):
// every JSON ⇄ protobuf conversion of a call goes through these two functions, so the codec
// is swapped or offloaded in one place.
import type protobuf from 'protobufjs';
import { BoundFields, ProtoJsonError, jsonToProto, protoFieldToJson, protoToJson } from './json/index.js';

export interface PrintOptions {
  emitDefaults: boolean;
  protoFieldNames: boolean;
  enumsAsNumbers: boolean;
}

/** A field bound from the path or the query: its path in the message and its text; for a map
 * entry from the query (`labels[key]=value`), its key. */
export interface BoundValue {
  fieldPath: string[];
  value: string;
  source: 'path' | 'query';
  mapKey?: string;
}

/** A request the client got wrong: 400 with this message. */
export class TranscodeInputError extends Error {
  constructor(message: string, readonly kind: 'invalid' | 'unknown_query' | 'conflict' = 'invalid') { super(message); }
}

const EMPTY = new Uint8Array(0);
const PARSE = { ignoreUnknownFields: false };

function inputError(err: unknown): unknown {
  if (!(err instanceof ProtoJsonError)) return err;
  return new TranscodeInputError(err.message, err.code === 'bound_conflict' ? 'conflict' : 'invalid');
}

/** Parses the body JSON (null: no body) into `type` with the bound values merged in, encodes it. */
export function encodeRequest(type: protobuf.Type, body: Buffer | null, bodyField: string, bound: readonly BoundValue[]): Uint8Array {
  try {
    let fields: BoundFields | undefined;
    if (bound.length > 0) {
      fields = new BoundFields(type);
      for (const b of bound) fields.set(b.fieldPath.join('.'), b.value, b.source, b.mapKey);
    }
    return jsonToProto(type, body ?? EMPTY, PARSE, fields, bodyField === '*' || bodyField === '' ? undefined : bodyField);
  } catch (err) {
    throw inputError(err);
  }
}

/** A message as proto3 JSON; `field` ('' = all): only that field of it (response_body). */
export function printMessage(type: protobuf.Type, bytes: Uint8Array, opts: PrintOptions, field = ''): string {
  const print = { emitDefaults: opts.emitDefaults, protoFieldNames: opts.protoFieldNames, enumsAs: opts.enumsAsNumbers ? 'number' as const : 'name' as const };
  return field === '' ? protoToJson(type, bytes, print) : protoFieldToJson(type, bytes, field, print);
}
