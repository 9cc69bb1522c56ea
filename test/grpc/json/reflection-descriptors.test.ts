// Descriptors that come from gRPC server reflection arrive as FileDescriptorProtos and become a
// protobufjs Root through protobufjs/ext/descriptor: the codec must give the same JSON and bytes
// with them as with the .proto files (names stay snake_case, json_name survives).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import protobuf from 'protobufjs';
import 'protobufjs/ext/descriptor/index.js'; // adds Root.fromDescriptor / root.toDescriptor

import { jsonToProto, protoToJson } from '../../../src/grpc/json/index.js';
import { Book, PRINT, root } from './fixture.js';

describe('descriptors from a FileDescriptorSet', () => {
  it('give the same bytes and JSON as the .proto files', () => {
    // protobufjs's module augmentation for these does not reach NodeNext resolution: typed here.
    const set = (root as unknown as { toDescriptor(edition: string): protobuf.Message }).toDescriptor('proto3');
    const wire = (set.$type as protobuf.Type).encode(set).finish();
    const Root = protobuf.Root as unknown as { fromDescriptor(d: Uint8Array, o: { keepCase: boolean }): protobuf.Root };
    const fromWire = Root.fromDescriptor(wire, { keepCase: true });
    fromWire.resolveAll();
    const B2 = fromWire.lookupType('lobbytest.v1.Book');
    const json = '{"copiesSold":"18446744073709551615","shownAs":"x","maybeCount":0,"extra":{"a_b":1},'
      + '"published":"2020-01-01T00:00:00Z","byRank":{"1":{"authorId":"9007199254740993"}},"genre":"SCIENCE","attachment":{"@type":"type.googleapis.com/lobbytest.v1.Author","name":"n"}}';
    const a = jsonToProto(Book, Buffer.from(json), { ignoreUnknownFields: false });
    const b = jsonToProto(B2, Buffer.from(json), { ignoreUnknownFields: false });
    assert.deepEqual(Buffer.from(b), Buffer.from(a));
    assert.deepEqual(JSON.parse(protoToJson(B2, b, PRINT)), JSON.parse(protoToJson(Book, a, PRINT)));
    assert.deepEqual(JSON.parse(protoToJson(B2, b, { ...PRINT, protoFieldNames: true })), JSON.parse(protoToJson(Book, a, { ...PRINT, protoFieldNames: true })));
  });
});
