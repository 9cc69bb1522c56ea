// ip-rules on its own: compiled by the real compiler, run against fake contexts whose client
// address (the socket peer, X-Forwarded-For) varies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NEXT, REPLY } from '../../src/data/chain.js';
import { ipRules } from '../../src/filters/ip-rules/index.js';
import type { RawConfigInput } from '../../src/control/config-schema.js';
import { chainOf, compileError, compiledFilterConfig, fakeContext } from './fake-exchange.js';

const services = { s: { targets: ['http://127.0.0.1:9'] } };

function verdicts(raw: RawConfigInput, route: string, cases: [peer: string, xff: string][]): string[] {
  const filter = ipRules.build(compiledFilterConfig(ipRules, raw, route));
  return cases.map(([peer, xff]) => {
    const { ctx, replies } = fakeContext({ clientIp: peer, forwardedFor: xff });
    const verdict = filter.onRequest(ctx);
    if (verdict === NEXT) return 'pass';
    assert.equal(verdict, REPLY);
    assert.equal(replies[0].spec.status, 403);
    assert.equal(replies[0].spec.code, 'ip_denied');
    return 'deny';
  });
}

test('deny and allow ranges, IPv4 and IPv6; an IPv4-mapped peer (dual-stack listener) matches IPv4 ranges', () => {
  const raw: RawConfigInput = {
    services,
    routes: [{ name: 'r', match: { prefix: '/' }, service: 's', ip_allow: ['10.0.0.0/8', '2001:db8::/32'], ip_deny: ['10.9.0.0/16', '2001:db8:bad::/48'] }],
  };
  assert.deepEqual(verdicts(raw, 'r', [
    ['10.1.2.3', ''], ['10.9.1.1', ''], ['192.0.2.1', ''],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', ''], ['2001:0db8:0bad:0000:0000:0000:0000:0001', ''], ['2001:0db9:0000:0000:0000:0000:0000:0001', ''],
    ['0000:0000:0000:0000:0000:ffff:0a01:0203', ''], ['0000:0000:0000:0000:0000:ffff:0a09:0001', ''],
  ]), ['pass', 'deny', 'deny', 'pass', 'deny', 'deny', 'pass', 'deny']);
});

test('the client address is the one server.trusted_proxies defines (the rate limit\'s): X-Forwarded-For only from a trusted peer', () => {
  const raw: RawConfigInput = {
    services,
    server: { trusted_proxies: ['127.0.0.0/8'] },
    ip_deny: ['198.51.100.0/24'],
    routes: [{ name: 'r', match: { prefix: '/' }, service: 's' }],
  };
  assert.deepEqual(verdicts(raw, 'r', [
    ['127.0.0.1', '198.51.100.7'], // through the trusted proxy: the client is denied
    ['127.0.0.1', '198.51.100.7, 127.0.0.2'], // trusted hops skipped from the right
    ['127.0.0.1', '203.0.113.5'],
    ['192.0.2.1', '127.0.0.5'], // an untrusted peer's header is ignored
    ['203.0.113.9', '198.51.100.7'], // ... so it cannot hide behind a denied address either way
    ['198.51.100.9', ''],
    ['127.0.0.1', 'junk'], // a hop that is not an address: the peer is the client
    ['127.0.0.1', '::ffff:198.51.100.7'], // IPv4-mapped in the header: the IPv4 range applies
    ['0000:0000:0000:0000:0000:ffff:7f00:0001', '198.51.100.7'], // a mapped trusted peer
  ]), ['deny', 'deny', 'pass', 'pass', 'pass', 'deny', 'pass', 'deny', 'deny']);
});

test('top-level lists apply to every route and a route\'s own add to them', () => {
  const raw: RawConfigInput = {
    services,
    ip_allow: ['10.0.0.0/8'],
    routes: [
      { name: 'all', match: { prefix: '/a' }, service: 's' },
      { name: 'narrow', match: { prefix: '/b' }, service: 's', ip_allow: ['10.1.0.0/16'], ip_deny: ['10.1.2.3'] },
    ],
  };
  assert.deepEqual(verdicts(raw, 'all', [['10.2.0.1', ''], ['192.0.2.1', '']]), ['pass', 'deny']);
  assert.deepEqual(verdicts(raw, 'narrow', [['10.1.0.1', ''], ['10.2.0.1', ''], ['10.1.2.3', '']]), ['pass', 'deny', 'deny']);
  // No list anywhere: no filter in the chain (nothing to pay).
  assert.deepEqual(chainOf({ services, routes: [{ name: 'x', match: { prefix: '/' }, service: 's' }] }, 'x'), []);
});

test('a range that is not one is refused at load with its key path', () => {
  assert.match(compileError({ services, ip_deny: ['10.0.0.1/8'] }), /ip_deny\[0\]: has host bits set: write the network address \(10\.0\.0\.0\/8\)/);
  assert.match(compileError({ services, routes: [{ name: 'r', match: { prefix: '/' }, service: 's', ip_allow: ['nope'] }] }), /routes\[0\]\.ip_allow\[0\]: must be an IP address or CIDR range/);
  assert.match(compileError({ services, ip_allow: [] }), /ip_allow: must list at least one address or CIDR range/);
});
