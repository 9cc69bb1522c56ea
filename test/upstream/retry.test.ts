// The retry policy's config (keys, merging, errors) and its pure parts: the budget's sliding
// window, full-jitter backoff bounds, Retry-After, the retry target, the decision's refusals.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Readable } from 'node:stream';
import { compileConfig } from '../../src/control/compile.js';
import type { CompiledRetry } from '../../src/shared/compiled-config.js';
import { RequestContext, RESPONSE_FLAG, type RuntimeService, type RuntimeTarget } from '../../src/data/request-context.js';
import {
  RETRY_BUDGET_EXHAUSTED, RETRY_REASON, RetryBudget, pickRetryTarget, retryAfterMs, retryDelay, type RetryCall,
} from '../../src/data/upstream/retry.js';
import { roundRobin, leastRequest, healthyRoundRobin, healthyLeastRequest } from '../../src/data/upstream/balancer.js';
import { methodBit } from '../../src/shared/methods.js';
import { configIssues } from '../helpers/config-issues.js';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../../src/control/config-load.js';

function config(service: string, route = ''): unknown {
  return {
    services: { up: { targets: ['http://127.0.0.1:9001'], ...(JSON.parse(service) as object) } },
    routes: [{ name: 'r', match: { prefix: '/' }, service: 'up', ...(route === '' ? {} : (JSON.parse(route) as object)) }],
  };
}
const compile = (service: string, route = '') => compileConfig(config(service, route) as never, 'gateway.yaml');

describe('retry config', () => {
  it('a service policy fills the defaults; a route overrides key by key', () => {
    const c = compile('{"retry":{"attempts":3,"on":["reset",503]},"deadline_ms":2000}', '{"retry":{"backoff_ms":{"max":400}}}');
    assert.deepEqual(c.routes[0].retry, {
      attempts: 3, onConnectFailure: false, onReset: true, onTimeout: false, statuses: [503], grpcCodes: 0,
      methodMask: methodBit('GET') | methodBit('HEAD') | methodBit('OPTIONS') | methodBit('PUT') | methodBit('DELETE'),
      backoffBaseMs: 25, backoffMaxMs: 400, budgetPercent: 20, budgetMinRetries: 3, perTryTimeoutMs: 0,
    });
    assert.deepEqual(c.routes[0].deadline, { ms: 2000, header: 'x-request-deadline-ms' });
    assert.equal(c.services[0].retryUsed, true);
  });

  it('retry: false and deadline_ms: false on a route turn them off; without keys nothing is compiled', () => {
    const off = compile('{"retry":{},"deadline_ms":2000,"deadline_header":false}', '{"retry":false,"deadline_ms":false}');
    assert.equal(off.routes[0].retry, undefined);
    assert.equal(off.routes[0].deadline, undefined);
    assert.equal(off.services[0].retryUsed, undefined);
    const none = compile('{}');
    assert.equal(none.routes[0].retry, undefined);
    const noHeader = compile('{"deadline_ms":100,"deadline_header":false}');
    assert.deepEqual(noHeader.routes[0].deadline, { ms: 100, header: '' });
  });

  it('refuses unsafe or meaningless keys with their path', () => {
    assert.deepEqual(configIssues(() => compile('{"retry":{"methods":["GET","POST"]}}')), [
      'services.up.retry.methods[1]: must be an idempotent method (GET, HEAD, OPTIONS, PUT, DELETE, TRACE): a retried POST or PATCH may be processed twice',
    ]);
    assert.deepEqual(configIssues(() => compile('{"retry":{"on":[404]}}')), ['services.up.retry.on[0]: a retried status must be a 5xx (500-599)']);
    assert.match(configIssues(() => compile('{"retry":{"on":["gateway_error"]}}'))[0], /^services\.up\.retry\.on\[0\]: must be one of connect_failure, reset, timeout or a status code/);
    assert.deepEqual(configIssues(() => compile('{"retry":{"backoff_ms":{"base":100,"max":50}}}')), [
      'services.up.retry.backoff_ms.max: max 50 is below base 100 (max bounds every delay)',
    ]);
    assert.deepEqual(configIssues(() => compile('{"retry":{"backoff_ms":{"base":100}}}', '{"retry":{"backoff_ms":{"max":50}}}')), [
      'routes[0].retry.backoff_ms: max 50 is below base 100 (max bounds every delay)',
    ]);
    assert.match(configIssues(() => compile('{"retry":{"attempt":2}}'))[0], /^services\.up\.retry\.attempt: unknown key, did you mean "attempts"\?/);
    assert.match(configIssues(() => compile('{"deadline_header":"bad header"}'))[0], /^services\.up\.deadline_header: must be a header name/);
    assert.match(configIssues(() => compile('{"retry":{"attempts":11}}'))[0], /^services\.up\.retry\.attempts: must be at most 10/);
    // A route's override is a mapping or false; anything else says so (not zod's "Invalid input").
    assert.deepEqual(configIssues(() => compile('{}', '{"retry":true,"deadline_ms":"3s"}')), [
      "routes[0].retry: must be a mapping of retry keys (merged over the service's), or false (no retries on this route)",
      "routes[0].deadline_ms: must be a number of milliseconds (the route's own deadline), or false (none on this route)",
    ]);
  });
});

