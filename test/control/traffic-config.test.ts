// The config keys of weighted splits (`services`, `sticky`) and mirroring (`mirror`): the example
// loads, values compile to what the data plane reads (cumulative weights, each member's own
// policies), and every mistake is refused at its file, line and key path, once.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadConfigFile, loadConfigText } from '../../src/control/config-load.js';
import { runCheck } from '../../src/control/check.js';
import { BreakerStore } from '../../src/control/breaker-store.js';
import { configIssues } from '../helpers/config-issues.js';

const FILE = '/etc/lobby/gateway.yaml';
const EXAMPLE = fileURLToPath(new URL('../../../config/examples/traffic-splitting.yaml', import.meta.url));

const SERVICES = `services:
  v1: { targets: ["http://127.0.0.1:9001"], retry: { attempts: 3 }, deadline_ms: 5000 }
  v2: { targets: ["http://127.0.0.1:9002"] }
  shadow: { targets: ["http://127.0.0.1:9003"] }
  g: { grpc: { targets: ["127.0.0.1:9005"] }, descriptors: { reflection: true } }
auth:
  providers:
    - { name: main, issuer: x, secret: "a-secret-of-at-least-thirty-two-bytes!", algorithms: [HS256], claims_to_headers: { tenant: X-Tenant } }
`;

const load = (routes: string) => loadConfigText(`server: { port: 8080 }\n${SERVICES}routes:\n${routes}`, FILE, {});
const issues = (routes: string) => configIssues(() => load(routes));
const quiet = () => ({ text: '', write(chunk: string) { this.text += chunk; return true; } });

