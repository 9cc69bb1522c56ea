// gRPC metadata syntax (src/grpc/metadata.ts): a -bin value is base64 exactly as the spec
// allows it (padded or not, nothing else), checked against Node's own encoder as the oracle;
// names as the spec and HTTP/2 allow them.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isBinaryMetadataValue, isCustomMetadata, metadataNameProblem } from '../../src/grpc/metadata.js';

/** The oracle: `s` is the base64 of some bytes, with its padding or without. */
function isBase64OfSomething(s: string): boolean {
  const encoded = Buffer.from(s, 'base64').toString('base64');
  return s === encoded || s === encoded.replace(/=+$/, '');
}

const B64_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
/** Characters a near-miss is made of: the alphabet, padding, URL-safe and other stray ones. */
const nearChar = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...B64_CHARS) },
  { weight: 3, arbitrary: fc.constant('=') },
  { weight: 1, arbitrary: fc.constantFrom('-', '_', ' ', '\t', '\r', '\n', '\0', '%', '.', ',', 'é', '€') },
);

describe('-bin values: base64, padded or not', () => {
  it('every byte string\'s base64 is accepted, padded and unpadded', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const padded = Buffer.from(bytes).toString('base64');
      assert.ok(isBinaryMetadataValue(padded), padded);
      assert.ok(isBinaryMetadataValue(padded.replace(/=+$/, '')), padded);
    }), { numRuns: 2000 });
  });

  it('a string is accepted exactly when it is the base64 of its bytes (with or without its padding)', () => {
    fc.assert(fc.property(fc.string({ unit: nearChar, maxLength: 14 }), (s) => {
      assert.equal(isBinaryMetadataValue(s), isBase64OfSomething(s), JSON.stringify(s));
    }), { numRuns: 20_000 });
  });

  it('a valid value changed in one place: accepted exactly when still base64 of something', () => {
    const mutated = fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 20 }), fc.boolean(), fc.nat(), nearChar, fc.constantFrom('insert', 'replace', 'delete', 'append'))
      .map(([bytes, pad, at, ch, op]) => {
        let s = Buffer.from(bytes).toString('base64');
        if (!pad) s = s.replace(/=+$/, '');
        const i = at % (s.length + 1);
        if (op === 'insert') return s.slice(0, i) + ch + s.slice(i);
        if (op === 'replace') return s.slice(0, i) + ch + s.slice(i + 1);
        if (op === 'delete') return s.slice(0, i) + s.slice(i + 1);
        return s + ch;
      });
    fc.assert(fc.property(mutated, (s) => {
      assert.equal(isBinaryMetadataValue(s), isBase64OfSomething(s), JSON.stringify(s));
    }), { numRuns: 20_000 });
  });

  it('the cases the loose check let through are refused', () => {
    // Padding that does not fit the group, padding alone, non-zero pad bits, URL-safe base64.
    for (const s of ['==', 'QQ=', 'QUJDRA=', 'QUI==', 'QR', 'QR==', 'QUK', 'Q===', 'QQ==QQ==', 'a-_b', ' QUJD', 'QUJD\n']) {
      assert.equal(isBinaryMetadataValue(s), false, JSON.stringify(s));
    }
    for (const s of ['', 'QQ', 'QQ==', 'QUI', 'QUI=', 'QUJD', 'YWJjZA', 'YWJjZA==', '+/+/']) assert.ok(isBinaryMetadataValue(s), JSON.stringify(s));
  });

  it('as a pair: a -bin name takes base64 only, a text name printable ASCII only', () => {
    assert.ok(isCustomMetadata('x-blob-bin', 'QUJD'));
    assert.equal(isCustomMetadata('x-blob-bin', 'QQ='), false);
    assert.equal(isCustomMetadata('x-blob-bin', 'abc def'), false);
    assert.ok(isCustomMetadata('x-text', 'abc def ~!'));
    for (const v of ['a\0b', 'a\rb', 'a\nb', 'a\tb', 'caf\u00e9', '\u20ac', '\x7f']) assert.equal(isCustomMetadata('x-text', v), false, JSON.stringify(v));
  });
});

describe('metadata names', () => {
  it('lower-case [0-9a-z_.-], not grpc-*, not the headers the client or HTTP/2 owns', () => {
    for (const n of ['x-tenant', 'x_a.b-c', 'authorization', 'traceparent', 'x-blob-bin', '0']) assert.equal(metadataNameProblem(n), null, n);
    for (const n of ['X-Upper', 'x!y', 'x y', '', ':path', 'grpc-timeout', 'grpc-foo', 'te', 'content-type', 'connection', 'host', 'user-agent', '__proto__', 'caf\u00e9']) {
      assert.notEqual(metadataNameProblem(n), null, n);
    }
  });
});
