// Error paths of the codec: every error is a ProtoJsonError naming the field path, its message
// never contains the offending value (bodies can carry secrets), and depth is bounded both ways.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import protobuf from 'protobufjs';

import { ProtoJsonError, protoToJson, MAX_DEPTH } from '../../../src/grpc/json/index.js';
import { Book, PRINT, enc } from './fixture.js';

function errorOf(fn: () => unknown): ProtoJsonError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ProtoJsonError, `a ProtoJsonError, got ${String(e)}`);
    return e;
  }
  assert.fail('no error');
}

describe('errors name the field path', () => {
  const cases: [string, string][] = [
    ['{"author":{"address":{"city":5}}}', 'author.address.city'],
    ['{"contributors":[{},{"authorId":"x"}]}', 'contributors[1].authorId'],
    ['{"byRank":{"1":{"name":[]}}}', 'byRank[].name'],
    ['{"author":{"nope":1}}', 'author.nope'],
    ['{"author":{"bad key!":1}}', 'author.<invalid name>'],
    ['{"sequel":{"sequel":{"published":"yesterday"}}}', 'sequel.sequel.published'],
    ['{"attachment":{"@type":"type.googleapis.com/lobbytest.v1.Author","authorId":true}}', 'attachment.authorId'],
    ['{"metadata":{"k":{"x":1e999}}}', 'metadata[][]'],
    ['{"genres":[1,null]}', 'genres[1]'],
  ];
  for (const [body, path] of cases) {
    it(path, () => assert.equal(errorOf(() => enc(Book, body)).fieldPath, path));
  }
  it('errors of the JSON text itself have an empty path and an offset', () => {
    const e = errorOf(() => enc(Book, '{"title":"x",}'));
    assert.equal(e.fieldPath, '');
    assert.match(e.message, /^invalid JSON at offset 13: expected a string key$/);
  });
});

describe('errors never echo the value', () => {
  // Wrong-typed values in many fields: the message must not contain the value's text.
  const FIELDS = ['isbn', 'pages', 'copiesSold', 'price', 'weight', 'inPrint', 'cover', 'genre', 'published', 'readingTime',
    'updateMask', 'wInt64', 'wBool', 'author', 'labels', 'pageMarks', 'flags', 'attachment', 'nothing', 'extra'];
  it('for random secret strings in every field type', () => {
    fc.assert(fc.property(fc.constantFrom(...FIELDS), fc.string({ minLength: 6, maxLength: 30 }).map((s) => `S3cr3t${s}`), (field, secret) => {
      const quoted = JSON.stringify(secret);
      const bodies = [`{"${field}":${quoted}}`, `{"${field}":[${quoted}]}`, `{"${field}":{"k":${quoted}}}`, `{"attachment":{"@type":${quoted}}}`];
      for (const body of bodies) {
        let message = '';
        try { enc(Book, body); } catch (e) { message = (e as Error).message; }
        assert.ok(!message.includes('S3cr3t'), `${body} -> ${message}`);
      }
    }), { numRuns: 300 });
  });
  it('for numbers out of range', () => {
    const e = errorOf(() => enc(Book, '{"pages":98765432109876}'));
    assert.doesNotMatch(e.message, /98765432109876/);
  });
});

describe('depth is bounded', () => {
  it(`JSON nested deeper than ${MAX_DEPTH} is refused by the reader`, () => {
    const deep = '{"extra":' + '['.repeat(MAX_DEPTH + 1) + ']'.repeat(MAX_DEPTH + 1) + '}';
    assert.match(errorOf(() => enc(Book, deep)).message, /nesting deeper than 100/);
  });
  it(`messages nested deeper than ${MAX_DEPTH} are refused when encoding`, () => {
    const n = 99;
    const body = '{"sequel":'.repeat(n) + '{}' + '}'.repeat(n);
    enc(Book, body); // 100 levels of JSON objects: fine
    const structs = '{"metadata":' + '{"a":'.repeat(60) + '{}' + '}'.repeat(60) + '}';
    const e = errorOf(() => enc(Book, '{"sequel":'.repeat(40) + structs + '}'.repeat(40)));
    assert.match(e.message, /nest/);
  });
  it('binary nested deeper than the bound is refused when printing (no stack overflow)', () => {
    let inner: Uint8Array = new Uint8Array(0);
    for (let i = 0; i < 5000; i++) {
      const w = protobuf.Writer.create();
      w.uint32((62 << 3) | 2).bytes(inner);
      inner = w.finish();
    }
    assert.match(errorOf(() => protoToJson(Book, inner, PRINT)).message, /nested deeper than 100/);
  });
  it('truncated binary is a clear error', () => {
    const bytes = enc(Book, '{"title":"abcdef"}').subarray(0, 4);
    assert.match(errorOf(() => protoToJson(Book, bytes, PRINT)).message, /malformed protobuf for Book/);
  });
});

describe('error codes', () => {
  it('say what kind of error it is', () => {
    const cases: [() => unknown, string][] = [
      [() => enc(Book, '{"title":'), 'syntax'],
      [() => enc(Book, '{"nope":1}'), 'unknown_field'],
      [() => enc(Book, '{"pages":"x"}'), 'invalid_value'],
      [() => enc(Book, '['.repeat(200)), 'too_deep'],
      [() => protoToJson(Book, Buffer.from([0x0a, 0x05]), PRINT), 'malformed_binary'],
    ];
    for (const [fn, code] of cases) assert.equal(errorOf(fn).code, code);
  });
});
