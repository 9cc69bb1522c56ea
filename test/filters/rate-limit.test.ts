// rate-limit on its own: compiled by the real compiler, built on a private bucket table, run
// against fake contexts; onResponse checked against a fake response head.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NEXT, REPLY } from '../../src/data/chain.js';
import { compileConfig } from '../../src/control/compile.js';
import { rateLimit } from '../../src/filters/rate-limit/index.js';
import type { RawConfigInput } from '../../src/control/config-schema.js';
import { GW_ERR } from '../../src/shared/errors.js';
import { chainOf, compileError, compiledFilterConfig, fakeContext, fakeHead, testEnv, valuesOf } from './fake-exchange.js';

// Unique limit names per test: the private bucket table is shared by the whole file.
const config = (limitName: string, limit: Record<string, unknown>, route: Record<string, unknown> = {}): RawConfigInput => ({
  services: { s: { targets: ['http://127.0.0.1:9'] } },
  rate_limits: { [limitName]: limit as never },
  routes: [{ name: 'r', match: { prefix: '/' }, service: 's', rate_limit: [limitName], ...route }],
});

function build(limitName: string, limit: Record<string, unknown>) {
  return rateLimit.build(compiledFilterConfig(rateLimit, config(limitName, limit), 'r'), testEnv);
}

test('compile: the route chain, the filter config and the instance runtime (CompiledConfig.rateLimit)', () => {
  const raw = config('per-ip', { key: 'ip', rate: 10, per: '1s', burst: 20 });
  assert.deepEqual(chainOf(raw, 'r'), ['rate-limit']);
  const cfg = compiledFilterConfig(rateLimit, raw, 'r');
  assert.equal(cfg.limits.length, 1);
  assert.equal(cfg.limits[0].policy, '"per-ip";q=20;w=2');
  assert.deepEqual(cfg.limits[0].key, { kind: 'ip' });
  const compiled = compileConfig(raw, 'test.yaml');
  assert.equal(compiled.rateLimit?.limits.length, 1);
  assert.equal(compiled.rateLimit?.sync, null);
  // Nothing rate limited: no instance runtime at all (configs compile as before).
  assert.equal('rateLimit' in compileConfig({ services: { s: { targets: ['http://127.0.0.1:9'] } } }, 'test.yaml'), false);
});

test('compile refuses a header key the gateway itself handles (it would be one bucket for every client)', () => {
  for (const header of ['X-Forwarded-For', 'host', 'x-correlation-id', 'content-length']) {
    assert.match(compileError(config('a', { key: `header:${header}`, rate: 1 })), /rate_limits\.a\.key: header:\S+ cannot be a key: the gateway handles that header itself/i);
  }
});

test('compile errors name the key path: unknown limit, claim key without auth', () => {
  const unknown = compileError(config('a', { key: 'ip', rate: 1 }, { rate_limit: ['b'] }));
  assert.match(unknown, /routes\[0\]\.rate_limit\[0\].*"b"/);
  const claim = compileError(config('per-user', { key: 'claim:sub', rate: 1 }));
  assert.match(claim, /routes\[0\]\.rate_limit\[0\]: limit "per-user" is keyed by claim:sub, but the route has no auth to take the claim from/);
});

test('admitted: NEXT, context fields set, and onResponse sets them over the upstream\'s own', () => {
  const filter = build('adm', { key: 'ip', rate: 5, per: '1m' });
  const { ctx, replies } = fakeContext();
  assert.equal(filter.onRequest(ctx), NEXT);
  assert.deepEqual(replies, []);
  assert.equal(ctx.rateLimit, '"adm";r=4;t=12');
  assert.equal(ctx.rateLimitLimit, '5');
  assert.equal(ctx.rateLimitRemaining, '4');
  assert.equal(ctx.rateLimitReset, '12');

  const head = fakeHead(200, ['content-type', 'text/plain', 'RateLimit', 'upstream-value', 'x-ratelimit-remaining', '999']);
  filter.onResponse!(ctx, head);
  assert.deepEqual(head.headers, [
    'content-type', 'text/plain',
    'ratelimit-policy', '"adm";q=5;w=60',
    'ratelimit', '"adm";r=4;t=12',
    'x-ratelimit-limit', '5',
    'x-ratelimit-remaining', '4',
    'x-ratelimit-reset', '12',
  ]);
});

test('refused in enforce mode: REPLY 429 rate_limited with Retry-After; onResponse (on the local reply) says 0 remaining', () => {
  const filter = build('enf', { key: 'ip', rate: 1, per: '1m' });
  assert.equal(filter.onRequest(fakeContext().ctx), NEXT);
  const { ctx, replies } = fakeContext();
  assert.equal(filter.onRequest(ctx), REPLY);
  assert.equal(replies.length, 1);
  assert.deepEqual(replies[0].spec, GW_ERR.rate_limited);
  assert.equal(replies[0].spec.status, 429);
  assert.deepEqual(valuesOf(replies[0].headers, 'retry-after'), ['60']);
  const head = fakeHead(429);
  filter.onResponse!(ctx, head);
  assert.deepEqual(valuesOf(head.headers, 'x-ratelimit-remaining'), ['0']);
  assert.deepEqual(valuesOf(head.headers, 'ratelimit'), ['"enf";r=0;t=60']);
});

