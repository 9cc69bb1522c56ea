// cors on its own: compiled by the real compiler, built, run against fake contexts; onResponse
// checked against a fake response head (an upstream's headers, a local reply's).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NEXT, REPLY } from '../../src/data/chain.js';
import { compileConfig } from '../../src/control/compile.js';
import { cors } from '../../src/filters/cors/index.js';
import type { CorsFilterConfig } from '../../src/filters/cors/compile.js';
import type { RawConfigInput } from '../../src/control/config-schema.js';
import { chainOf, compileError, compiledFilterConfig, fakeContext, fakeHead, valuesOf } from './fake-exchange.js';

const services = { s: { targets: ['http://127.0.0.1:9'] } };
const config = (policy: Record<string, unknown>, route: Record<string, unknown> = {}): RawConfigInput => ({
  services,
  routes: [{ name: 'r', match: { prefix: '/', methods: ['GET', 'PUT'] }, service: 's', cors: policy as never, ...route }],
});
const APP = 'https://app.example.com';
const policy = {
  allow_origins: [APP, 'https://*.example.org', 'http://127.0.0.1:3000'],
  allow_headers: ['content-type', 'x-trace'],
  expose_headers: ['x-request-cost'],
  allow_credentials: true,
  max_age: 600,
};

function build(p: Record<string, unknown> = policy, route: Record<string, unknown> = {}) {
  return cors.build(compiledFilterConfig(cors, config(p, route), 'r'));
}

function request(headers: string[], method = 'GET') {
  return fakeContext({ headers, method });
}

test('compile: the top-level cors is every route\'s default, a route\'s own replaces it, cors: false turns it off', () => {
  const raw: RawConfigInput = {
    services,
    cors: { allow_origins: [APP] },
    ip_deny: ['192.0.2.0/24'],
    routes: [
      { name: 'default', match: { prefix: '/a' }, service: 's' },
      { name: 'own', match: { prefix: '/b' }, service: 's', cors: { allow_origins: ['*'] } },
      { name: 'off', match: { prefix: '/c' }, service: 's', cors: false },
    ],
  };
  assert.deepEqual(chainOf(raw, 'default'), ['ip-rules', 'cors']);
  assert.deepEqual(chainOf(raw, 'off'), ['ip-rules']);
  assert.deepEqual(compiledFilterConfig(cors, raw, 'default').exact, [APP]);
  assert.equal(compiledFilterConfig(cors, raw, 'own').anyOrigin, true);
  assert.equal(compileConfig(raw, 'test.yaml').corsPreflights, true);
  // No cors anywhere: no runtime flag, so server.ts routes OPTIONS as before.
  assert.equal('corsPreflights' in compileConfig({ services, routes: [{ name: 'x', match: { prefix: '/' }, service: 's' }] }, 'test.yaml'), false);
});

test('compile: header blocks are precomputed; allow_methods defaults to the route\'s methods', () => {
  const cfg = compiledFilterConfig(cors, config(policy), 'r');
  assert.deepEqual(cfg.preflight, [
    'access-control-allow-credentials', 'true',
    'access-control-allow-methods', 'GET, PUT',
    'access-control-allow-headers', 'content-type, x-trace',
    'access-control-max-age', '600',
  ]);
  assert.deepEqual(cfg.actual, ['access-control-allow-credentials', 'true', 'access-control-expose-headers', 'x-request-cost']);
  assert.deepEqual(cfg.wildcards, [{ prefix: 'https://', suffix: '.example.org' }]);
  assert.equal(cfg.varyOrigin, true);
});

