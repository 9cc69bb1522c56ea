// Proto3 JSON mapping (https://protobuf.dev/programming-guides/json/) over protobufjs descriptors.
// protobufjs's toObject/fromObject are not proto3 JSON (int64 precision, WKTs, Value key names,
// unknown fields), so the walk over Type/Field is our own; protobufjs's Reader/Writer do the binary.
//
// Roots must be loaded with `keepCase: true` so Field.name/protoName is the name in the .proto
// (lowerCamel JSON names are derived from it, or taken from json_name).
import protobuf from 'protobufjs';
import type { Root, Type } from 'protobufjs';

import { typeInfo } from './descriptors.js';
import { encodeMessage } from './encode.js';
import { printMessage } from './decode.js';
import { JsonObject, parseJsonBytes, type JsonValue } from './json-text.js';
import type { BoundFields } from './bound.js';

export { ProtoJsonError, MAX_DEPTH } from './errors.js';
export { BoundFields } from './bound.js';
export { parseJsonBytes, parseJsonText, JsonNumber, JsonObject, type JsonValue } from './json-text.js';

export interface JsonPrintOptions {
  /** Print proto3 fields without presence even when they hold the default (0, "", [], {}). */
  emitDefaults: boolean;
  /** Keys as in the .proto (snake_case) instead of lowerCamel / json_name. */
  protoFieldNames: boolean;
  /** Enum values by name (unknown numbers still print as numbers) or always by number. */
  enumsAs: 'name' | 'number';
  /** Where Any type URLs are looked up; default: the printed type's root. WKTs are always known. */
  registry?: Root;
}

export interface JsonParseOptions {
  /** Skip unknown keys (and unknown enum names) instead of failing. */
  ignoreUnknownFields: boolean;
  /** Where Any "@type" URLs are looked up; default: the parsed type's root. */
  registry?: Root;
}

function rootOf(type: Type, registry: Root | undefined): Root {
  return registry ?? (type.root as Root);
}

/**
 * Request body bytes (fatal UTF-8, nothing after the JSON value) -> protobuf binary of `type`.
 * An empty body is an empty message. `bound` (path and query fields) is merged in; a body value
 * for a bound field is an error. `bodyField` (google.api.http `body: "<field>"`, a top-level
 * field name) says the body is the JSON of that field rather than of the whole message.
 * Throws ProtoJsonError.
 */
export function jsonToProto(type: Type, body: Uint8Array, opts: JsonParseOptions, bound?: BoundFields, bodyField?: string): Uint8Array {
  let tree: JsonValue = new JsonObject();
  if (body.length > 0) {
    tree = parseJsonBytes(body);
    if (bodyField !== undefined) {
      const wrap = new JsonObject();
      wrap.keys.push(bodyField);
      wrap.values.push(tree);
      tree = wrap;
    }
  }
  return jsonValueToProto(type, tree, opts, bound);
}

/** jsonToProto for an already parsed JSON tree (parseJsonBytes / parseJsonText). */
export function jsonValueToProto(type: Type, tree: JsonValue, opts: JsonParseOptions, bound?: BoundFields): Uint8Array {
  if (bound !== undefined && bound.type !== type) throw new Error('BoundFields made for another type');
  const w = protobuf.Writer.create();
  encodeMessage(w, typeInfo(type), tree, '', { ignoreUnknownFields: opts.ignoreUnknownFields, registry: rootOf(type, opts.registry) }, 0, bound?.root ?? null);
  return w.finish();
}

/** Protobuf binary of `type` -> JSON text. Throws ProtoJsonError (malformed binary, a Timestamp
 * out of range, an Any of an unknown type, ...). */
export function protoToJson(type: Type, bytes: Uint8Array, opts: JsonPrintOptions): string {
  return printMessage(typeInfo(type), bytes, '', {
    emitDefaults: opts.emitDefaults,
    protoFieldNames: opts.protoFieldNames,
    enumsAs: opts.enumsAs,
    registry: rootOf(type, opts.registry),
  }, 0);
}
