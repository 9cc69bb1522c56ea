// The client certificate's identity as header values (src/data/mtls-identity.ts): whatever a
// certificate's names hold, the value is header bytes and decodes back to the text.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { headerSafe } from '../../src/data/mtls-identity.js';
import { isFieldValueBytes } from '../../src/shared/http-syntax.js';

describe('headerSafe', () => {
  it('keeps visible ASCII and spaces, percent-encodes %, controls, DEL and UTF-8', () => {
    assert.equal(headerSafe('CN=alice\\, \\"admin\\",O=Acme'), 'CN=alice\\, \\"admin\\",O=Acme');
    assert.equal(headerSafe('CN=100%\r\nX: y\x7f'), 'CN=100%25%0D%0AX: y%7F');
    assert.equal(headerSafe('CN=Jürgen'), 'CN=J%C3%BCrgen');
  });

  it('always gives visible ASCII and spaces, and percent-decoding gives the text back', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => {
      const v = headerSafe(s);
      assert.ok(isFieldValueBytes(v) && /^[\x20-\x7e]*$/.test(v));
      assert.equal(decodeURIComponent(v), Buffer.from(s, 'utf8').toString('utf8'));
    }), { numRuns: 2000 });
  });
});
