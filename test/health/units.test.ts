// The health keys as the real loader compiles and refuses them, and the pieces that decide
// alone: the health-aware pickers (property tests over any up/down mix), the ejection cap
// and the ejection time.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { loadConfigText } from '../../src/control/config-load.js';
import { ConfigError } from '../../src/control/config-error.js';
import { healthyLeastRequest, healthyRoundRobin } from '../../src/data/upstream/balancer.js';
import type { RuntimeTarget } from '../../src/data/request-context.js';
import { DOWN, HealthTable, ejectionCap, ejectionMs } from '../../src/shared/health-table.js';
import { GW_ERR } from '../../src/shared/errors.js';

const FILE = '/etc/lobby/gateway.yaml';

function service(keys: string): string {
  return `
services:
  s:
    targets: ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]
${keys}
routes:
  - { name: r, match: { prefix: / }, service: s }
`;
}

function issues(text: string): string[] {
  try {
    loadConfigText(text, FILE, {});
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.issues.map((i) => `${i.path}: ${i.message}`);
  }
  assert.fail('expected the config to be rejected');
}

describe('health config', () => {
  it('compiles health_check and outlier with their defaults', () => {
    const c = loadConfigText(service('    health_check: { path: /healthz }\n    outlier: {}'), FILE, {});
    assert.deepEqual(c.services[0].healthCheck, {
      path: '/healthz', intervalMs: 5000, timeoutMs: 1000, unhealthyAfter: 3, healthyAfter: 2, expectStatus: [200], host: null,
    });
    assert.deepEqual(c.services[0].outlier, { consecutive5xx: 5, consecutiveConnectFailures: 5, ejectS: 30, maxEjectS: 300, maxEjectPercent: 50 });
    const plain = loadConfigText(service(''), FILE, {});
    assert.equal(plain.services[0].healthCheck, undefined);
    assert.equal(plain.services[0].outlier, undefined);
  });

  it('refuses bad values with their key paths', () => {
    const bad = issues(service('    health_check: { path: healthz, expect_status: [99], interval_ms: 50, unhealthy_after: 0, host: "a b" }'));
    assert.equal(bad.length, 5, bad.join('\n'));
    for (const expected of [
      'services.s.health_check.path: must be a path starting with / (visible ASCII, no spaces)',
      'services.s.health_check.interval_ms: must be at least 100 ms',
      'services.s.health_check.expect_status[0]: must be an HTTP status (100-599)',
      'services.s.health_check.host: must be a host name or address, with an optional :port',
    ]) assert.ok(bad.includes(expected), `${expected}\nnot in\n${bad.join('\n')}`);
    assert.ok(bad.some((line) => line.startsWith('services.s.health_check.unhealthy_after: ')), bad.join('\n'));
    assert.deepEqual(issues(service('    health_check: { path: /h, interval_ms: 200, timeout_ms: 500 }')), [
      'services.s.health_check.timeout_ms: must be at most interval_ms (200)',
    ]);
    assert.deepEqual(issues(service('    outlier: { eject_s: 60, max_eject_s: 30, max_eject_percent: 101 }')), [
      'services.s.outlier.max_eject_percent: must be at most 100',
    ]);
    assert.deepEqual(issues(service('    outlier: { eject_s: 60, max_eject_s: 30 }')), ['services.s.outlier.max_eject_s: must be at least eject_s (60)']);
    assert.deepEqual(issues(service('    outlier: { consecutive_5xx: 0, consecutive_connect_failures: 0 }')), [
      'services.s.outlier: consecutive_5xx and consecutive_connect_failures are both 0: nothing would ever eject a target (remove outlier instead)',
    ]);
    assert.match(issues(service('    health_check: { path: /h, intervall_ms: 100 }'))[0], /services\.s\.health_check.*intervall_ms|unknown key/);
  });

  it('no_healthy_upstream is a 503 in the error table', () => {
    assert.deepEqual({ status: GW_ERR.no_healthy_upstream.status, code: GW_ERR.no_healthy_upstream.code }, { status: 503, code: 'no_healthy_upstream' });
  });
});

function targets(n: number): RuntimeTarget[] {
  return Array.from({ length: n }, (_, i) => ({ origin: `t${i}`, inFlight: 0, healthSlot: i }) as unknown as RuntimeTarget);
}

describe('health-aware pickers', () => {
  const mix = fc.array(fc.boolean(), { minLength: 1, maxLength: 12 });

  it('round robin never picks a down target, visits every up one, and is null only when all are down', () => {
    fc.assert(fc.property(mix, (upFlags) => {
      const down = new Uint8Array(upFlags.map((up) => (up ? 0 : DOWN.EJECTED)));
      const ts = targets(upFlags.length);
      const pick = healthyRoundRobin(down);
      const seen = new Set<string>();
      for (let i = 0; i < upFlags.length * 2; i++) {
        const t = pick(ts);
        if (!upFlags.includes(true)) { assert.equal(t, null); continue; }
        assert.ok(t !== null && down[t.healthSlot] === 0);
        seen.add(t.origin);
      }
      assert.equal(seen.size, upFlags.filter(Boolean).length);
    }));
  });

  it('least request never picks a down target and is null only when all are down', () => {
    fc.assert(fc.property(mix, fc.array(fc.double({ min: 0, max: 0.999 }), { minLength: 2, maxLength: 2 }), (upFlags, rolls) => {
      const down = new Uint8Array(upFlags.map((up) => (up ? 0 : DOWN.UNHEALTHY)));
      let r = 0;
      const t = healthyLeastRequest(down, () => rolls[r++ % 2])(targets(upFlags.length));
      if (upFlags.includes(true)) assert.ok(t !== null && down[t.healthSlot] === 0);
      else assert.equal(t, null);
    }));
  });

  it('least request still prefers the less busy of two up targets', () => {
    const ts = targets(3);
    (ts[1] as { inFlight: number }).inFlight = 4;
    const seq = [0, 0]; // a = 0, b = 1
    assert.equal(healthyLeastRequest(new Uint8Array(3), () => seq.shift() ?? 0)(ts)!.origin, 't0');
  });
});

describe('ejection bookkeeping', () => {
  it('the cap is floor(targets × percent / 100); the reservation never goes past it', () => {
    assert.equal(ejectionCap(3, 34), 1);
    assert.equal(ejectionCap(4, 50), 2);
    assert.equal(ejectionCap(1, 50), 0);
    assert.equal(ejectionCap(1, 100), 1);
    const table = HealthTable.create(8);
    let granted = 0;
    for (let i = 0; i < 10; i++) if (table.reserveEjection(0, 3)) granted++;
    assert.equal(granted, 3);
    table.releaseEjection(0);
    assert.equal(table.reserveEjection(0, 3), true);
  });

  it('the ejection time is eject_s × times, at most max_eject_s', () => {
    assert.deepEqual([1, 2, 3, 20].map((n) => ejectionMs(n, 30, 100)), [30_000, 60_000, 90_000, 100_000]);
  });
});