test('report mode: over the limit is admitted (NEXT), no reply', () => {
  const filter = build('rep', { key: 'ip', rate: 1, per: '1m', mode: 'report' });
  assert.equal(filter.onRequest(fakeContext().ctx), NEXT);
  const { ctx, replies } = fakeContext();
  assert.equal(filter.onRequest(ctx), NEXT);
  assert.deepEqual(replies, []);
});

test('a configured status is the refusal status, with the rate_limited code and message', () => {
  const filter = build('st', { key: 'ip', rate: 1, per: '1m', status: 503 });
  filter.onRequest(fakeContext().ctx);
  const { ctx, replies } = fakeContext();
  assert.equal(filter.onRequest(ctx), REPLY);
  assert.deepEqual(replies[0].spec, { status: 503, code: 'rate_limited', message: GW_ERR.rate_limited.message });
});

test('a header key sent twice: 400 invalid_rate_limit_key naming the header; onResponse sets nothing', () => {
  const filter = build('hdr', { key: 'header:X-Api-Key', rate: 10 });
  const { ctx, replies } = fakeContext({ headers: ['x-api-key', 'a', 'x-api-key', 'b'] });
  assert.equal(filter.onRequest(ctx), REPLY);
  assert.equal(replies[0].spec.status, 400);
  assert.equal(replies[0].spec.code, 'invalid_rate_limit_key');
  assert.equal(replies[0].spec.message, 'The request carries more than one x-api-key header; it is a rate-limit key and must appear once.');
  const head = fakeHead(400);
  filter.onResponse!(ctx, head);
  assert.deepEqual(head.headers, []);
});

test('keys are separate buckets: another client IP is admitted when one is refused', () => {
  const filter = build('sep', { key: 'ip', rate: 1, per: '1m' });
  assert.equal(filter.onRequest(fakeContext({ clientIp: '192.0.2.1' }).ctx), NEXT);
  assert.equal(filter.onRequest(fakeContext({ clientIp: '192.0.2.1' }).ctx), REPLY);
  assert.equal(filter.onRequest(fakeContext({ clientIp: '192.0.2.2' }).ctx), NEXT);
});

// One-pass error reporting: this filter mends its own section (rateLimit.mend), compile.ts only loops.
const mendConfig = (): RawConfigInput => ({
  services: { s: { targets: ['http://127.0.0.1:9'] } },
  rate_limits: { broken: { key: 'ip', rate: 0 }, by_sub: { key: 'claim:sub', rate: 5 } } as never,
  routes: [
    { name: 'a', match: { prefix: '/a' }, service: 's', rate_limit: ['broken'] },
    { name: 'b', match: { prefix: '/b' }, service: 's', rate_limit: ['by_sub'] },
    // auth fails the schema: the claim limit's "no auth" would be an echo of it.
    { name: 'c', match: { prefix: '/c' }, service: 's', auth: { provider: 7 } as never, rate_limit: ['by_sub'] },
  ],
});

test('mend: a failed limit still resolves for routes naming it, and rate_limit is suppressed with a failed auth', () => {
  assert.deepEqual(compileError(mendConfig()).split('\n'), [
    'test.yaml routes[2].auth.provider: expected a string, got 7',
    'test.yaml rate_limits.broken.rate: must be greater than 0',
    // The one real reference mistake: a claim limit on a route without auth.
    'test.yaml routes[1].rate_limit[0]: limit "by_sub" is keyed by claim:sub, but the route has no auth to take the claim from',
  ]);
});

test('mend: the placeholder and the suppressed references come from the filter itself', () => {
  const copy = structuredClone(mendConfig()) as unknown as Record<string, unknown>;
  const suppressed: (string | number)[][] = [];
  assert.equal(rateLimit.mend.sections!(copy, [['rate_limits', 'broken', 'rate']], (path) => suppressed.push([...path])), true);
  assert.deepEqual((copy.rate_limits as Record<string, unknown>).broken, { key: 'ip', rate: 1 });
  assert.deepEqual(suppressed, [['rate_limits', 'broken'], ['routes', 0, 'rate_limit', 0]]);
  assert.deepEqual(rateLimit.mend.routeKeyReads, { rate_limit: ['auth'] });

  // Without the filter's mend, compile.ts cannot mend the section: only the schema's issues.
  const mend = rateLimit.mend;
  delete (rateLimit as { mend?: unknown }).mend;
  try {
    assert.deepEqual(compileError(mendConfig()).split('\n'), [
      'test.yaml routes[2].auth.provider: expected a string, got 7',
      'test.yaml rate_limits.broken.rate: must be greater than 0',
    ]);
  } finally {
    Object.assign(rateLimit, { mend });
  }
});