test('compile refuses "*" with credentials, bad origins and regexes that could backtrack, naming the key', () => {
  assert.match(compileError(config({ allow_origins: ['*'], allow_credentials: true })), /routes\[0\]\.cors\.allow_origins\[0\]: cannot be "\*" with allow_credentials: true/);
  assert.match(compileError(config({ allow_origins: [APP], allow_headers: ['*'], allow_credentials: true })), /routes\[0\]\.cors\.allow_headers\[0\]: cannot be "\*"/);
  assert.match(compileError(config({ allow_origins: [APP], expose_headers: ['*'], allow_credentials: true })), /cors\.expose_headers\[0\]: cannot be "\*"/);
  assert.match(compileError(config({ allow_origins: ['*', APP] })), /allow_origins\[0\]: "\*" allows every origin/);
  assert.match(compileError(config({ allow_origins: [] })), /cors\.allow_origins: must list at least one origin/);
  assert.match(compileError(config({ allow_origins: ['null'] })), /allow_origins\[0\]: the "null" origin cannot be allowed/);
  assert.match(compileError(config({ allow_origins: ['https://app.*.com'] })), /a wildcard must be the whole first label/);
  assert.match(compileError(config({ allow_origins: ['https://app.example.com/'] })), /an origin has no path/);
  assert.match(compileError(config({ allow_origins: ['app.example.com'] })), /must be an origin like/);
  assert.match(compileError(config({ allow_origin_regex: ['https://(a+)+\\.test'] })), /allow_origin_regex\[0\]: a quantifier on a group is not allowed/);
  assert.match(compileError(config({ allow_origin_regex: ['https://(a)\\1'] })), /backreferences are not allowed/);
  assert.match(compileError(config({ allow_origin_regex: ['https://(?=a).*'] })), /lookahead and lookbehind/);
  assert.match(compileError(config({ allow_origin_regex: ['https://a*b*c*'] })), /at most 2 unbounded quantifiers/);
  assert.match(compileError(config({ allow_origin_regex: ['https://[a-'] })), /is not a valid regular expression/);
  assert.match(compileError({ services, cors: { allow_origins: [APP], allow_credentials: true, allow_methods: ['*'] } }), /^.*cors\.allow_methods\[0\]: cannot be "\*"/m);
  assert.match(compileError(config({ allow_origins: [APP], max_age: -1 })), /cors\.max_age: must be at least 0/);
  // routes[].cors is a mapping or false: a wrong type says which.
  assert.match(compileError(config('yes' as never)), /routes\[0\]\.cors: must be a mapping of CORS settings, or false for none/);
  assert.match(compileError(config({ allow_origins: [APP], max_age: 'long' })), /routes\[0\]\.cors: max_age: expected a number, got the string "long"/);
});

test('an allowed origin: NEXT, and onResponse replaces the upstream\'s CORS headers with the route\'s', () => {
  const filter = build();
  const { ctx, replies } = request(['origin', APP]);
  assert.equal(filter.onRequest(ctx), NEXT);
  assert.deepEqual(replies, []);
  assert.equal(ctx.corsOrigin, APP);
  const head = fakeHead(200, ['content-type', 'text/plain', 'Access-Control-Allow-Origin', '*', 'access-control-allow-methods', 'DELETE', 'vary', 'Accept']);
  filter.onResponse!(ctx, head);
  assert.deepEqual(valuesOf(head.headers, 'access-control-allow-origin'), [APP]);
  assert.deepEqual(valuesOf(head.headers, 'access-control-allow-credentials'), ['true']);
  assert.deepEqual(valuesOf(head.headers, 'access-control-expose-headers'), ['x-request-cost']);
  assert.deepEqual(valuesOf(head.headers, 'access-control-allow-methods'), []);
  assert.deepEqual(valuesOf(head.headers, 'vary'), ['Accept', 'Origin']);
});

test('a local reply (a 401 from auth) gets the same headers: onResponse does not depend on the upstream', () => {
  const filter = build();
  const { ctx } = request(['origin', APP]);
  filter.onRequest(ctx);
  const head = fakeHead(401, ['content-type', 'application/json', 'www-authenticate', 'Bearer realm="x"']);
  filter.onResponse!(ctx, head);
  assert.deepEqual(valuesOf(head.headers, 'access-control-allow-origin'), [APP]);
  assert.deepEqual(valuesOf(head.headers, 'www-authenticate'), ['Bearer realm="x"']);
});

test('an origin outside the list, or none: handled as usual, no CORS header at all (the upstream\'s removed), Vary: Origin', () => {
  const filter = build();
  for (const headers of [['origin', 'https://evil.example'], [], ['origin', APP, 'origin', 'https://evil.example']]) {
    const { ctx, replies } = request(headers);
    assert.equal(filter.onRequest(ctx), NEXT);
    assert.deepEqual(replies, []);
    assert.equal(ctx.corsOrigin, '');
    const head = fakeHead(200, ['access-control-allow-origin', '*', 'access-control-allow-credentials', 'true', 'access-control-expose-headers', 'x-secret', 'x-a', '1']);
    filter.onResponse!(ctx, head);
    assert.deepEqual(head.headers, ['x-a', '1', 'vary', 'Origin']);
  }
});