describe('config/examples/retries.yaml', () => {
  it('loads: each route gets its resolved policy and deadline', async () => {
    const config = await loadConfigFile(fileURLToPath(new URL('../../../config/examples/retries.yaml', import.meta.url)));
    const [catalog, orders, reports] = config.routes;
    assert.equal(catalog.retry?.attempts, 3);
    assert.equal(catalog.retry?.perTryTimeoutMs, 800);
    assert.deepEqual(catalog.deadline, { ms: 3000, header: 'x-request-deadline-ms' });
    assert.equal(orders.retry?.onConnectFailure, true);
    assert.equal(orders.retry?.onReset, false);
    assert.deepEqual(orders.retry?.statuses, []);
    assert.equal(reports.deadline?.ms, 30000);
    assert.deepEqual(reports.retry?.statuses, [503]);
    assert.equal(reports.retry?.perTryTimeoutMs, 20000);
  });
});

describe('retry budget', () => {
  it('allows budget_min_retries, then budget_percent of the requests in the window', () => {
    const b = new RetryBudget();
    const t = 1_000_000;
    for (let i = 0; i < 100; i++) b.request(t);
    let taken = 0;
    for (let i = 0; i < 50; i++) if (b.take(t, 20, 3)) taken++;
    assert.equal(taken, 20);
    const quiet = new RetryBudget();
    let few = 0;
    for (let i = 0; i < 10; i++) if (quiet.take(t, 20, 3)) few++;
    assert.equal(few, 3);
  });

  it('forgets what left the 10 s window', () => {
    const b = new RetryBudget();
    const t = 5_000_000;
    for (let i = 0; i < 10; i++) b.request(t);
    assert.equal(b.take(t, 10, 0), true);
    assert.equal(b.take(t, 10, 0), false);
    assert.equal(b.take(t + 9_000, 10, 0), false, 'still in the window');
    for (let i = 0; i < 10; i++) b.request(t + 10_500);
    assert.equal(b.take(t + 10_500, 10, 0), true, 'the first second left the window');
    assert.equal(b.take(t + 60_000, 10, 0), false, 'an idle minute later nothing is left to take from');
  });
});

describe('Retry-After', () => {
  it('reads delay-seconds and HTTP-dates, case-insensitively, and ignores junk', () => {
    assert.equal(retryAfterMs(['Retry-After', '3']), 3000);
    assert.equal(retryAfterMs([Buffer.from('retry-after'), Buffer.from(' 0 ')]), 0);
    const at = retryAfterMs(['retry-after', new Date(Date.now() + 5000).toUTCString()]);
    assert.ok(at > 3000 && at <= 5000, String(at));
    assert.equal(retryAfterMs(['retry-after', 'soon']), -1);
    assert.equal(retryAfterMs(['content-type', 'text/plain']), -1);
  });
});

