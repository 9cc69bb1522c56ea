// Rate-limit configuration (rate_limits, routes[].rate_limit, server.trusted_proxies,
// redis.rate_limit_sync_ms) and client-IP extraction from X-Forwarded-For.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configIssues } from '../helpers/config-issues.js';
import { loadConfigFile, loadConfigText } from '../../src/control/config-load.js';
import { runCheck } from '../../src/control/check.js';
import { fileURLToPath } from 'node:url';
import type { RateLimitFilterConfig } from '../../src/shared/rate-limit-config.js';
import { CidrSet, clientAddress, parseCidr, type Cidr } from '../../src/shared/ip-cidr.js';

const BASE = `
services: { users: { targets: ["http://127.0.0.1:9001"] } }
`;

function compile(yaml: string) {
  return loadConfigText(BASE + yaml, 'rl.yaml');
}

function issues(yaml: string): string[] {
  return configIssues(() => compile(yaml));
}

describe('rate-limit config', () => {
  it('compiles the issue example into one rate-limit filter per limited route', () => {
    const config = compile(`
server: { trusted_proxies: ["10.0.0.0/8", "::1"] }
auth:
  providers:
    - { name: main, issuer: me, secret: "${'s'.repeat(32)}", algorithms: [HS256], claims_to_headers: { sub: X-User-Id } }
rate_limits:
  per-ip:   { key: ip, rate: 100, per: 1s, burst: 200 }
  per-user: { key: "claim:sub", rate: 1000, per: 1m }
  per-key:  { key: "header:X-Api-Key", rate: 50, per: 1s, mode: report, on_redis_error: deny, status: 503 }
routes:
  - { name: users, match: { prefix: /users }, service: users, auth: { provider: main }, rate_limit: [per-ip, per-user] }
  - { name: keys, match: { prefix: /keys }, service: users, rate_limit: [per-key] }
  - { name: open, match: { prefix: /open }, service: users }
`);
    const [users, keys, open] = config.routes;
    assert.deepEqual(users.filters.map((f) => f.name), ['auth-jwt', 'rate-limit']);
    const rl = users.filters[1].config as RateLimitFilterConfig;
    assert.deepEqual(rl.trustedProxies, ['10.0.0.0/8', '::1']);
    assert.deepEqual(rl.limits.map((l) => [l.name, l.rate, l.perMs, l.burst, l.policy]), [
      ['per-ip', 100, 1000, 200, '"per-ip";q=200;w=2'],
      ['per-user', 1000, 60000, 1000, '"per-user";q=1000;w=60'],
    ]);
    assert.deepEqual(rl.limits[1].key, { kind: 'claim', claim: 'sub', header: 'x-user-id' });
    assert.deepEqual(rl.limits.map((l) => [l.mode, l.onRedisError, l.status, l.synced]), [['enforce', 'local', 429, false], ['enforce', 'local', 429, false]]);
    // Routes without auth strip identity headers first (auth-compile), then rate-limit.
    assert.deepEqual(keys.filters.map((f) => f.name), ['identity-strip', 'rate-limit']);
    const k = (keys.filters[1].config as RateLimitFilterConfig).limits[0];
    assert.deepEqual([k.key, k.mode, k.onRedisError, k.status], [{ kind: 'header', header: 'x-api-key' }, 'report', 'deny', 503]);
    assert.deepEqual(open.filters.map((f) => f.name), ['identity-strip']);
    assert.equal(config.rateLimit?.tableKeys, 65536);
    assert.equal(config.rateLimit?.sync, null);
  });

  it('takes the sync settings from the redis section', () => {
    const config = compile(`
redis: { url: "redis://127.0.0.1:6390", key_prefix: "t:", rate_limit_sync_ms: 50 }
server: { rate_limit_keys: 1000 }
rate_limits: { a: { key: ip, rate: 5, per: 500ms } }
routes: [ { name: r, match: { prefix: / }, service: users, rate_limit: [a] } ]
`);
    assert.deepEqual(config.rateLimit?.sync, { endpoint: { topology: 'single', url: 'redis://127.0.0.1:6390' }, keyPrefix: 't:', intervalMs: 50, instanceId: null });
    assert.equal(config.rateLimit?.tableKeys, 1000);
    assert.equal(config.rateLimit?.limits[0].synced, true);
    assert.equal(config.rateLimit?.limits[0].policy, '"a";q=5;w=1');
  });

  it('reports every mistake with its key path', () => {
    const found = issues(`
server: { trusted_proxies: ["10.0.0.1/8", "nope"] }
rate_limits:
  a: { key: cookie, rate: 0, per: 2x }
  b: { key: "header:", rate: 1, mode: strict, on_redis_error: ignore, status: 200 }
routes: [ { name: r, match: { prefix: / }, service: users, rate_limit: [] } ]
`);
    const want = [
      'server.trusted_proxies[0]: has host bits set: write the network address (10.0.0.0/8)',
      'server.trusted_proxies[1]: must be an IP address or CIDR range like "10.0.0.0/8" or "fd00::/8"',
      'rate_limits.a.key: must be "ip", "consumer", "header:NAME" or "claim:NAME"',
      'rate_limits.a.rate: must be greater than 0',
      'rate_limits.a.per: must be a duration like "1s", "500ms", "1m", "1h" or "1d"',
      'rate_limits.b.key: header: needs a header name, like "header:x-api-key"',
      'rate_limits.b.mode: must be one of "enforce", "report", got the string "strict"',
      'rate_limits.b.on_redis_error: must be one of "allow", "local", "deny", got the string "ignore"',
      'rate_limits.b.status: must be at least 400',
      'routes[0].rate_limit: must name at least one limit (omit rate_limit for none)',
    ];
    for (const w of want) assert.ok(found.includes(w), `missing: ${w}\nin:\n${found.join('\n')}`);
  });

  it('relates routes to limits and claims to auth providers', () => {
    const found = issues(`
auth:
  providers:
    - { name: main, issuer: me, secret: "${'s'.repeat(32)}", algorithms: [HS256], claims_to_headers: { sub: X-User-Id } }
rate_limits:
  by-tenant: { key: "claim:tenant", rate: 1 }
  by-user: { key: "claim:sub", rate: 1 }
routes:
  - { name: a, match: { prefix: /a }, service: users, rate_limit: [nope, by-user, by-user] }
  - { name: b, match: { prefix: /b }, service: users, auth: { provider: main }, rate_limit: [by-tenant] }
`);
    assert.deepEqual(found.sort(), [
      'routes[0].rate_limit[0]: unknown limit "nope" (defined limits: by-tenant, by-user)',
      'routes[0].rate_limit[1]: limit "by-user" is keyed by claim:sub, but the route has no auth to take the claim from',
      'routes[0].rate_limit[2]: limit "by-user" is listed twice',
      'routes[1].rate_limit[0]: limit "by-tenant" is keyed by claim:tenant: auth provider "main" must inject it (claims_to_headers: { tenant: X-Some-Header })',
    ].sort());
  });
});

