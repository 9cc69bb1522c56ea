// auth-jwt on its own: compiled by the real compiler (HS256 secret, inline verification so
// verdicts are synchronous), built, run against fake contexts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT, type JWTPayload } from 'jose';
import { NEXT, REPLY } from '../../src/data/chain.js';
import { authJwt } from '../../src/filters/auth-jwt/index.js';
import type { RawConfigInput } from '../../src/control/config-schema.js';
import { GW_ERR } from '../../src/shared/errors.js';
import { chainOf, compileError, compiledFilterConfig, fakeContext, testEnv, valuesOf } from './fake-exchange.js';

const SECRET = 'an HS256 secret of 32 bytes, ok!';
const ISSUER = 'https://issuer.test';

const config = (route: Record<string, unknown> = {}, provider: Record<string, unknown> = {}): RawConfigInput => ({
  services: { s: { targets: ['http://127.0.0.1:9'] } },
  auth: {
    providers: [{ name: 'p', issuer: ISSUER, algorithms: ['HS256'], secret: SECRET, claims_to_headers: { sub: 'X-User-Id' }, ...provider }],
    verifier: { mode: 'inline' },
  },
  routes: [{ name: 'r', match: { prefix: '/' }, service: 's', auth: { provider: 'p', ...route } }],
});

const build = (route: Record<string, unknown> = {}) => authJwt.build(compiledFilterConfig(authJwt, config(route), 'r'), testEnv);

function token(claims: JWTPayload, secret = SECRET): Promise<string> {
  return new SignJWT({ iss: ISSUER, exp: Math.floor(Date.now() / 1000) + 600, ...claims })
    .setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
}

const REALM = 'Bearer realm="p"';

test('compile: the route gets auth-jwt with its provider, scopes and the identity headers to strip', () => {
  const raw = config({ scopes: ['read'] });
  assert.deepEqual(chainOf(raw, 'r'), ['auth-jwt']);
  const cfg = compiledFilterConfig(authJwt, raw, 'r');
  assert.equal(cfg.provider!.name, 'p');
  assert.deepEqual(cfg.scopes, ['read']);
  assert.deepEqual(cfg.stripHeaders, ['x-user-id']);
  assert.equal(cfg.runtime.mode, 'inline');
});

test('compile errors name the key path: unknown provider, short secret', () => {
  assert.match(compileError(config({ provider: 'nope' })), /routes\[0\]\.auth\.provider: .*"nope"/);
  assert.match(compileError(config({}, { secret: 'short' })),
    /auth\.providers\[0\]\.secret: is 5 bytes; HS256 needs a secret of at least 32 bytes \(RFC 7518 §3\.2\)/);
});

test('no token: 401 unauthenticated with WWW-Authenticate; on an optional route NEXT', () => {
  const { ctx, replies } = fakeContext({ headers: ['accept', '*/*'] });
  assert.equal(build().onRequest(ctx), REPLY);
  assert.deepEqual(replies[0].spec, GW_ERR.unauthenticated);
  assert.deepEqual(valuesOf(replies[0].headers, 'www-authenticate'),
    [`${REALM}, error="invalid_token", error_description="a bearer token is required"`]);
  const optional = fakeContext();
  assert.equal(build({ optional: true }).onRequest(optional.ctx), NEXT);
  assert.deepEqual(optional.replies, []);
});

test('a valid token: NEXT, a spoofed identity header replaced by the claim', async () => {
  const { ctx, replies } = fakeContext({ headers: ['x-user-id', 'admin', 'authorization', `Bearer ${await token({ sub: 'alice' })}`] });
  assert.equal(build().onRequest(ctx), NEXT);
  assert.deepEqual(replies, []);
  assert.deepEqual(valuesOf(ctx.headers, 'x-user-id'), ['alice']);
});

test('a bad signature: 401 invalid_token saying why', async () => {
  const { ctx, replies } = fakeContext({ headers: ['authorization', `Bearer ${await token({ sub: 'a' }, 'another secret of 32 bytes, ok!!')}`] });
  assert.equal(build().onRequest(ctx), REPLY);
  assert.deepEqual(replies[0].spec, GW_ERR.invalid_token);
  assert.deepEqual(valuesOf(replies[0].headers, 'www-authenticate'),
    [`${REALM}, error="invalid_token", error_description="the signature is invalid"`]);
});

test('missing scope: 403 insufficient_scope listing the route scopes', async () => {
  const { ctx, replies } = fakeContext({ headers: ['authorization', `Bearer ${await token({ sub: 'a', scope: 'read' })}`] });
  assert.equal(build({ scopes: ['read', 'write'] }).onRequest(ctx), REPLY);
  assert.deepEqual(replies[0].spec, GW_ERR.insufficient_scope);
  assert.match(valuesOf(replies[0].headers, 'www-authenticate')[0], /error="insufficient_scope".*scope="read write"$/);
});

test('two Authorization headers: 400 invalid_auth_request', () => {
  const { ctx, replies } = fakeContext({ headers: ['authorization', 'Bearer a', 'authorization', 'Bearer b'] });
  assert.equal(build().onRequest(ctx), REPLY);
  assert.deepEqual(replies[0].spec, GW_ERR.invalid_auth_request);
  assert.equal(replies[0].spec.status, 400);
});

// One-pass error reporting: this filter mends its own section (authJwt.mend), compile.ts only loops.
test('mend: a provider that fails the schema still resolves by name: no echo on the routes naming it', () => {
  const raw = config({}, { algorithms: ['RS999'] });
  raw.routes!.push({ name: 'q', match: { prefix: '/q' }, service: 's', auth: { provider: 'nope' } });
  const lines = compileError(raw).split('\n');
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.match(lines[0], /^test\.yaml auth\.providers\[0\]\.algorithms\[0\]: /);
  assert.match(lines[1], /^test\.yaml routes\[1\]\.auth\.provider: unknown provider "nope"/);

  const copy = structuredClone(raw) as unknown as Record<string, unknown>;
  const suppressed: (string | number)[][] = [];
  assert.equal(authJwt.mend.sections!(copy, [['auth', 'providers', 0, 'algorithms', 0]], (path) => suppressed.push([...path])), true);
  assert.deepEqual((copy.auth as { providers: unknown[] }).providers[0], {
    name: 'p', issuer: '-', algorithms: ['RS256'], jwks_uri: 'http://placeholder.invalid/',
  });
  assert.deepEqual(suppressed, [['auth', 'providers', 0], ['routes', 0, 'auth']]);
});

test('mend: a failed auth section leaves no provider, and no route reports an unknown one', () => {
  const raw = { ...config(), auth: 5 as never };
  raw.routes = [...raw.routes!, { name: 'q', match: { prefix: '/q' }, service: 'nope' }];
  // routes[0] names provider p: no echo; routes[1]'s own mistake is still found in the same pass.
  assert.deepEqual(compileError(raw).split('\n').map((line) => line.replace(/: .*/, '')), ['test.yaml auth', 'test.yaml routes[1].service']);
});
