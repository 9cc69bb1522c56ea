// The config keys of the circuit breaker, fallback cache and overload protection: the
// example loads, values compile to what the data plane reads, and bad values are refused at
// their key path.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadConfigFile, loadConfigText } from '../../src/control/config-load.js';
import { ConfigError, type ConfigIssue } from '../../src/control/config-error.js';
import { runCheck } from '../../src/control/check.js';
import { TestPki } from '../helpers/tls-certs.js';

const FILE = '/etc/lobby/gateway.yaml';
const EXAMPLE = fileURLToPath(new URL('../../../config/examples/resilience.yaml', import.meta.url));

function service(extra: string, server = ''): string {
  return `server: { port: 8080${server} }
services:
  s:
    targets: ["http://127.0.0.1:9001"]
${extra}
routes: [ { name: r, match: { prefix: / }, service: s } ]
`;
}

function issuesOf(text: string): ConfigIssue[] {
  try {
    loadConfigText(text, FILE, {});
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.issues;
  }
  assert.fail('expected the config to be rejected');
}

const quiet = () => ({ text: '', write(chunk: string) { this.text += chunk; return true; } });

describe('resilience config', () => {
  it('loads the example, and `lobby check` accepts it', async () => {
    const c = await loadConfigFile(EXAMPLE);
    const s = c.services[0];
    assert.deepEqual(s.circuitBreaker, {
      maxConcurrent: 512, maxPending: 256, consecutiveFailures: 5, failureRate: 0.5, windowMs: 10_000, minRequests: 20,
      slowCallMs: 2000, openMs: 10_000, halfOpenProbes: 3,
    });
    assert.deepEqual(s.fallback, { ttlMs: 300_000, maxBytes: 50 * 1024 * 1024, maxEntryBytes: 1024 * 1024, keyHeaders: ['authorization', 'cookie'] });
    assert.deepEqual(c.server.overload, { maxConnections: 20000, heapPercent: 90, checkMs: 250 });
    assert.equal(await runCheck(EXAMPLE, quiet(), quiet()), 0);
  });

  it('defaults, and nothing when the sections are absent', () => {
    const plain = loadConfigText(service(''), FILE, {});
    assert.equal(plain.services[0].circuitBreaker, undefined);
    assert.equal(plain.services[0].fallback, undefined);
    assert.equal(plain.server.overload, undefined);
    const c = loadConfigText(service('    circuit_breaker: { consecutive_failures: 2 }\n    fallback: {}'), FILE, {});
    assert.equal(c.services[0].circuitBreaker!.openMs, 10_000);
    assert.equal(c.services[0].circuitBreaker!.halfOpenProbes, 3);
    assert.equal(c.services[0].fallback!.maxBytes, 50 * 1024 * 1024);
  });

  it('the fallback key includes every injected identity header', () => {
    const c = loadConfigText(`
auth:
  providers:
    - { name: h, issuer: t, secret: "a-secret-of-at-least-thirty-two-bytes!!", algorithms: [HS256], claims_to_headers: { sub: X-User-Id, tenant: X-Tenant } }
services: { s: { targets: ["http://127.0.0.1:9001"], fallback: {} } }
routes: [ { name: r, match: { prefix: / }, service: s } ]
`, FILE, {});
    assert.deepEqual(c.services[0].fallback!.keyHeaders, ['authorization', 'cookie', 'x-tenant', 'x-user-id']);
  });

  it('the fallback key includes the client-certificate identity headers (mTLS)', (t) => {
    const pki = new TestPki();
    t.after(() => pki.remove());
    const leaf = pki.leaf('gw', { names: ['localhost'] });
    const c = loadConfigText(`
server:
  port: 8080
  tls: { port: 8443, cert_file: ${leaf.cert}, key_file: ${leaf.key}, client_auth: { mode: optional, ca_file: ${pki.ca.cert}, headers: { subject: X-Client-Subject, fingerprint: X-Client-Fp } } }
services: { s: { targets: ["http://127.0.0.1:9001"], fallback: {} } }
routes: [ { name: r, match: { prefix: / }, service: s } ]
`, FILE, {});
    assert.deepEqual(c.services[0].fallback!.keyHeaders, ['authorization', 'cookie', 'x-client-subject', 'x-client-fp']);
  });

  it('refuses bad values at their key path', () => {
    const cases: [string, string, string, RegExp][] = [
      ['    circuit_breaker: { failure_rate: 1.5 }', '', 'services.s.circuit_breaker.failure_rate', /at most 1/],
      ['    circuit_breaker: { open_s: 0 }', '', 'services.s.circuit_breaker.open_s', /greater than 0/],
      ['    circuit_breaker: { consecutive: 3 }', '', 'services.s.circuit_breaker.consecutive', /unknown key.*consecutive_failures/],
      ['    fallback: { cache: { max_bytes: "50 parsecs" } }', '', 'services.s.fallback.cache.max_bytes', /byte size like/],
      ['', ', max_connections: 0', 'server.max_connections', /greater than 0|at least 1/],
      ['', ', overload: { heap_percent: 150 }', 'server.overload.heap_percent', /at most 100/],
    ];
    for (const [extra, server, path, message] of cases) {
      const issues = issuesOf(service(extra, server));
      const issue = issues.find((i) => i.path === path);
      assert.ok(issue, `${path}: ${JSON.stringify(issues)}`);
      assert.match(issue.message, message);
      assert.equal(issue.file, FILE);
    }
  });
});

