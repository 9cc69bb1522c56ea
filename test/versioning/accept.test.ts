// The Accept parser (src/shared/api-version.ts): media ranges, parameters, quoted strings,
// q-values, and which API versions a header asks for, in preference order. Examples first,
// then fast-check properties: a formatted list of ranges parses back to itself, and arbitrary
// input never throws and yields only ranges that the grammar allows.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { acceptedVersions, parseAccept, parseQ, type MediaRange } from '../../src/shared/api-version.js';
import { queryParam } from '../../src/data/api-version.js';

describe('parseAccept', () => {
  it('reads types, parameters and q, lower-casing names but not values', () => {
    assert.deepEqual(parseAccept('Application/JSON; Version=2; q=0.5, text/*;q=0, */*'), [
      { type: 'application', subtype: 'json', params: [['version', '2']], q: 500 },
      { type: 'text', subtype: '*', params: [], q: 0 },
      { type: '*', subtype: '*', params: [], q: 1000 },
    ]);
  });

  it('unquotes quoted strings, commas and semicolons inside them included', () => {
    assert.deepEqual(parseAccept('a/b;x="1,2;q=0\\"3", c/d'), [
      { type: 'a', subtype: 'b', params: [['x', '1,2;q=0"3']], q: 1000 },
      { type: 'c', subtype: 'd', params: [], q: 1000 },
    ]);
  });

  it('skips malformed elements and keeps the rest', () => {
    const cases: [string, string[]][] = [
      ['a/b, garbage, c/d', ['a/b', 'c/d']],
      ['*/json, a/b', ['a/b']],
      ['a/b;q=1.5, c/d;q=0.25', ['c/d']],
      ['a/b;q=0.1234, c/d', ['c/d']],
      ['a/b;=x, c/d', ['c/d']],
      ['a/b;x, c/d', ['c/d']],
      ['a/b;x="open, c/d', []],
      ['a/, /b, a/b c, e/f', ['e/f']],
      [',,a/b ,, ,c/d,', ['a/b', 'c/d']],
      ['a/b;;x=1;, c/d', ['a/b', 'c/d']],
      ['', []],
    ];
    for (const [header, expected] of cases) {
      assert.deepEqual(parseAccept(header).map((r) => `${r.type}/${r.subtype}`), expected, header);
    }
  });

  it('qvalues per RFC 9110', () => {
    assert.equal(parseQ('1'), 1000);
    assert.equal(parseQ('1.000'), 1000);
    assert.equal(parseQ('0'), 0);
    assert.equal(parseQ('0.'), 0);
    assert.equal(parseQ('0.5'), 500);
    assert.equal(parseQ('0.05'), 50);
    assert.equal(parseQ('0.001'), 1);
    for (const bad of ['1.001', '2', '.5', '0.0001', '-0', 'x', '']) assert.equal(parseQ(bad), -1, bad);
  });
});

describe('acceptedVersions', () => {
  it('the vnd form and the version parameter', () => {
    assert.deepEqual(acceptedVersions('application/vnd.company.v2+json', 'company'), ['2']);
    assert.deepEqual(acceptedVersions('application/vnd.company.v2', 'company'), ['2']);
    assert.deepEqual(acceptedVersions('application/VND.Company.V2.1+JSON', 'company'), ['2.1']);
    assert.deepEqual(acceptedVersions('application/json; version=3', 'company'), ['3']);
    assert.deepEqual(acceptedVersions('application/json; version="3"', ''), ['3']);
    // Another vendor's type names no version of ours; without a vendor only parameters count.
    assert.deepEqual(acceptedVersions('application/vnd.other.v2+json', 'company'), []);
    assert.deepEqual(acceptedVersions('application/vnd.company.v2+json', ''), []);
    assert.deepEqual(acceptedVersions('application/vnd.company.v+json', 'company'), []);
    assert.deepEqual(acceptedVersions('*/*', 'company'), []);
    assert.deepEqual(acceptedVersions('application/json', 'company'), []);
  });

  it('orders by q, then position; q=0 refuses a version; each version once', () => {
    const h = 'application/vnd.company.v1+json;q=0.5, application/vnd.company.v3+json, application/json;version=2;q=0.9';
    assert.deepEqual(acceptedVersions(h, 'company'), ['3', '2', '1']);
    assert.deepEqual(acceptedVersions('application/vnd.c.v2+json, application/vnd.c.v1+json', 'c'), ['2', '1']);
    assert.deepEqual(acceptedVersions('application/vnd.c.v2+json;q=0, application/json;version=2, application/vnd.c.v1+json;q=0.1', 'c'), ['1']);
    assert.deepEqual(acceptedVersions('application/vnd.c.v2+json;q=0.2, application/vnd.c.v2+xml', 'c'), ['2']);
  });
});