describe('traffic-splitting config', () => {
  it('loads the example, and `lobby check` accepts it', async () => {
    const c = await loadConfigFile(EXAMPLE);
    const users = c.routes.find((r) => r.name === 'users')!;
    assert.deepEqual(users.split!.members.map((m) => [c.services[m.service].name, m.weight]), [['users-v1', 90], ['users-v2', 10]]);
    assert.deepEqual(users.split!.sticky, { kind: 'claim', claim: 'sub', header: '' });
    const checkout = c.routes.find((r) => r.name === 'checkout')!;
    assert.deepEqual({ ...checkout.mirror, service: c.services[checkout.mirror!.service].name },
      { service: 'checkout-next', percent: 25, maxBodyBytes: 16384, maxInFlight: 32 });
    const out = quiet();
    assert.equal(await runCheck(EXAMPLE, out, quiet()), 0);
    assert.match(out.text, /users-v1 90, users-v2 10/);
    assert.match(out.text, /checkout \(mirror: checkout-next 25%\)/);
  });

  it('compiles a split: cumulative weights, the sticky source, each member\'s retry and deadline over the route\'s keys', () => {
    const c = load(`  - name: r
    match: { prefix: /r }
    services: [{ name: v1, weight: 3 }, { name: v2, weight: 0 }, { name: shadow, weight: 7 }]
    sticky: { header: X-User-Id }
    retry: { per_try_timeout_ms: 100 }
  - { name: c, match: { prefix: /c }, services: [{ name: v1, weight: 1 }], sticky: { cookie: bucket } }
  - { name: t, match: { prefix: /t }, services: [{ name: v1, weight: 1 }], sticky: { claim: tenant }, auth: { provider: main } }
`);
    const [r, cookie, claim] = c.routes;
    assert.deepEqual(r.split!.cumulative, [3, 3, 10]);
    assert.equal(r.split!.total, 10);
    assert.equal(r.service, r.split!.members[0].service, 'the first member stands for the route');
    assert.deepEqual(r.split!.sticky, { kind: 'header', header: 'x-user-id' });
    assert.deepEqual(cookie.split!.sticky, { kind: 'cookie', cookie: 'bucket' });
    assert.deepEqual(claim.split!.sticky, { kind: 'claim', claim: 'tenant', header: 'x-tenant' });
    // Retries and deadlines are the route's keys over each member's own service's.
    const [m1, m2] = r.split!.members;
    assert.equal(m1.retry!.attempts, 3);
    assert.equal(m1.retry!.perTryTimeoutMs, 100);
    assert.equal(m2.retry!.attempts, 2);
    assert.equal(m1.deadline!.ms, 5000);
    assert.equal(m2.deadline, undefined);
    assert.equal(r.retry, undefined, 'nothing on the split route itself');
    assert.equal(c.services.find((s) => s.name === 'v2')!.retryUsed, true);
  });

  it('a route\'s circuit_breaker gives each member a breaker slot of its own', () => {
    const c = new BreakerStore().attach(load(`  - name: r
    match: { prefix: /r }
    services: [{ name: v1, weight: 1 }, { name: v2, weight: 1 }]
    circuit_breaker: { consecutive_failures: 2 }
`));
    const [m1, m2] = c.routes[0].split!.members;
    assert.equal(m1.circuitBreaker && m1.circuitBreaker.consecutiveFailures, 2);
    assert.notEqual(m1.breakerSlot, undefined);
    assert.notEqual(m2.breakerSlot, undefined);
    assert.notEqual(m1.breakerSlot, m2.breakerSlot);
    assert.deepEqual(Object.keys(c.breakerState!.slots).sort(), ['route:r/v1', 'route:r/v2']);
  });

  it('compiles a mirror with its defaults', () => {
    const c = load('  - { name: r, match: { prefix: /r }, service: v1, mirror: { service: shadow } }\n');
    assert.deepEqual(c.routes[0].mirror, { service: 2, percent: 100, maxBodyBytes: 65536, maxInFlight: 64 });
  });

  it('refuses every mistake at its key path, once', () => {
    assert.deepEqual(issues(`  - name: a
    match: { prefix: /a }
    services: [{ name: v1, weight: 90 }, { name: v1, weight: 10 }, { name: v3, weight: 1 }, { name: g, weight: 1 }]
  - { name: b, match: { prefix: /b }, services: [{ name: v1, weight: 0 }, { name: v2, weight: 0 }] }
  - { name: c, match: { prefix: /c }, service: v1, services: [{ name: v2, weight: 1 }] }
  - { name: d, match: { prefix: /d } }
  - { name: e, match: { prefix: /e }, service: v1, sticky: { cookie: x } }
  - { name: f, match: { prefix: /f }, services: [{ name: v1, weight: 1 }], sticky: { claim: sub } }
  - { name: g, match: { prefix: /g }, services: [{ name: v1, weight: 1 }], sticky: { claim: email }, auth: { provider: main } }
  - { name: h, match: { prefix: /h }, service: v1, mirror: { service: v1 } }
  - { name: i, match: { prefix: /i }, services: [{ name: v1, weight: 1 }], mirror: { service: nope } }
  - { name: j, match: { prefix: /j }, service: v1, mirror: { service: g } }
`), [
      'routes[0].services[1].name: service "v1" is already listed as services[0]',
      'routes[0].services[2].name: unknown service "v3" (did you mean "v1"? defined services: v1, v2, shadow, g)',
      'routes[0].services[3].name: service "g" is a gRPC service (grpc:); the members of a split are HTTP services',
      'routes[1].services: weights sum to 0: at least one service needs a weight above 0',
      'routes[2].services: cannot be combined with service: a route sends to one service, or splits over several',
      'routes[3].service: is required: the service the route sends to (or services: [...] for a weighted split)',
      'routes[4].sticky: applies to a weighted split (services: [...]); a route with one service has nothing to stick to',
      'routes[5].sticky.claim: needs auth on the route: the claim "sub" is only known once a token was verified',
      'routes[6].sticky.claim: auth provider "main" must inject the claim "email" (claims_to_headers: { email: X-Some-Header }), or stick by sub',
      'routes[7].mirror.service: "v1" already serves this route: a mirror is another service (one under test)',
      'routes[8].mirror.service: unknown service "nope" (defined services: v1, v2, shadow, g)',
      'routes[9].mirror.service: service "g" is a gRPC service (grpc:); a mirror is an HTTP service',
    ]);
  });

  it('refuses bad values on their own, without echoes in the rules between values', () => {
    assert.deepEqual(issues(`  - name: a
    match: { prefix: /a }
    services: [{ name: v1, weight: -1 }, { name: v2, weight: 2.5 }, { name: shadow, weight: 2000000 }]
    sticky: { header: Host }
  - { name: b, match: { prefix: /b }, services: [], mirror: { service: shadow, percent: 0, max_body_bytes: 100000, max_in_flight: 0 } }
  - { name: c, match: { prefix: /c }, services: [{ name: v1, weight: 1 }], sticky: { header: X-A, cookie: b } }
  - { name: d, match: { prefix: /d }, services: [{ name: v1, weight: 1, extra: 1 }] }
`), [
      'routes[0].services[0].weight: must be at least 0 (0: the member gets no requests)',
      'routes[0].services[1].weight: expected an integer, got 2.5',
      'routes[0].services[2].weight: must be at most 1000000 (weights are relative: 90 and 10 split as 9 and 1 do)',
      'routes[0].sticky.header: cannot be "Host": the gateway handles that header itself and the split never sees it',
      'routes[1].services: must list at least one service',
      'routes[1].mirror.percent: must be greater than 0 (remove mirror to mirror nothing)',
      'routes[1].mirror.max_body_bytes: must be at most 65536: larger bodies are streamed to the upstream, not buffered, and a stream cannot be copied',
      'routes[1].mirror.max_in_flight: must be greater than 0',
      'routes[2].sticky: has header and cookie; use exactly one of header, cookie or claim',
      'routes[3].services[0].extra: unknown key (allowed: name, weight)',
    ]);
  });

  it('a member or mirror naming a service that failed gets no "unknown service" echo', () => {
    const text = `server: { port: 8080 }
services:
  v1: { targets: ["http://127.0.0.1:9001"] }
  v2: { targets: ["not a url"] }
routes:
  - { name: a, match: { prefix: /a }, services: [{ name: v1, weight: 1 }, { name: v2, weight: 1 }], mirror: { service: v2 } }
`;
    const found = configIssues(() => loadConfigText(text, FILE, {}));
    assert.equal(found.length, 1, found.join('\n'));
    assert.match(found[0], /^services\.v2\.targets\[0\]: /);
  });
});
