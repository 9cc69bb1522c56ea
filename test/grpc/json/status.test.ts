// Error bodies are google.rpc.Status JSON: details (Any) decode with the built-in error details,
// the service's own types from the registry, and an unknown type either fails or prints as bytes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import protobuf from 'protobufjs';

import { jsonToProto, protoToJson, rpcStatusRoot, rpcStatusType } from '../../../src/grpc/json/index.js';
import { Author, PRINT, root } from './fixture.js';

const rpc = rpcStatusRoot();

function any(typeName: string, type: protobuf.Type, obj: Record<string, unknown>): Record<string, unknown> {
  return { type_url: `type.googleapis.com/${typeName}`, value: type.encode(type.fromObject(obj)).finish() };
}

describe('google.rpc.Status', () => {
  const Status = rpcStatusType();
  const status = {
    code: 3,
    message: 'invalid book',
    details: [
      any('google.rpc.ErrorInfo', rpc.lookupType('google.rpc.ErrorInfo'), { reason: 'BAD_ISBN', domain: 'lobby.dev', metadata: { field: 'isbn' } }),
      any('google.rpc.BadRequest', rpc.lookupType('google.rpc.BadRequest'), { field_violations: [{ field: 'book.isbn', description: 'checksum' }] }),
      any('google.rpc.RetryInfo', rpc.lookupType('google.rpc.RetryInfo'), { retry_delay: { seconds: 1, nanos: 500000000 } }),
      any('lobbytest.v1.Author', Author, { name: 'n', author_id: '9007199254740993' }),
    ],
  };
  const bytes = Status.encode(Status.fromObject(status)).finish();

  it('prints details of the standard types and of the registry', () => {
    assert.equal(protoToJson(Status, bytes, { ...PRINT, registry: root }),
      '{"code":3,"message":"invalid book","details":['
      + '{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"BAD_ISBN","domain":"lobby.dev","metadata":{"field":"isbn"}},'
      + '{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"book.isbn","description":"checksum"}]},'
      + '{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1.500s"},'
      + '{"@type":"type.googleapis.com/lobbytest.v1.Author","name":"n","authorId":"9007199254740993"}]}');
  });
  it('a detail of a type outside the registry fails by default, prints as bytes on request', () => {
    assert.throws(() => protoToJson(Status, bytes, PRINT), /details\[3\]\.@type|Any type is not in the type registry/);
    const out = JSON.parse(protoToJson(Status, bytes, { ...PRINT, unknownAny: 'bytes' })) as { details: { '@type': string; value: string }[] };
    assert.equal(out.details[3]!['@type'], 'type.googleapis.com/lobbytest.v1.Author');
    assert.deepEqual(Author.toObject(Author.decode(Buffer.from(out.details[3]!.value, 'base64')), { longs: String }), { name: 'n', author_id: '9007199254740993' });
  });
  it('reads back from its JSON', () => {
    const json = protoToJson(Status, bytes, { ...PRINT, registry: root });
    assert.equal(protoToJson(Status, jsonToProto(Status, Buffer.from(json), { ignoreUnknownFields: false, registry: root }), { ...PRINT, registry: root }), json);
  });
  it('a Status in the service root works the same', () => {
    const r = new protobuf.Root();
    r.add(protobuf.Type.fromJSON('Status', { fields: { code: { type: 'int32', id: 1 }, message: { type: 'string', id: 2 }, details: { type: 'google.protobuf.Any', id: 3, rule: 'repeated' } } }));
    r.loadSync('google/protobuf/any.proto', { keepCase: true });
    r.resolveAll();
    const own = r.lookupType('Status');
    assert.match(protoToJson(own, bytes, { ...PRINT, unknownAny: 'bytes' }), /"@type":"type.googleapis.com\/google.rpc.ErrorInfo","reason":"BAD_ISBN"/);
  });
});