describe('queryParam', () => {
  it('finds one parameter by exact name, decoding it', () => {
    assert.equal(queryParam('version=2', 'version'), '2');
    assert.equal(queryParam('a=1&version=2&b', 'version'), '2');
    assert.equal(queryParam('xversion=2&version=3', 'version'), '3');
    assert.equal(queryParam('version=2&version=2', 'version'), '2');
    assert.equal(queryParam('version=%32', 'version'), '2');
    assert.equal(queryParam('version=', 'version'), null);
    assert.equal(queryParam('versions=2', 'version'), null);
    assert.equal(queryParam('', 'version'), null);
    assert.notEqual(queryParam('version=1&version=2', 'version'), '1');
    assert.notEqual(queryParam('version=%zz', 'version'), '%zz');
  });
});

// ---- Properties

const tchars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz";
const token = fc.string({ unit: fc.constantFrom(...tchars.split('')), minLength: 1, maxLength: 8 });
const qvalue = fc.integer({ min: 0, max: 1000 });
const paramValue = fc.string({ unit: fc.constantFrom(...' ,;="\\\tabc1'.split('')), minLength: 1, maxLength: 6 });
const range = fc.record({
  type: token.filter((t) => t !== '*'),
  subtype: token,
  params: fc.array(fc.tuple(token.filter((n) => n !== 'q'), paramValue), { maxLength: 3 }),
  q: qvalue,
});

function quote(value: string): string {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(value) ? value : `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}
function formatQ(q: number): string {
  return q === 1000 ? '1' : `0.${String(q).padStart(3, '0')}`;
}
function format(ranges: MediaRange[], ows: string): string {
  return ranges
    .map((r) => `${r.type}/${r.subtype}${r.params.map(([n, v]) => `${ows};${ows}${n}=${quote(v)}`).join('')}${ows};q=${formatQ(r.q)}`)
    .join(`${ows},${ows}`);
}

describe('Accept parser properties (fast-check)', () => {
  it('a formatted list of ranges parses back to the same ranges', () => {
    fc.assert(fc.property(fc.array(range, { maxLength: 5 }), fc.constantFrom('', ' ', '\t', ' \t'), (ranges, ows) => {
      assert.deepEqual(parseAccept(format(ranges, ows)), ranges);
    }), { numRuns: 2000 });
  });

  it('any input: no throw, and every range it yields is well-formed', () => {
    const anyHeader = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.string({ unit: fc.constantFrom(...'a/b;q=0.5,"\\ v1*'.split('')), maxLength: 40 }),
    );
    fc.assert(fc.property(anyHeader, (header) => {
      for (const r of parseAccept(header)) {
        assert.match(r.type, /^[!#$%&'*+\-.^_`|~0-9a-z]+$/);
        assert.match(r.subtype, /^[!#$%&'*+\-.^_`|~0-9a-z]+$/);
        assert.ok(r.q >= 0 && r.q <= 1000 && Number.isInteger(r.q));
        assert.ok(r.type !== '*' || r.subtype === '*');
        for (const [name] of r.params) assert.notEqual(name, 'q');
      }
    }), { numRuns: 5000 });
  });

  it('acceptedVersions: versions come in non-increasing q, never with q=0, each once', () => {
    const vrange = fc.record({ v: fc.constantFrom('1', '2', '3', '4'), q: qvalue, vnd: fc.boolean() });
    fc.assert(fc.property(fc.array(vrange, { maxLength: 6 }), (items) => {
      const header = items
        .map((i) => (i.vnd ? `application/vnd.co.v${i.v}+json` : `application/json;version=${i.v}`) + `;q=${formatQ(i.q)}`)
        .join(', ');
      const got = acceptedVersions(header, 'co');
      assert.equal(new Set(got).size, got.length);
      const refused = new Set(items.filter((i) => i.q === 0).map((i) => i.v));
      const best = (v: string) => Math.max(...items.filter((i) => i.v === v).map((i) => i.q));
      for (const v of got) assert.ok(!refused.has(v) && best(v) > 0, v);
      for (let k = 1; k < got.length; k++) assert.ok(best(got[k - 1]) >= best(got[k]), header);
      const expected = new Set(items.filter((i) => !refused.has(i.v)).map((i) => i.v));
      assert.deepEqual(new Set(got), expected);
    }), { numRuns: 2000 });
  });
});
