// A JSON body inspected straight from its bytes: every key and every string, in one pass that
// checks the JSON grammar (RFC 8259, as JSON.parse reads it) and the depth and key bounds,
// with no JSON.parse, no objects and, for strings the normaliser would leave as they are (most
// of them: ASCII without escapes), not even a string: their bytes go through the prefilter
// (WafScan.bytesIn). Field names (`body.customer.name`, array indices left out, as
// inspect.ts's walk names them) are built only when a rule fires on a field that exclusions
// could name.
//
// Differences from parsing and walking the value: a key given twice is inspected each time
// (JSON.parse keeps the last value, but an upstream's parser may keep the first) and counts
// twice towards json_max_keys. A body this scanner does not accept (or one past the bounds) is
// handed back (JSON_SCAN.invalid / bounds) for inspect.ts to read as before.
import type { FieldName, WafScan } from './engine.js';

export const JSON_SCAN = { ok: 0, invalid: 1, bounds: 2 } as const;

const OBJECT = 1;
const ARRAY = 2;

const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a;
const isJsonSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isHex = (c: number) => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

/** Failure inside the scan: the body is not JSON as this scanner reads it. */
const INVALID = -1;

/**
 * The scanner's state for one body; reused body after body (one request at a time per
 * thread). It is the FieldName of the value being inspected.
 */
class JsonScanner implements FieldName {
  private buf: Buffer = Buffer.alloc(0);
  private kinds = new Uint8Array(0);
  /** Per open container: its current key's bytes (objects), quote to quote exclusive, and whether it has escapes. */
  private keyStart = new Int32Array(0);
  private keyEnd = new Int32Array(0);
  private keyEscaped = new Uint8Array(0);
  private depth = 0;

  fieldName(): string {
    let name = 'body';
    for (let d = 0; d < this.depth; d++) {
      if (this.kinds[d] !== OBJECT) continue;
      const start = this.keyStart[d];
      // A key the prefilter is still reading (a rule fires on it): verbatim, so its first quote ends it.
      const end = this.keyEnd[d] >= 0 ? this.keyEnd[d] : this.buf.indexOf(QUOTE, start);
      name += '.' + this.text(start, end, this.keyEscaped[d] === 1);
    }
    return name;
  }

  private text(start: number, end: number, escaped: boolean): string {
    return escaped ? (JSON.parse(this.buf.toString('utf8', start - 1, end + 1)) as string) : this.buf.toString('utf8', start, end);
  }

  run(scan: WafScan, buf: Buffer, maxDepth: number, maxKeys: number): number {
    if (this.kinds.length < maxDepth) {
      this.kinds = new Uint8Array(maxDepth);
      this.keyStart = new Int32Array(maxDepth);
      this.keyEnd = new Int32Array(maxDepth);
      this.keyEscaped = new Uint8Array(maxDepth);
    }
    this.buf = buf;
    this.depth = 0;
    try {
      return this.walk(scan, buf, maxDepth, maxKeys);
    } finally {
      this.buf = EMPTY;
    }
  }

