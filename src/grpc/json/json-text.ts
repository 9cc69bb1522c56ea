// A JSON reader that keeps the text of every number. JSON.parse turns 9007199254740993 into
// 9007199254740992 before anyone can look at it; proto3 JSON needs the digits for int64/uint64.
// Objects keep their keys in order, duplicates included (the codec decides what a duplicate means).
import { MAX_DEPTH, ProtoJsonError } from './errors.js';

/** A JSON number, as written. */
export class JsonNumber {
  constructor(readonly text: string) {}
}

/** A JSON object: keys and values in document order. */
export class JsonObject {
  readonly keys: string[] = [];
  readonly values: JsonValue[] = [];
}

export type JsonValue = string | boolean | null | JsonNumber | JsonValue[] | JsonObject;

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Decodes `bytes` as UTF-8 (invalid sequences are an error) and parses one JSON value; only
 * whitespace may follow it. */
export function parseJsonBytes(bytes: Uint8Array): JsonValue {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new ProtoJsonError('', 'request body is not valid UTF-8');
  }
  return parseJsonText(text);
}

export function parseJsonText(text: string): JsonValue {
  const p = new Parser(text);
  p.ws();
  const v = p.value(0);
  p.ws();
  if (p.pos !== text.length) p.fail('unexpected data after the JSON value');
  return v;
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

class Parser {
  pos = 0;
  constructor(readonly s: string) {}

  fail(what: string): never {
    throw new ProtoJsonError('', `invalid JSON at offset ${this.pos}: ${what}`);
  }

  ws(): void {
    const s = this.s;
    let c = s.charCodeAt(this.pos);
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = s.charCodeAt(++this.pos);
  }

  value(depth: number): JsonValue {
    const s = this.s;
    const c = s.charCodeAt(this.pos);
    switch (c) {
      case 0x7b: return this.object(depth + 1);
      case 0x5b: return this.array(depth + 1);
      case 0x22: return this.string();
      case 0x74: return this.literal('true', true);
      case 0x66: return this.literal('false', false);
      case 0x6e: return this.literal('null', null);
      default: {
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
          NUMBER.lastIndex = this.pos;
          const m = NUMBER.exec(s);
          if (m === null) this.fail('malformed number');
          this.pos += m[0].length;
          return new JsonNumber(m[0]);
        }
        if (Number.isNaN(c)) this.fail('unexpected end of input');
        return this.fail('unexpected character');
      }
    }
  }

  literal<T>(word: string, v: T): T {
    if (!this.s.startsWith(word, this.pos)) this.fail('unexpected character');
    this.pos += word.length;
    return v;
  }

  object(depth: number): JsonObject {
    if (depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH}`);
    const o = new JsonObject();
    this.pos++;
    this.ws();
    if (this.s.charCodeAt(this.pos) === 0x7d) { this.pos++; return o; }
    for (;;) {
      if (this.s.charCodeAt(this.pos) !== 0x22) this.fail('expected a string key');
      o.keys.push(this.string());
      this.ws();
      if (this.s.charCodeAt(this.pos) !== 0x3a) this.fail("expected ':'");
      this.pos++;
      this.ws();
      o.values.push(this.value(depth));
      this.ws();
      const c = this.s.charCodeAt(this.pos++);
      if (c === 0x7d) return o;
      if (c !== 0x2c) { this.pos--; this.fail("expected ',' or '}'"); }
      this.ws();
    }
  }

  array(depth: number): JsonValue[] {
    if (depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH}`);
    const a: JsonValue[] = [];
    this.pos++;
    this.ws();
    if (this.s.charCodeAt(this.pos) === 0x5d) { this.pos++; return a; }
    for (;;) {
      a.push(this.value(depth));
      this.ws();
      const c = this.s.charCodeAt(this.pos++);
      if (c === 0x5d) return a;
      if (c !== 0x2c) { this.pos--; this.fail("expected ',' or ']'"); }
      this.ws();
    }
  }

  string(): string {
    const s = this.s;
    const start = ++this.pos;
    // Fast path: no escapes.
    for (let i = start; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c === 0x22) { this.pos = i + 1; return checkSurrogates(this, s.slice(start, i)); }
      if (c === 0x5c) break;
      if (c < 0x20) { this.pos = i; this.fail('control character in string'); }
    }
    let out = '';
    let i = start;
    let chunk = start;
    for (;;) {
      if (i >= s.length) { this.pos = i; this.fail('unterminated string'); }
      const c = s.charCodeAt(i);
      if (c === 0x22) { out += s.slice(chunk, i); this.pos = i + 1; return checkSurrogates(this, out); }
      if (c < 0x20) { this.pos = i; this.fail('control character in string'); }
      if (c !== 0x5c) { i++; continue; }
      out += s.slice(chunk, i);
      const e = s.charCodeAt(i + 1);
      switch (e) {
        case 0x22: out += '"'; break;
        case 0x5c: out += '\\'; break;
        case 0x2f: out += '/'; break;
        case 0x62: out += '\b'; break;
        case 0x66: out += '\f'; break;
        case 0x6e: out += '\n'; break;
        case 0x72: out += '\r'; break;
        case 0x74: out += '\t'; break;
        case 0x75: {
          const hex = s.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) { this.pos = i; this.fail('bad \\u escape'); }
          out += String.fromCharCode(parseInt(hex, 16));
          i += 4;
          break;
        }
        default: this.pos = i; this.fail('bad escape');
      }
      i += 2;
      chunk = i;
    }
  }
}

// In unicode mode a pair is one code point, so only a lone half is category Cs.
const LONE_SURROGATE = /\p{Cs}/u;

/** A lone surrogate (only possible through \u escapes) cannot become UTF-8: reject it. */
function checkSurrogates(p: Parser, v: string): string {
  if (LONE_SURROGATE.test(v)) p.fail('unpaired surrogate in string');
  return v;
}
