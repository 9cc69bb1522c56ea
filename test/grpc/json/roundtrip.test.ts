// Property tests over random messages of the test type, written in random but valid JSON forms
// (int64 as numbers or strings, URL-safe base64, proto or JSON names, ...):
//  - printing and reading back gives the same bytes (fields are written in number order) and the
//    same JSON text again;
//  - the bytes after the round trip mean the same message to protobufjs's own decoder as the
//    bytes we first made (an independent reading of both encodings).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Type } from 'protobufjs';

import { jsonToProto, protoToJson } from '../../../src/grpc/json/index.js';
import { messageArb } from './arbitraries.js';
import { Book, PRINT } from './fixture.js';

const STRICT = { ignoreUnknownFields: false };

function semantic(t: Type, bytes: Uint8Array): unknown {
  return t.toObject(t.decode(bytes), { longs: String, bytes: String, enums: Number, defaults: false });
}

describe('round trips over random messages', () => {
  it('JSON -> binary -> JSON -> binary: fixed point, same message to protobufjs', () => {
    fc.assert(fc.property(messageArb(Book, 0), (json) => {
      const bytes1 = jsonToProto(Book, Buffer.from(json), STRICT);
      const json1 = protoToJson(Book, bytes1, PRINT);
      const bytes2 = jsonToProto(Book, Buffer.from(json1), STRICT);
      assert.equal(protoToJson(Book, bytes2, PRINT), json1);
      // Written in field-number order, so the bytes do not depend on the JSON key order.
      assert.deepEqual(Buffer.from(bytes2), Buffer.from(bytes1));
      assert.deepEqual(semantic(Book, bytes2), semantic(Book, bytes1));
    }), { numRuns: 120 });
  });
  it('the same with every print option', () => {
    fc.assert(fc.property(messageArb(Book, 0), fc.boolean(), fc.boolean(), fc.constantFrom('name' as const, 'number' as const), (json, emitDefaults, protoFieldNames, enumsAs) => {
      const opts = { emitDefaults, protoFieldNames, enumsAs };
      const bytes1 = jsonToProto(Book, Buffer.from(json), STRICT);
      const bytes2 = jsonToProto(Book, Buffer.from(protoToJson(Book, bytes1, opts)), STRICT);
      assert.deepEqual(semantic(Book, bytes2), semantic(Book, bytes1));
    }), { numRuns: 80 });
  });
  it('printed text is what JSON.parse reads (valid JSON), 64-bit values as strings', () => {
    fc.assert(fc.property(messageArb(Book, 0), (json) => {
      const out = protoToJson(Book, jsonToProto(Book, Buffer.from(json), STRICT), PRINT);
      const parsed = JSON.parse(out) as Record<string, unknown>;
      for (const k of ['isbn', 'copiesSold', 'balance', 'checksum', 'delta']) if (k in parsed) assert.equal(typeof parsed[k], 'string');
    }), { numRuns: 100 });
  });
});