describe('retry target', () => {
  const target = (origin: string): RuntimeTarget => ({ origin, hostHeader: origin, poolKey: origin, inFlight: 0, healthSlot: -1, fast: () => {}, general: () => {} });
  it('another target whenever the service has one, with either balancer', () => {
    const targets = [target('a'), target('b'), target('c')];
    for (const pick of [roundRobin(), leastRequest()]) {
      const service = { targets, pick, isUp: () => true } as unknown as RuntimeService;
      for (let i = 0; i < 200; i++) {
        const previous = targets[i % 3];
        previous.inFlight = 0;
        assert.notEqual(pickRetryTarget(service, previous), previous);
      }
    }
    const single = { targets: [targets[0]], pick: roundRobin(), isUp: () => true } as unknown as RuntimeService;
    assert.equal(pickRetryTarget(single, targets[0]), targets[0]);
  });

  it('never a target the health table marks down, and the previous one when no other is up', () => {
    const targets = ['a', 'b', 'c'].map((o, i) => ({ ...target(o), healthSlot: i }));
    const down = new Uint8Array(3);
    down[2] = 1; // c is down
    for (const pick of [healthyRoundRobin(down), healthyLeastRequest(down)]) {
      const service = { targets, pick, isUp: (t: RuntimeTarget) => down[t.healthSlot] === 0 } as unknown as RuntimeService;
      for (let i = 0; i < 200; i++) {
        const previous = targets[i % 2];
        previous.inFlight = 0;
        const chosen = pickRetryTarget(service, previous);
        assert.notEqual(chosen, targets[2], 'a down target');
        assert.notEqual(chosen, previous);
        assert.equal(previous.inFlight, 0, 'the in-flight count is restored');
      }
      down[1] = 1; // only a is up
      assert.equal(pickRetryTarget(service, targets[0]), targets[0]);
      down[1] = 0;
    }
  });
});

describe('retry decision', () => {
  const policy: CompiledRetry = {
    attempts: 3, onConnectFailure: true, onReset: true, onTimeout: true, statuses: [503], grpcCodes: 0, methodMask: methodBit('GET') | methodBit('PUT'),
    backoffBaseMs: 25, backoffMaxMs: 250, budgetPercent: 100, budgetMinRetries: 1000, perTryTimeoutMs: 0,
  };
  function call(method: string, body: RetryCall['body'], tries: number): RetryCall {
    const ctx = new RequestContext(null as never, null as never, 0);
    ctx.method = method;
    ctx.methodBit = methodBit(method);
    return {
      ctx, policy, retryNext: null, budget: new RetryBudget(), tries, relayed: false, body, method,
      idempotent: method !== 'POST', target: null as never, path: '/', headers: [], head: null,
    };
  }

  it('backoff is full jitter within [0, min(max, base·2^n)], and Retry-After is capped at max', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 2 }), fc.integer({ min: -1, max: 100_000 }), (tries, retryAfter) => {
      const delay = retryDelay(call('GET', null, tries), RETRY_REASON.STATUS, retryAfter);
      if (retryAfter >= 0) return delay === Math.min(retryAfter, 250);
      return delay >= 0 && delay <= Math.min(250, 25 * 2 ** (tries - 1));
    }));
  });

  it('refuses: past attempts (URX), a POST that reached the upstream, a streamed body, a relayed response, an unlisted method', () => {
    const last = call('GET', null, 3);
    assert.equal(retryDelay(last, RETRY_REASON.STATUS, -1), -1);
    assert.ok(last.ctx.responseFlags & RESPONSE_FLAG.UPSTREAM_RETRY_LIMIT_EXCEEDED);
    assert.equal(retryDelay(call('POST', Buffer.from('x'), 1), RETRY_REASON.RESET, -1), -1);
    assert.ok(retryDelay(call('POST', Buffer.from('x'), 1), RETRY_REASON.CONNECT_FAILURE, -1) >= 0, 'never reached: safe');
    assert.equal(retryDelay(call('PUT', new Readable({ read() {} }), 1), RETRY_REASON.CONNECT_FAILURE, -1), -1);
    const relayed = call('GET', null, 1);
    relayed.relayed = true;
    assert.equal(retryDelay(relayed, RETRY_REASON.RESET, -1), -1);
    assert.equal(retryDelay(call('DELETE', null, 1), RETRY_REASON.STATUS, -1), -1, 'DELETE is idempotent but not listed');
  });

  it('refuses past the deadline and past the budget (counted)', () => {
    const late = call('GET', null, 1);
    late.ctx.exchangeDeadline = 1; // long passed on the coarse clock
    assert.equal(retryDelay(late, RETRY_REASON.STATUS, 0), -1);
    const poor = call('GET', null, 1);
    poor.budget = new RetryBudget();
    const strict = { ...policy, budgetPercent: 0, budgetMinRetries: 0 };
    (poor as { policy: CompiledRetry }).policy = strict;
    assert.equal(retryDelay(poor, RETRY_REASON.STATUS, -1), -1);
    assert.ok(poor.ctx.retryReasons & RETRY_BUDGET_EXHAUSTED);
    const counted = call('GET', null, 1);
    assert.ok(retryDelay(counted, RETRY_REASON.RESET, -1) >= 0);
    assert.equal(counted.ctx.retries, 1);
    assert.equal((counted.ctx.retryReasons >> (RETRY_REASON.RESET * 4)) & 0xf, 1);
  });
});
