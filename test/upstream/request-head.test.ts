// The one encoder of upstream request bytes (src/data/upstream/request-head.ts) and the byte
// string rules it relies on (src/shared/http-syntax.ts): whatever it is given, it emits
// either nothing or exactly one well-formed HTTP/1.1 request head carrying the same parts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { encodeRequestHead, isSendable } from '../../src/data/upstream/request-head.js';
import { isFieldValueBytes, isToken, toByteString, visibleAsciiTarget } from '../../src/shared/http-syntax.js';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const { HTTPParser, methods } = require('_http_common') as { HTTPParser: any; methods: string[] };

interface Parsed { messages: { method: string; url: string; headers: string[] }[]; error: string | null; open: boolean }

/** Parses bytes as requests with Node's llhttp, strictly. */
function parseRequests(bytes: Buffer): Parsed {
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.REQUEST, {}, 0, HTTPParser.kLenientNone);
  const out: Parsed = { messages: [], error: null, open: false };
  let begun = 0;
  parser[HTTPParser.kOnMessageBegin] = () => { begun++; };
  parser[HTTPParser.kOnHeadersComplete] = (_a: number, _b: number, headers: string[], method: number, url: string) => {
    out.messages.push({ method: methods[method], url, headers });
    return 0;
  };
  parser[HTTPParser.kOnMessageComplete] = () => {};
  parser[HTTPParser.kOnExecute] = () => {};
  const ret = parser.execute(bytes);
  if (ret instanceof Error) out.error = (ret as Error & { code?: string }).code ?? ret.message;
  out.open = begun !== out.messages.length;
  return out;
}

const anyChar = fc.oneof(
  fc.integer({ min: 0, max: 0x7f }),
  fc.integer({ min: 0x80, max: 0x17f }),
  fc.integer({ min: 0x180, max: 0xffff }),
  fc.constantFrom(0x0d, 0x0a, 0x00, 0x10d, 0x10a, 0x100, 0x120, 0x3a, 0x20),
).map((c) => String.fromCharCode(c));
const text = fc.array(anyChar, { maxLength: 20 }).map((a) => a.join(''));
const method = fc.oneof(fc.constantFrom('GET', 'POST', 'DELETE', 'PURGE'), text);
const target = fc.oneof(fc.constant('/'), text.map((t) => '/' + t), text);
const headers = fc.array(fc.tuple(fc.oneof(fc.constantFrom('host', 'x-forwarded-for', 'x-user-id'), text), text), { maxLength: 6 })
  .map((pairs) => pairs.flat());

describe('encodeRequestHead', () => {
  it('emits nothing or exactly one well-formed request with the same parts (property)', () => {
    fc.assert(fc.property(method, target, headers, (m, t, h) => {
      const head = encodeRequestHead(m, t, h);
      if (head === null) {
        assert.equal(isSendable(m, t, h), false);
        return;
      }
      assert.ok(isToken(m));
      // llhttp knows a fixed list of methods: judge the rest of the head behind a known one.
      const bytes = Buffer.from(head, 'latin1');
      assert.equal(bytes.length, head.length, 'one byte per character');
      const parsed = parseRequests(methods.includes(m) ? bytes : Buffer.concat([Buffer.from('GET'), bytes.subarray(m.length)]));
      assert.equal(parsed.error, null, `parse error on ${JSON.stringify(head)}`);
      assert.equal(parsed.open, false);
      assert.equal(parsed.messages.length, 1);
      const [msg] = parsed.messages;
      assert.equal(msg.url, t);
      assert.equal(msg.headers.length, h.length);
      for (let i = 0; i < h.length; i += 2) {
        assert.equal(msg.headers[i], h[i]);
        assert.equal(msg.headers[i + 1], h[i + 1].replace(/^[ \t]+|[ \t]+$/g, '')); // OWS is not part of a value
      }
      assert.equal(msg.method, methods.includes(m) ? m : 'GET');
    }), { numRuns: 2000 });
  });

  it('refuses each part that could split a request', () => {
    const ok = ['host', 'up'];
    assert.ok(encodeRequestHead('GET', '/a?b=c', ok));
    assert.equal(encodeRequestHead('GET /x HTTP/1.1\r\n', '/', ok), null);
    assert.equal(encodeRequestHead('GET', '/a b', ok), null);
    assert.equal(encodeRequestHead('GET', '/a\r\nX: y', ok), null);
    assert.equal(encodeRequestHead('GET', '/\u010d\u010a', ok), null, 'a character above 0x7E in a target');
    assert.equal(encodeRequestHead('GET', '/', ['host', 'a\r\nx-evil: 1']), null);
    assert.equal(encodeRequestHead('GET', '/', ['host', 'a\u010d\u010ax-evil: 1']), null, 'a value that is not a byte string');
    assert.equal(encodeRequestHead('GET', '/', ['host', 'a\0']), null);
    assert.equal(encodeRequestHead('GET', '/', ['x evil', 'a']), null);
    assert.equal(encodeRequestHead('GET', '/', ['', 'a']), null);
  });

  it('writes byte-string values as their bytes: obs-text passes unchanged', () => {
    const value = toByteString('café \u010d');
    const head = Buffer.from(encodeRequestHead('GET', '/', ['x-note', value])!, 'latin1');
    assert.ok(head.includes(Buffer.from('x-note: café \u010d\r\n', 'utf8')));
  });
});

describe('byte strings and targets', () => {
  it('toByteString keeps the UTF-8 bytes of any text, one character per byte (property)', () => {
    fc.assert(fc.property(fc.fullUnicodeString(), (s) => {
      const bytes = toByteString(s);
      assert.ok([...bytes].every((c) => c.charCodeAt(0) <= 0xff));
      assert.equal(Buffer.from(bytes, 'latin1').toString('utf8'), s);
    }), { numRuns: 1000 });
    assert.equal(toByteString('\ud800'), '\xef\xbf\xbd', 'a lone surrogate is U+FFFD');
  });

  it('visibleAsciiTarget gives visible ASCII or null, and percent-decodes back to the text (property)', () => {
    fc.assert(fc.property(fc.fullUnicodeString(), (s) => {
      const t = visibleAsciiTarget(s);
      if (t === null) { assert.match(s, /[\x00-\x20\x7f]/); return; }
      assert.match(t, /^[\x21-\x7e]*$/);
      // Without a `%` of its own, every escape was added: decoding them restores the UTF-8 text.
      if (s.includes('%')) return;
      const bytes = Buffer.from(t.replace(/%([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1');
      assert.equal(bytes.toString('utf8'), s);
    }), { numRuns: 1000 });
  });

  it('token and field-value rules', () => {
    assert.ok(isToken('x-user-id'));
    assert.ok(!isToken('x user'));
    assert.ok(!isToken('x\u0100'));
    assert.ok(isFieldValueBytes('a\tb c\xff'));
    for (const bad of ['\r', '\n', '\0', '\x7f', '\x1b', '\u0100']) assert.ok(!isFieldValueBytes(`a${bad}b`), JSON.stringify(bad));
  });
});