  private walk(scan: WafScan, buf: Buffer, maxDepth: number, maxKeys: number): number {
    const len = buf.length;
    let keys = 0;
    let pos = skipSpace(buf, 0);
    // Expecting a value at pos.
    for (;;) {
      if (pos >= len) return JSON_SCAN.invalid;
      const c = buf[pos];
      if (c === QUOTE) {
        pos = this.string(scan, buf, pos);
        if (pos === INVALID) return JSON_SCAN.invalid;
      } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
        if (this.depth >= maxDepth) return JSON_SCAN.bounds;
        pos = skipSpace(buf, pos + 1);
        const close = c === 0x7b ? 0x7d : 0x5d;
        if (buf[pos] === close) { pos++; }
        else {
          this.kinds[this.depth++] = c === 0x7b ? OBJECT : ARRAY;
          if (c === 0x5b) continue; // a value next
          // A key, then a colon, then a value.
          if (++keys > maxKeys) return JSON_SCAN.bounds;
          pos = this.key(scan, buf, pos);
          if (pos === INVALID) return JSON_SCAN.invalid;
          continue;
        }
      } else if (c === 0x74 /* t */) {
        if (!(buf[pos + 1] === 0x72 && buf[pos + 2] === 0x75 && buf[pos + 3] === 0x65)) return JSON_SCAN.invalid;
        pos += 4;
      } else if (c === 0x66 /* f */) {
        if (!(buf[pos + 1] === 0x61 && buf[pos + 2] === 0x6c && buf[pos + 3] === 0x73 && buf[pos + 4] === 0x65)) return JSON_SCAN.invalid;
        pos += 5;
      } else if (c === 0x6e /* n */) {
        if (!(buf[pos + 1] === 0x75 && buf[pos + 2] === 0x6c && buf[pos + 3] === 0x6c)) return JSON_SCAN.invalid;
        pos += 4;
      } else {
        pos = number(buf, pos);
        if (pos === INVALID) return JSON_SCAN.invalid;
      }
      // After a value: a comma (and the next member), a closing bracket, or the end.
      for (;;) {
        if (isJsonSpace(buf[pos])) pos = skipSpace(buf, pos);
        if (this.depth === 0) return pos === len ? JSON_SCAN.ok : JSON_SCAN.invalid;
        const kind = this.kinds[this.depth - 1];
        const d = buf[pos];
        if (d === COMMA) {
          pos++;
          if (isJsonSpace(buf[pos])) pos = skipSpace(buf, pos);
          if (kind === OBJECT) {
            if (++keys > maxKeys) return JSON_SCAN.bounds;
            pos = this.key(scan, buf, pos);
            if (pos === INVALID) return JSON_SCAN.invalid;
          }
          break;
        }
        if (d !== (kind === OBJECT ? 0x7d : 0x5d)) return JSON_SCAN.invalid;
        this.depth--;
        pos++;
      }
    }
  }

  /** A member's key at pos (inspected, recorded for field names), its colon; returns the position of its value. */
  private key(scan: WafScan, buf: Buffer, pos: number): number {
    if (buf[pos] !== QUOTE) return INVALID;
    const d = this.depth - 1;
    const end = this.string(scan, buf, pos, d);
    if (end === INVALID) return INVALID;
    const colon = isJsonSpace(buf[end]) ? skipSpace(buf, end) : end;
    if (buf[colon] !== COLON) return INVALID;
    return isJsonSpace(buf[colon + 1]) ? skipSpace(buf, colon + 1) : colon + 1;
  }

  /**
   * A string at pos (its opening quote): inspected; returns the position after its closing
   * quote. `keyOf`: the depth whose key it is (recorded before the inspection, which names it).
   */
  private string(scan: WafScan, buf: Buffer, pos: number, keyOf = -1): number {
    const start = pos + 1;
    if (keyOf >= 0) { this.keyStart[keyOf] = start; this.keyEnd[keyOf] = -1; this.keyEscaped[keyOf] = 0; }
    // ASCII without escapes or control characters: the bytes are the value.
    let end = scan.jsonString(buf, start, this);
    if (end >= 0) {
      if (keyOf >= 0) this.keyEnd[keyOf] = end;
      return end + 1;
    }
    // Else: find the real end (a quote may be escaped), checking escapes and control characters.
    let escaped = false;
    let i = start;
    for (;;) {
      if (i >= buf.length) return INVALID;
      const b = buf[i];
      if (b === QUOTE) break;
      if (b < 0x20) return INVALID;
      if (b === BACKSLASH) {
        escaped = true;
        const e = buf[i + 1];
        if (e === 0x75 /* u */) {
          if (!(isHex(buf[i + 2]) && isHex(buf[i + 3]) && isHex(buf[i + 4]) && isHex(buf[i + 5]))) return INVALID;
          i += 6;
          continue;
        }
        // " \ / b f n r t
        if (!(e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74)) return INVALID;
        i += 2;
        continue;
      }
      i++;
    }
    end = i;
    if (keyOf >= 0) { this.keyEnd[keyOf] = end; this.keyEscaped[keyOf] = escaped ? 1 : 0; }
    scan.value(this.text(start, end, escaped), false, this);
    return end + 1;
  }
}

const EMPTY = Buffer.alloc(0);

function skipSpace(buf: Buffer, pos: number): number {
  while (pos < buf.length && isJsonSpace(buf[pos])) pos++;
  return pos;
}

/** A number at pos: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?; returns the position after it. */
function number(buf: Buffer, pos: number): number {
  if (buf[pos] === 0x2d /* - */) pos++;
  if (buf[pos] === 0x30) pos++;
  else if (isDigit(buf[pos])) { while (isDigit(buf[pos])) pos++; }
  else return INVALID;
  if (buf[pos] === 0x2e /* . */) {
    pos++;
    if (!isDigit(buf[pos])) return INVALID;
    while (isDigit(buf[pos])) pos++;
  }
  if (buf[pos] === 0x65 || buf[pos] === 0x45) {
    pos++;
    if (buf[pos] === 0x2b || buf[pos] === 0x2d) pos++;
    if (!isDigit(buf[pos])) return INVALID;
    while (isDigit(buf[pos])) pos++;
  }
  return pos;
}

const scanner = new JsonScanner();

/**
 * Inspects every key and string of the JSON body `buf` (JSON_SCAN.ok), or says why it did
 * not finish: JSON_SCAN.invalid (not JSON as read here), JSON_SCAN.bounds (deeper than
 * `maxDepth` containers, or more than `maxKeys` keys). In those cases some values may have
 * been inspected already (WafScan.mark / rollback undo them).
 */
export function scanJson(scan: WafScan, buf: Buffer, maxDepth: number, maxKeys: number): number {
  return scanner.run(scan, buf, maxDepth, maxKeys);
}