describe('per-route circuit_breaker and fallback', () => {
  const config = (service: string, routes: string) => `server: { port: 8080 }
services:
  s: { targets: ["http://127.0.0.1:9001"]${service} }
  plain: { targets: ["http://127.0.0.1:9002"] }
routes:
${routes}
`;
  const withBoth = ', circuit_breaker: { consecutive_failures: 5, max_concurrent: 100, open_s: 20 }, fallback: { cache: { ttl_s: 60, max_bytes: 2MB } }';

  it("a route's keys over its service's, key by key; false turns the service's off; absent keeps the service's", () => {
    const c = loadConfigText(config(withBoth, `
  - { name: own, match: { prefix: /own }, service: s, circuit_breaker: { consecutive_failures: 2 }, fallback: { cache: { ttl_s: 5 } } }
  - { name: off, match: { prefix: /off }, service: s, circuit_breaker: false, fallback: false }
  - { name: same, match: { prefix: /same }, service: s }
  - { name: fresh, match: { prefix: /fresh }, service: plain, circuit_breaker: { failure_rate: 0.5 }, fallback: {} }
  - { name: nothing-to-turn-off, match: { prefix: /n }, service: plain, circuit_breaker: false, fallback: false }`), FILE, {});
    const [own, off, same, fresh, nothing] = c.routes;
    assert.deepEqual(own.circuitBreaker, {
      maxConcurrent: 100, maxPending: 0, consecutiveFailures: 2, failureRate: 0, windowMs: 10_000, minRequests: 20, slowCallMs: 0, openMs: 20_000, halfOpenProbes: 3,
    });
    assert.deepEqual(own.fallback, { ttlMs: 5000, maxBytes: 2 * 1024 * 1024, maxEntryBytes: 1024 * 1024, keyHeaders: ['authorization', 'cookie'] });
    assert.equal(off.circuitBreaker, false);
    assert.equal(off.fallback, false);
    assert.ok(!('circuitBreaker' in same) && !('fallback' in same), 'no override: the route shares its service chain');
    assert.equal((fresh.circuitBreaker as { failureRate: number }).failureRate, 0.5, 'a service without a breaker: the defaults under the route keys');
    assert.equal((fresh.fallback as { ttlMs: number }).ttlMs, 300_000);
    assert.ok(!('circuitBreaker' in nothing) && !('fallback' in nothing), 'false where the service has none changes nothing');
    assert.deepEqual(c.routeFallbacks, ['own', 'fresh'], 'the routes with a cache of their own');
  });

  it('refuses bad overrides naming the file, the key path and what is wrong', () => {
    const cases: [string, string, RegExp][] = [
      ['circuit_breaker: true', 'routes[0].circuit_breaker', /mapping of circuit_breaker keys.*or false/],
      ['circuit_breaker: { open_s: 0 }', 'routes[0].circuit_breaker.open_s', /greater than 0/],
      ['circuit_breaker: { consecutve_failures: 2 }', 'routes[0].circuit_breaker.consecutve_failures', /unknown key, did you mean "consecutive_failures"/],
      ['fallback: { ttl_s: 5 }', 'routes[0].fallback.ttl_s', /unknown key \(allowed: cache\)/],
      ['fallback: { cache: { max_bytes: "1XB" } }', 'routes[0].fallback.cache.max_bytes', /byte size like/],
      ['fallback: "off"', 'routes[0].fallback', /mapping \{ cache.*or false/],
    ];
    for (const [keys, path, message] of cases) {
      const issues = issuesOf(config(withBoth, `  - { name: r, match: { prefix: /r }, service: s, ${keys} }`));
      const issue = issues.find((i) => i.path === path);
      assert.ok(issue, `${path}: ${JSON.stringify(issues)}`);
      assert.match(issue.message, message);
      assert.equal(issue.file, FILE);
    }
    // Rules between values.
    let issues = issuesOf(config(withBoth, '  - { name: w, match: { prefix: /w, methods: [POST, PUT] }, service: s, fallback: {} }'));
    assert.equal(issues[0].path, 'routes[0].fallback');
    assert.match(issues[0].message, /GET only, and the route matches POST, PUT/);
    issues = issuesOf(config('', '  - { name: e, match: { prefix: /e }, service: s, circuit_breaker: { open_s: 5 } }'));
    assert.equal(issues[0].path, 'routes[0].circuit_breaker');
    assert.match(issues[0].message, /sets no rule .* service s has no circuit_breaker/);
  });
});
