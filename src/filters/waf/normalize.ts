// What the WAF's rules see of a value: the usual evasions undone, in CRS's order of
// transformations, into lower-case text.
//   1. percent-decoding, twice (%27, %2527), with %uXXXX; `+` as a space (form encoding);
//   2. HTML character references (&lt; &#60; &#x3c; &#0000060 ..., with or without ;);
//   3. JS/JSON escapes \uXXXX, \xHH and \u{...};
//   4. null bytes dropped;
//   5. lower case;
//   6. SQL comments /* ... */ replaced by a space (MySQL's /*! ... */ keeps its content, as
//      MySQL runs it), HTML comments <!-- ... --> by a space;
//   7. every run of whitespace (also \v, \f, non-breaking space) as one space.
// A value of only letters, digits, single spaces and _ . , / - (most API values) skips all of
// that after one pass over its characters (plainKind): as it is, or lower-cased.

import { hexValue } from '../../shared/path-normalize.js';

// What makes the normaliser change a value other than lowering its case is mirrored in
// prefilter.ts (needsNormalising and scanRaw's look-ahead), which skips this for the rest;
// test/filters/waf-fast-paths.test.ts checks the two agree.
const NEEDS_DECODE = /[%&\\+\0]/;
const NEEDS_TIDY = /[A-Z]|\/\*|<!--|\s\s|[\t\n\r\v\f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]/;

const NAMED: Readonly<Record<string, string>> = {
  lt: '<', gt: '>', quot: '"', apos: "'", amp: '&', nbsp: ' ', colon: ':', sol: '/', lpar: '(', rpar: ')',
  semi: ';', equals: '=', grave: '`', tab: '\t', newline: '\n', num: '#', excl: '!', comma: ',', period: '.',
  lsqb: '[', rsqb: ']', lbrace: '{', rbrace: '}', bsol: '\\', plus: '+', quest: '?', percnt: '%', ast: '*',
};

/** One round of percent-decoding (bytes as UTF-8 when they form it, else as Latin-1), with %uXXXX and + as space. */
function percentDecode(s: string, plusAsSpace: boolean): string {
  if (s.indexOf('%') < 0) return plusAsSpace && s.indexOf('+') >= 0 ? s.replace(/\+/g, ' ') : s;
  const bytes: number[] = [];
  let out = '';
  const flush = () => {
    if (bytes.length === 0) return;
    const buf = Buffer.from(bytes);
    const text = buf.toString('utf8');
    out += text.includes('\ufffd') ? buf.toString('latin1') : text;
    bytes.length = 0;
  };
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 /* % */ && i + 2 < s.length) {
      if ((s[i + 1] === 'u' || s[i + 1] === 'U') && i + 5 < s.length) {
        const a = hexValue(s.charCodeAt(i + 2)), b = hexValue(s.charCodeAt(i + 3)), c3 = hexValue(s.charCodeAt(i + 4)), d = hexValue(s.charCodeAt(i + 5));
        if ((a | b | c3 | d) >= 0) { flush(); out += String.fromCharCode((a << 12) | (b << 8) | (c3 << 4) | d); i += 5; continue; }
      }
      const h = hexValue(s.charCodeAt(i + 1));
      const l = hexValue(s.charCodeAt(i + 2));
      if (h >= 0 && l >= 0) { bytes.push(h * 16 + l); i += 2; continue; }
    }
    flush();
    out += plusAsSpace && c === 43 ? ' ' : s[i];
  }
  flush();
  return out;
}

const ENTITY = /&(?:#(?:x([0-9a-f]{1,8})|(\d{1,10}))|([a-z]{2,8}));?/gi;
function entityDecode(s: string): string {
  if (s.indexOf('&') < 0) return s;
  return s.replace(ENTITY, (whole, hex: string | undefined, dec: string | undefined, name: string | undefined) => {
    if (name !== undefined) return NAMED[name.toLowerCase()] ?? whole;
    const code = hex !== undefined ? parseInt(hex, 16) : Number(dec);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : '';
  });
}

const ESCAPE = /\\(?:u\{([0-9a-f]{1,6})\}|u([0-9a-f]{4})|x([0-9a-f]{2}))/gi;
function escapeDecode(s: string): string {
  if (s.indexOf('\\') < 0) return s;
  return s.replace(ESCAPE, (_w, cp: string | undefined, u: string | undefined, x: string | undefined) => {
    const code = parseInt(cp ?? u ?? x ?? '0', 16);
    return code <= 0x10ffff ? String.fromCodePoint(code) : '';
  });
}

const SQL_COMMENT = /\/\*!\d{0,6}|\/\*[^]*?\*\/|<!--[^]*?-->/g;
const SPACE_RUN = /[\s\u00a0\ufeff]+/g;

const PLAIN = 0;
const PLAIN_UPPER = 1;
const OTHER = 2;

/** PLAIN: only [a-z0-9_.,/-] and single spaces; PLAIN_UPPER: the same with capitals; OTHER: anything else. */
function plainKind(s: string): number {
  let upper = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 95 || c === 46 || c === 44 || c === 47 || c === 45) continue;
    if (c >= 65 && c <= 90) { upper = true; continue; }
    if (c === 32 && s.charCodeAt(i + 1) !== 32) continue;
    return OTHER;
  }
  return upper ? PLAIN_UPPER : PLAIN;
}

/**
 * The normalised text of a value. `plusAsSpace`: the value came from a query string or a form
 * (where + is a space); a path, header or JSON string keeps its +. (The WAF's hot path skips
 * this for a value it can prove the normaliser would only lower-case: prefilter.ts scanRaw.)
 */
export function normalizeValue(value: string, plusAsSpace: boolean): string {
  const kind = plainKind(value);
  if (kind !== OTHER) return kind === PLAIN ? value : value.toLowerCase();
  let s = value;
  if (NEEDS_DECODE.test(s)) {
    s = percentDecode(s, plusAsSpace);
    if (s.indexOf('%') >= 0) s = percentDecode(s, false); // double encoding: %2527 -> %27 -> '
    s = entityDecode(s);
    s = entityDecode(s); // &amp;lt; -> &lt; -> <
    s = escapeDecode(s);
    if (s.indexOf('%') >= 0) s = percentDecode(s, false); // \u0025 27 and &#37;27 -> %27 -> '
    if (s.indexOf('\0') >= 0) s = s.replace(/\0/g, '');
  }
  if (!NEEDS_TIDY.test(s)) return s;
  s = s.toLowerCase();
  if (s.indexOf('/*') >= 0 || s.indexOf('<!--') >= 0) s = s.replace(SQL_COMMENT, (m) => (m.startsWith('/*!') ? ' ' : ' ')).replace(/\*\//g, ' ');
  return s.replace(SPACE_RUN, ' ');
}
