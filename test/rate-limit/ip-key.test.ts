// Client IPs as rate-limit keys (src/shared/ip-cidr.ts): every textual form of one address gives
// one key (ports, brackets, IPv4-mapped IPv6, leading zeros, case, zero compression), junk is
// no key (the request is keyed by the trusted proxy that sent it), checked with explicit cases
// and with fast-check over random addresses and their forms.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { canonicalIp, CidrSet, clientAddress, parseCidr, peerKey, type Cidr } from '../../src/shared/ip-cidr.js';

const trusted = new CidrSet(['10.0.0.0/8', 'fd00::/8'].map((c) => parseCidr(c) as Cidr));
const PROXY = '10.0.0.1';

/** The key of a request from the trusted proxy whose X-Forwarded-For is `xff`. */
const keyVia = (xff: string) => clientAddress(PROXY, xff, trusted);

describe('client IP keys', () => {
  it('gives one key to every form of an address', () => {
    const v4 = ['1.2.3.4', '1.2.3.4:5555', ' 1.2.3.4 ', '\t1.2.3.4', '::ffff:1.2.3.4', '::FFFF:1.2.3.4', '::ffff:102:304',
      '0:0:0:0:0:ffff:1.2.3.4', '0000:0000:0000:0000:0000:ffff:0102:0304', '[::ffff:1.2.3.4]', '[::ffff:1.2.3.4]:80',
      '001.002.003.004', '01.2.03.4:1'];
    for (const form of v4) assert.equal(keyVia(form), '1.2.3.4', form);
    const v6 = ['2001:db8::1', '2001:DB8::1', '2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8:0:0:0:0:0:1', '2001:db8::0:1',
      '[2001:db8::1]', '[2001:db8::1]:443', '2001:Db8:0::1'];
    for (const form of v6) assert.equal(keyVia(form), '2001:db8::1', form);
    for (const form of ['::1', '[::1]', '[::1]:80', '0:0:0:0:0:0:0:1', '0000:0000:0000:0000:0000:0000:0000:0001']) assert.equal(keyVia(form), '::1', form);
    // RFC 5952: the first longest zero run is compressed, a lone zero group is not.
    assert.equal(canonicalIp('2001:db8:0:1:0:0:0:1'), '2001:db8:0:1::1');
    assert.equal(canonicalIp('2001:0:0:1:0:0:1:1'), '2001::1:0:0:1:1');
    assert.equal(canonicalIp('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1');
    assert.equal(canonicalIp('::'), '::');
    assert.equal(canonicalIp('::1.2.3.4'), '::102:304'); // IPv4-compatible is not IPv4-mapped: another address
  });

  it('never makes a key of junk: the request counts against the proxy that sent it', () => {
    const junk = ['hello', '1.2.3', '999.1.1.1', '1.2.3.4.5', '1.2.3.256', '0001.2.3.4', '1.2.3.4:', '1.2.3.4:99999', '1.2.3.4:x',
      '[1.2.3.4]', '[::1', '::1]', '[::1]80', '[::1]:', 'fe80::1%eth0', '1::2::3', '12345::', ':1', 'unknown', '_hidden', '-', ''];
    for (const form of junk) {
      assert.equal(canonicalIp(form), '', form);
      assert.equal(keyVia(form), PROXY, form);
      assert.equal(keyVia(`198.51.100.7, ${form}`), PROXY, `${form} as the last hop`);
    }
    assert.equal(keyVia('1.2.3.4,,'), PROXY); // an empty hop
    // Junk left of the client does not matter: the walk stops at the first untrusted address.
    assert.equal(keyVia('hello, 1.2.3.4:80'), '1.2.3.4');
    // Trusted hops are recognised in every form too, and skipped.
    assert.equal(keyVia('198.51.100.7, [fd00::5]:80, 10.0.0.9:1234'), '198.51.100.7');
    // An untrusted peer's header is never read; its own address is canonical.
    assert.equal(clientAddress('203.0.113.9', '1.2.3.4', trusted), '203.0.113.9');
  });

  it('keys a socket peer canonically: uWebSockets.js writes IPv6 as eight 4-digit groups', () => {
    assert.equal(peerKey('203.0.113.9'), '203.0.113.9');
    assert.equal(peerKey('0000:0000:0000:0000:0000:ffff:7f00:0001'), '127.0.0.1');
    assert.equal(peerKey('2001:0db8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
    assert.equal(clientAddress('0000:0000:0000:0000:0000:ffff:0a00:0001', '', trusted), '10.0.0.1');
    assert.equal(clientAddress('0000:0000:0000:0000:0000:ffff:0a00:0001', '1.2.3.4', trusted), '1.2.3.4');
  });
});

// ---- property: every textual form of the same address yields the same key -------------------

type Addr = { v4: number } | { v6: number[] };

const hex = (n: number, pad: number, upper: boolean) => { const t = n.toString(16).padStart(pad, '0'); return upper ? t.toUpperCase() : t; };
const dotted = (v: number, pads: number[]) => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].map((b, i) => String(b).padStart(pads[i], '0')).join('.');

/** One textual form of eight groups: zero run compressed at `compress` (if it is one), padded or not, case. */
function v6Text(g: number[], o: { pad: boolean; upper: boolean; compress: number; v4tail: boolean }): string {
  const groups = g.map((x) => hex(x, o.pad ? 4 : 1, o.upper));
  let tail: string[] = [];
  let head = groups;
  if (o.v4tail) { head = groups.slice(0, 6); tail = [dotted(((g[6] << 16) | g[7]) >>> 0, [1, 1, 1, 1])]; }
  // Zero runs of the head (at least one group long) are the places `::` may go.
  const runs: [number, number][] = [];
  for (let i = 0; i < head.length;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < head.length && g[j] === 0) j++;
    runs.push([i, j]);
    i = j;
  }
  const parts = [...head, ...tail];
  if (runs.length === 0 || o.compress < 0) return parts.join(':');
  const [a, b] = runs[o.compress % runs.length];
  return `${parts.slice(0, a).join(':')}::${parts.slice(b).join(':')}`;
}

const groupArb = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
const addrArb: fc.Arbitrary<Addr> = fc.oneof(
  fc.integer({ min: 0, max: 0xffffffff }).map((v4) => ({ v4 })),
  fc.array(groupArb, { minLength: 8, maxLength: 8 }).map((v6) => ({ v6 })),
);
const v6Opts = fc.record({ pad: fc.boolean(), upper: fc.boolean(), compress: fc.integer({ min: -1, max: 3 }), v4tail: fc.boolean() });

/** Some textual form of `addr`, as a proxy might write it in X-Forwarded-For. */
function formArb(addr: Addr): fc.Arbitrary<string> {
  const port = fc.integer({ min: 0, max: 65535 });
  const space = fc.constantFrom('', ' ', '  ', '\t');
  let core: fc.Arbitrary<string>;
  if ('v4' in addr) {
    const v = addr.v4;
    const mapped = [0, 0, 0, 0, 0, 0xffff, v >>> 16, v & 0xffff];
    core = fc.oneof(
      fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 4, maxLength: 4 }).map((pads) => dotted(v, pads)),
      fc.tuple(fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 4, maxLength: 4 }), port).map(([pads, p]) => `${dotted(v, pads)}:${p}`),
      v6Opts.map((o) => v6Text(mapped, o)),
      fc.tuple(v6Opts, port).map(([o, p]) => `[${v6Text(mapped, o)}]:${p}`),
    );
  } else {
    const g = addr.v6;
    core = fc.oneof(
      v6Opts.map((o) => v6Text(g, o)),
      v6Opts.map((o) => `[${v6Text(g, o)}]`),
      fc.tuple(v6Opts, port).map(([o, p]) => `[${v6Text(g, o)}]:${p}`),
    );
  }
  return fc.tuple(space, core, space).map(([a, c, b]) => a + c + b);
}

