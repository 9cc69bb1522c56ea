// The identity headers (src/filters/identity-headers.ts): one list, which every filter that
// keeps a client's copies away from an upstream reads. For random configs (claims_to_headers
// and consumer headers in any case, repeated across providers and consumers), each such filter
// compiles the same list, and on every kind of route a request carrying every one of them
// leaves the authn filters without any of the client's copies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NEXT, type FilterFactory, type WorkerEnv } from '../../src/data/chain.js';
import { compileConfig } from '../../src/control/compile.js';
import type { RawConfigInput } from '../../src/control/config-schema.js';
import { identityStrip } from '../../src/filters/identity-strip/index.js';
import { authJwt } from '../../src/filters/auth-jwt/index.js';
import { keyAuth } from '../../src/filters/key-auth/index.js';
import { extAuthz } from '../../src/filters/ext-authz/index.js';
import { keyHashText } from '../../src/filters/key-auth/schema.js';
import type { AuthJwtFilterConfig } from '../../src/shared/auth-config.js';
import type { KeyAuthFilterConfig } from '../../src/shared/consumer-config.js';
import type { ExtAuthzFilterConfig } from '../../src/filters/ext-authz/config.js';
import { compiledFilterConfig, fakeContext } from './fake-exchange.js';

const KEY = 'identity-test-key-0123456789';

/** A header name in random case: `X-<prefix>-<word>`. */
const headerName = (prefix: string) => fc.tuple(fc.stringMatching(/^[a-z]{1,6}$/), fc.boolean())
  .map(([word, upper]) => `x-${prefix}-${upper ? word.toUpperCase() : word}`);

const configs = fc.record({
  // Claim headers and consumer headers are apart: a consumer may not name a claim header (compile.ts).
  providers: fc.array(fc.uniqueArray(headerName('c'), { minLength: 1, maxLength: 3, selector: (h) => h.toLowerCase() }), { minLength: 1, maxLength: 3 }),
  consumers: fc.array(fc.uniqueArray(headerName('k'), { minLength: 1, maxLength: 3, selector: (h) => h.toLowerCase() }), { minLength: 1, maxLength: 3 }),
}).map(({ providers, consumers }): RawConfigInput => ({
  services: { s: { targets: ['http://127.0.0.1:9'] } },
  auth: {
    providers: providers.map((headers, i) => ({
      name: `p${i}`, issuer: 'i', algorithms: ['HS256'], secret: 's'.repeat(32),
      claims_to_headers: Object.fromEntries(headers.map((h, j) => [`claim${j}`, h])),
    })),
  },
  consumers: consumers.map((headers, i) => ({
    name: `c${i}`,
    headers: Object.fromEntries(headers.map((h) => [h, `v${i}`])),
    keys: i === 0 ? [{ id: 'k', hash: keyHashText(KEY) }] : [],
  })),
  ext_authz: { services: [{ name: 'policy', url: 'http://127.0.0.1:9' }] },
  routes: [
    { name: 'open', match: { prefix: '/open' }, service: 's' },
    { name: 'jwt', match: { prefix: '/jwt' }, service: 's', auth: { provider: 'p0' }, ext_authz: { service: 'policy' } },
    { name: 'key', match: { prefix: '/key' }, service: 's', key_auth: {} },
    { name: 'both', match: { prefix: '/both' }, service: 's', auth: { provider: 'p0' }, key_auth: {} },
  ],
}));

/** What the list must be: every name, lower case, once, sorted. */
function expected(raw: RawConfigInput): string[] {
  const names = new Set<string>();
  for (const p of raw.auth!.providers!) for (const h of Object.values(p.claims_to_headers as Record<string, string>)) names.add(h.toLowerCase());
  for (const c of raw.consumers!) for (const h of Object.keys(c.headers ?? {})) names.add(h.toLowerCase());
  return [...names].sort();
}

test('every filter that strips identity headers compiles the one list', () => {
  fc.assert(fc.property(configs, (raw) => {
    const all = expected(raw);
    const consumerOnly = [...new Set(raw.consumers!.flatMap((c) => Object.keys(c.headers ?? {}).map((h) => h.toLowerCase())))].sort();
    const of = <C>(f: FilterFactory<C, never>, route: string) => compiledFilterConfig<C>(f, raw, route);
    assert.deepEqual(of<{ stripHeaders: string[] }>(identityStrip, 'open').stripHeaders, all);
    assert.deepEqual(of<AuthJwtFilterConfig>(authJwt, 'jwt').stripHeaders, all);
    assert.deepEqual(of<KeyAuthFilterConfig>(keyAuth, 'key').stripHeaders, all);
    assert.deepEqual(of<ExtAuthzFilterConfig>(extAuthz, 'jwt').service.identityHeaders, all);
    // With auth too, auth-jwt (first) strips them all; key-auth must leave the token's claims alone.
    assert.deepEqual(of<AuthJwtFilterConfig>(authJwt, 'both').stripHeaders, all);
    assert.deepEqual(of<KeyAuthFilterConfig>(keyAuth, 'both').stripHeaders, consumerOnly);
  }), { numRuns: 40 });
});

test('no client copy of an identity header leaves the authn filters, on a route with or without authentication', () => {
  fc.assert(fc.property(configs, (raw) => {
    const env: WorkerEnv = { workerIndex: 0, post: () => undefined, runtimes: compileConfig(raw, 'test.yaml') };
    const spoofed = expected(raw).flatMap((h) => [h, 'spoofed']);
    for (const [factory, route] of [[identityStrip, 'open'], [keyAuth, 'key']] as const) {
      const filter = (factory as FilterFactory<unknown, never>).build(compiledFilterConfig(factory as FilterFactory<unknown, never>, raw, route), env);
      const { ctx } = fakeContext({ headers: ['accept', '*/*', ...spoofed, 'x-api-key', KEY, ...spoofed] });
      assert.equal(filter.onRequest(ctx), NEXT);
      assert.ok(!ctx.headers.includes('spoofed'), `${route}: ${JSON.stringify(ctx.headers)}`);
      assert.equal(ctx.headers[0], 'accept');
    }
  }), { numRuns: 25 });
});
