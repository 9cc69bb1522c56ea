// identity-strip on its own: compiled from the `auth` section, built, run against a fake context.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NEXT } from '../../src/data/chain.js';
import { identityStrip } from '../../src/filters/identity-strip/index.js';
import type { RawConfigInput } from '../../src/control/config-schema.js';
import { chainOf, compiledFilterConfig, fakeContext, testEnv } from './fake-exchange.js';

const SECRET = 'x'.repeat(32);
const config = (claims: Record<string, string>): RawConfigInput => ({
  services: { s: { targets: ['http://127.0.0.1:9'] } },
  auth: { providers: [{ name: 'p', issuer: 'i', algorithms: ['HS256'], secret: SECRET, claims_to_headers: claims }] },
  routes: [
    { name: 'open', match: { prefix: '/open' }, service: 's' },
    { name: 'closed', match: { prefix: '/closed' }, service: 's', auth: { provider: 'p' } },
  ],
});

test('compile: on routes without auth only, with every provider identity header (lower case, sorted)', () => {
  const raw = config({ sub: 'X-User-Id', tenant: 'X-Tenant' });
  assert.deepEqual(chainOf(raw, 'open'), ['identity-strip']);
  assert.deepEqual(chainOf(raw, 'closed'), ['auth-jwt']);
  assert.deepEqual(compiledFilterConfig(identityStrip, raw, 'open'), { stripHeaders: ['x-tenant', 'x-user-id'] });
});

test('compile: no identity headers injected, no filter', () => {
  assert.deepEqual(chainOf(config({}), 'open'), []);
});

test('onRequest removes every copy of each identity header and keeps the rest: NEXT, no reply', () => {
  const filter = identityStrip.build(compiledFilterConfig(identityStrip, config({ sub: 'X-User-Id' }), 'open'), testEnv);
  const { ctx, replies } = fakeContext({ headers: ['accept', '*/*', 'x-user-id', 'admin', 'x-other', '1', 'x-user-id', 'root'] });
  assert.equal(filter.onRequest(ctx), NEXT);
  assert.deepEqual(ctx.headers, ['accept', '*/*', 'x-other', '1']);
  assert.deepEqual(replies, []);
  assert.equal(filter.onResponse, undefined);
});
