// The codec tests' descriptors: test/fixtures/protos/lobbytest/v1/library.proto and google.rpc
// Status/error details, with the google/protobuf WKTs from protobufjs's bundled definitions.
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type { Root, Type } from 'protobufjs';

import { jsonToProto, protoToJson, type JsonPrintOptions } from '../../../src/grpc/json/index.js';

const PROTOS = fileURLToPath(new URL('../../../../test/fixtures/protos/', import.meta.url));

export function loadRoot(): Root {
  const root = new protobuf.Root();
  // google/protobuf/* resolve to protobufjs's bundled copies (it knows them by that name).
  root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : PROTOS + target);
  root.loadSync(['lobbytest/v1/library.proto', 'google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
  root.resolveAll();
  return root;
}

export const root = loadRoot();
export const Book: Type = root.lookupType('lobbytest.v1.Book');
export const Author: Type = root.lookupType('lobbytest.v1.Author');
export const GetBookRequest: Type = root.lookupType('lobbytest.v1.GetBookRequest');
export const Status: Type = root.lookupType('google.rpc.Status');

export const PRINT: JsonPrintOptions = { emitDefaults: false, protoFieldNames: false, enumsAs: 'name' };
export const STRICT = { ignoreUnknownFields: false };

export function enc(type: Type, json: string, ignoreUnknownFields = false): Uint8Array {
  return jsonToProto(type, Buffer.from(json), { ignoreUnknownFields });
}

/** JSON text -> binary -> JSON text. */
export function through(type: Type, json: string, print: Partial<JsonPrintOptions> = {}): string {
  return protoToJson(type, enc(type, json), { ...PRINT, ...print });
}

/** What protobufjs's own decoder sees in our binary (an independent check of the bytes). */
export function decoded(type: Type, bytes: Uint8Array): Record<string, unknown> {
  return type.toObject(type.decode(bytes), { longs: String, enums: String, bytes: String }) as Record<string, unknown>;
}