/** The key an address must get: dotted IPv4 (also for mapped IPv6), else WHATWG URL's RFC 5952 form. */
function expectedKey(addr: Addr): string {
  if ('v4' in addr) return dotted(addr.v4, [1, 1, 1, 1]);
  const g = addr.v6;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return dotted(((g[6] << 16) | g[7]) >>> 0, [1, 1, 1, 1]);
  return new URL(`http://[${g.map((x) => x.toString(16)).join(':')}]/`).hostname.slice(1, -1);
}

describe('client IP keys (property-based)', () => {
  it('every textual form of the same address yields the same key, and only that address has it', () => {
    fc.assert(fc.property(addrArb.chain((addr) => fc.tuple(fc.constant(addr), fc.array(formArb(addr), { minLength: 2, maxLength: 6 }))), ([addr, forms]) => {
      const want = expectedKey(addr);
      for (const form of forms) {
        assert.equal(canonicalIp(form), want, JSON.stringify(form));
        // Through a trusted proxy (the address may itself be trusted: then it is the leftmost hop, the client).
        assert.equal(keyVia(form), want, JSON.stringify(form));
      }
      // The key is a fixed point: it parses back to itself.
      assert.equal(canonicalIp(want), want);
    }), { numRuns: 2000 });
  });

  it('distinct addresses never share a key', () => {
    const pair = fc.tuple(addrArb, addrArb).chain(([a, b]) => fc.tuple(fc.constant(a), fc.constant(b), formArb(a), formArb(b)));
    fc.assert(fc.property(pair, ([a, b, fa, fb]) => {
      fc.pre(expectedKey(a) !== expectedKey(b));
      assert.notEqual(canonicalIp(fa), canonicalIp(fb));
    }), { numRuns: 1000 });
  });

  it('a string is either no key or a canonical key', () => {
    const chars = fc.constantFrom(...'0123456789abcdefABCDEF:.[]% ,x'.split(''));
    fc.assert(fc.property(fc.array(chars, { maxLength: 45 }).map((a) => a.join('')), (text) => {
      const key = canonicalIp(text);
      if (key !== '') assert.equal(canonicalIp(key), key, JSON.stringify(text));
      if (!text.includes(',')) assert.equal(keyVia(text), key === '' ? PROXY : key, JSON.stringify(text));
    }), { numRuns: 3000 });
  });
});