describe('config/examples/rate-limits.yaml', () => {
  it('loads and checks (so it never rots)', async () => {
    const file = fileURLToPath(new URL('../../../config/examples/rate-limits.yaml', import.meta.url));
    const config = await loadConfigFile(file);
    assert.deepEqual(config.routes.map((r) => r.filters.map((f) => f.name)), [['auth-jwt', 'rate-limit'], ['identity-strip', 'rate-limit']]);
    assert.deepEqual(config.rateLimit?.limits.map((l) => l.policy), ['"per-ip";q=200;w=2', '"per-user";q=1000;w=60', '"per-key";q=50;w=1']);
    const sink = { write: () => true };
    assert.equal(await runCheck(file, sink, sink), 0);
  });
});

describe('client IP', () => {
  const trusted = new CidrSet(['10.0.0.0/8', '192.168.1.7', 'fd00::/8', '::1'].map((c) => parseCidr(c) as Cidr));

  it('matches IPv4, IPv6 and IPv4-mapped addresses against the ranges', () => {
    assert.ok(trusted.has('10.200.3.4'));
    assert.ok(trusted.has('192.168.1.7'));
    assert.ok(!trusted.has('192.168.1.8'));
    assert.ok(trusted.has('fd12:3456::1'));
    assert.ok(trusted.has('0000:0000:0000:0000:0000:0000:0000:0001'));
    assert.ok(trusted.has('::ffff:10.1.1.1'));
    assert.ok(!trusted.has('fe80::1'));
    assert.ok(!trusted.has('not-an-ip'));
    assert.ok(!trusted.has('10.0.0.256'));
    assert.equal(typeof parseCidr('10.0.0.0/33'), 'string');
    assert.equal(typeof parseCidr('::/0'), 'object');
  });

  it('reads X-Forwarded-For only from a trusted sender, skipping trusted hops from the right', () => {
    assert.equal(clientAddress('203.0.113.9', '1.2.3.4', trusted), '203.0.113.9');
    assert.equal(clientAddress('10.0.0.1', '', trusted), '10.0.0.1');
    assert.equal(clientAddress('10.0.0.1', '1.2.3.4', trusted), '1.2.3.4');
    assert.equal(clientAddress('10.0.0.1', '6.6.6.6, 1.2.3.4, 10.9.9.9', trusted), '1.2.3.4');
    assert.equal(clientAddress('10.0.0.1', '10.1.1.1, 10.2.2.2', trusted), '10.1.1.1');
    assert.equal(clientAddress('::1', 'garbage', trusted), '::1'); // junk is not a key: the sending proxy is (ip-key.test.ts)
  });
});