test('wildcard origins compile to prefix/suffix checks on whole labels, same scheme and port', () => {
  const filter = build();
  const allowed = (origin: string) => {
    const { ctx } = request(['origin', origin]);
    filter.onRequest(ctx);
    return ctx.corsOrigin === origin;
  };
  assert.equal(allowed('https://a.example.org'), true);
  assert.equal(allowed('https://a.b-c.example.org'), true);
  assert.equal(allowed('http://127.0.0.1:3000'), true);
  for (const origin of ['https://example.org', 'https://aexample.org', 'http://a.example.org', 'https://a.example.org:8443',
    'https://.example.org', 'https://a..example.org', 'https://a_b.example.org', 'https://a.example.org.evil.com', 'https://APP.example.com',
    'http://127.0.0.1:30000']) {
    assert.equal(allowed(origin), false, origin);
  }
});

test('regex origins are anchored; "*" answers "*" without Vary', () => {
  const re = build({ allow_origin_regex: ['https://[a-z0-9]+\\.preview\\.example\\.net'] });
  const { ctx } = request(['origin', 'https://pr42.preview.example.net']);
  re.onRequest(ctx);
  assert.equal(ctx.corsOrigin, 'https://pr42.preview.example.net');
  const other = request(['origin', 'https://pr42.preview.example.net.evil.com']).ctx;
  re.onRequest(other);
  assert.equal(other.corsOrigin, '');

  const any = build({ allow_origins: ['*'], expose_headers: ['*'] });
  const star = request(['origin', 'https://anyone.test']).ctx;
  any.onRequest(star);
  assert.equal(star.corsOrigin, '*');
  const head = fakeHead(200, []);
  any.onResponse!(star, head);
  assert.deepEqual(head.headers, ['access-control-allow-origin', '*', 'access-control-expose-headers', '*']);
});

test('a preflight is answered 204 by the filter (allowed or not) and never goes on; its headers come from onResponse', () => {
  const filter = build();
  const { ctx, replies } = request(['origin', APP, 'access-control-request-method', 'PUT', 'access-control-request-headers', 'content-type'], 'OPTIONS');
  assert.equal(filter.onRequest(ctx), REPLY);
  assert.equal(replies.length, 1);
  assert.equal(replies[0].spec.status, 204);
  assert.equal(ctx.corsPreflight, true);
  const head = fakeHead(204, []);
  filter.onResponse!(ctx, head);
  assert.deepEqual(head.headers, [
    'vary', 'Origin',
    'access-control-allow-origin', APP,
    'access-control-allow-credentials', 'true',
    'access-control-allow-methods', 'GET, PUT',
    'access-control-allow-headers', 'content-type, x-trace',
    'access-control-max-age', '600',
  ]);

  const refused = request(['origin', 'https://evil.example', 'access-control-request-method', 'PUT'], 'OPTIONS');
  assert.equal(filter.onRequest(refused.ctx), REPLY);
  assert.equal(refused.replies[0].spec.status, 204);
  const bare = fakeHead(204, []);
  filter.onResponse!(refused.ctx, bare);
  assert.deepEqual(bare.headers, ['vary', 'Origin']);

  // OPTIONS without Access-Control-Request-Method is not a preflight: it goes on.
  const plain = request(['origin', APP], 'OPTIONS');
  assert.equal(filter.onRequest(plain.ctx), NEXT);
});

test('config/examples/cors.yaml loads and passes lobby check (so it never rots)', async () => {
  const { fileURLToPath } = await import('node:url');
  const { loadConfigFile } = await import('../../src/control/config-load.js');
  const { runCheck } = await import('../../src/control/check.js');
  const file = fileURLToPath(new URL('../../../config/examples/cors.yaml', import.meta.url));
  const loaded = await loadConfigFile(file);
  assert.deepEqual(loaded.routes.map((r) => r.filters.map((f) => f.name)), [['ip-rules', 'cors'], ['ip-rules', 'cors'], ['ip-rules']]);
  const orders = loaded.routes[0].filters[1].config as CorsFilterConfig;
  assert.deepEqual(orders.preflight.slice(2, 4), ['access-control-allow-methods', 'GET, POST, PUT, DELETE']);
  const sink = { text: '', write(t: string) { this.text += t; return true; } };
  assert.equal(await runCheck(file, sink, sink), 0, sink.text);
});
