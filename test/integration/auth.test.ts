// End to end: JWT authentication and authorization in a real Lobby process, against a real
// JWKS HTTP server and keys generated here (tokens signed with jose, an implementation
// independent of Lobby's verifier). Rejections and WWW-Authenticate, scopes, identity
// headers and anti-spoofing, JWKS rotation / unknown-kid flood / provider down, cache
// expiry at exp, and the verification pool's bounds.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { rawRequest } from '../helpers/raw-http.js';
import { makeKey, rawToken, sign, startJwksServer, unsignedToken, type JwksServer, type TestKey } from '../helpers/jwt.js';

const ISSUER = 'https://auth.example.test';
const HMAC_SECRET = 'test-secret-of-at-least-thirty-two-bytes!';
const COOLDOWN_S = 1;

let up: Upstream;
let jwks: JwksServer;
let gw: Gateway;
let dir: string;
const keys: Record<string, TestKey> = {};
let fixedKey: TestKey;
let hmacKey: TestKey;

interface Echo { url: string; headers: Record<string, string | undefined> }

async function get(path: string, headers: Record<string, string | string[]> = {}, base = gw) {
  const res = await request(base.url + path, { headers });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
}

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

const now = () => Math.floor(Date.now() / 1000);
const valid = (extra: Record<string, unknown> = {}) => ({
  iss: ISSUER, aud: 'api', sub: 'user-1', scope: 'users:read profile', tenant: 't-9', exp: now() + 600, ...extra,
});

/** Asserts a 401 invalid_token answer whose error_description matches `description`. */
function assertInvalid(r: Awaited<ReturnType<typeof get>>, description: RegExp, realm = 'main'): void {
  assert.equal(r.status, 401, r.text);
  const www = String(r.headers['www-authenticate']);
  assert.match(www, new RegExp(`^Bearer realm="${realm}", error="invalid_token", error_description="[^"\\\\\r\n]*"$`));
  assert.match(www, description);
  const body = r.json();
  assert.equal(body.error.code, 'invalid_token');
  assert.equal(body.error.correlation_id, r.headers['x-correlation-id']);
}

before(async () => {
  for (const alg of ['RS256', 'ES256', 'PS256', 'EdDSA', 'ES384', 'RS512']) keys[alg] = await makeKey(alg, `k-${alg}`);
  fixedKey = await makeKey('RS256', 'fixed-1');
  hmacKey = { alg: 'HS256', kid: 'h', signing: new TextEncoder().encode(HMAC_SECRET), jwk: { kty: 'oct' } };
  up = await startUpstream('users');
  jwks = await startJwksServer(Object.values(keys).map((k) => k.jwk));
  dir = await mkdtemp(join(tmpdir(), 'lobby-auth-'));
  const keysFile = join(dir, 'fixed.jwks.json');
  await writeFile(keysFile, JSON.stringify({ keys: [fixedKey.jwk] }));
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2 }
services: { users: { targets: ["${up.origin}"] } }
auth:
  providers:
    - name: main
      issuer: ${ISSUER}
      audiences: [api]
      jwks_uri: ${jwks.url}
      algorithms: [RS256, ES256, PS256, EdDSA, ES384]
      clock_skew_s: 30
      claims_to_headers: { sub: X-User-Id, scope: X-User-Scopes, tenant: X-Tenant-Id }
      jwks_cache: { min_ttl_s: 1, default_ttl_s: 300, max_ttl_s: 600, refetch_cooldown_s: ${COOLDOWN_S}, fetch_timeout_ms: 1000 }
    - name: hmac
      issuer: hmac-issuer
      secret: "${HMAC_SECRET}"
      algorithms: [HS256]
      from_cookie: session
      from_query: access_token
      forward_token: false
      claims_to_headers: { sub: X-Hmac-User }
    - name: fixed
      issuer: ${ISSUER}
      keys_file: ${keysFile}
      algorithms: [RS256]
      clock_skew_s: 0
      claims_to_headers: { sub: X-User-Id }
routes:
  - { name: users, match: { prefix: /v1/users }, service: users, auth: { provider: main, scopes: ["users:read"] } }
  - { name: admin, match: { prefix: /admin }, service: users, auth: { provider: main, scopes: [admin, "users:write"] } }
  - { name: maybe, match: { prefix: /maybe }, service: users, auth: { provider: main, optional: true } }
  - { name: hmac, match: { prefix: /hmac }, service: users, auth: { provider: hmac } }
  - { name: fixed, match: { prefix: /fixed }, service: users, auth: { provider: fixed } }
  - { name: public, match: { prefix: /public }, service: users }
`);
});

after(async () => {
  await gw?.stop();
  await Promise.all([up?.close(), jwks?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('valid tokens', () => {
  it('accepts an RS256 token from the JWKS and forwards the identity headers', async () => {
    const token = await sign(keys.RS256, valid());
    const r = await get('/v1/users/42', bearer(token));
    assert.equal(r.status, 200, r.text);
    const echo = r.json() as Echo;
    assert.equal(echo.headers['x-user-id'], 'user-1');
    assert.equal(echo.headers['x-user-scopes'], 'users:read profile');
    assert.equal(echo.headers['x-tenant-id'], 't-9');
    assert.equal(echo.headers.authorization, `Bearer ${token}`, 'forward_token defaults to true');
    // A repeated token is served from the cache, same result.
    const again = await get('/v1/users/42', bearer(token));
    assert.equal((again.json() as Echo).headers['x-user-id'], 'user-1');
  });

  for (const alg of ['ES256', 'PS256', 'EdDSA', 'ES384']) {
    it(`accepts ${alg}`, async () => {
      const r = await get('/v1/users/1', bearer(await sign(keys[alg], valid({ sub: `u-${alg}` }))));
      assert.equal(r.status, 200, r.text);
      assert.equal((r.json() as Echo).headers['x-user-id'], `u-${alg}`);
    });
  }

  it('accepts HS256 with a secret, from the header, a cookie or a query parameter', async () => {
    const token = await sign(hmacKey, { iss: 'hmac-issuer', sub: 'h-user', exp: now() + 60 }, { header: { kid: null } });
    for (const headers of [bearer(token), { cookie: `a=1; session=${token}; b=2` }]) {
      const r = await get('/hmac/x', headers);
      assert.equal(r.status, 200, r.text);
      const echo = r.json() as Echo;
      assert.equal(echo.headers['x-hmac-user'], 'h-user');
      assert.equal(echo.headers.authorization, undefined, 'forward_token: false removes Authorization');
    }
    const q = await get(`/hmac/x?access_token=${token}&y=1`);
    assert.equal(q.status, 200, q.text);
    assert.equal((q.json() as Echo).headers['x-hmac-user'], 'h-user');
  });

  it('accepts a token from keys_file', async () => {
    const r = await get('/fixed/1', bearer(await sign(fixedKey, valid({ sub: 'fixed-user' }))));
    assert.equal(r.status, 200, r.text);
    assert.equal((r.json() as Echo).headers['x-user-id'], 'fixed-user');
  });

  it('applies the clock skew to exp and nbf', async () => {
    const late = await get('/v1/users/1', bearer(await sign(keys.RS256, valid({ exp: now() - 10 }))));
    assert.equal(late.status, 200, 'expired 10 s ago is within the 30 s skew');
    const early = await get('/v1/users/1', bearer(await sign(keys.RS256, valid({ nbf: now() + 10 }))));
    assert.equal(early.status, 200, 'valid in 10 s is within the 30 s skew');
  });
});

const MISSING = 'Bearer realm="main", error="invalid_token", error_description="a bearer token is required"';

describe('rejections', () => {
  it('401 without a token, WWW-Authenticate with error="invalid_token"', async () => {
    const r = await get('/v1/users/1', { 'x-correlation-id': 'corr-1' });
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], MISSING);
    assert.deepEqual(r.json(), { error: { status: 401, code: 'unauthenticated', message: 'A bearer token is required.', correlation_id: 'corr-1' } });
    const basic = await get('/v1/users/1', { authorization: 'Basic dXNlcjpwYXNz' });
    assert.equal(basic.status, 401);
    assert.equal(basic.headers['www-authenticate'], MISSING);
  });

  it('alg none', async () => {
    assertInvalid(await get('/v1/users/1', bearer(unsignedToken(valid()))), /algorithm is not allowed/);
    // Also with an empty-looking signature segment and a kid of a real key.
    const forged = rawToken({ alg: 'none', kid: keys.RS256.kid }, valid(), '');
    assertInvalid(await get('/v1/users/1', bearer(forged + 'AA')), /algorithm is not allowed/);
  });

  it('an algorithm outside the allowlist, even with a key that could verify it', async () => {
    assertInvalid(await get('/v1/users/1', bearer(await sign(keys.RS512, valid()))), /algorithm is not allowed/);
  });

  it('algorithm confusion: HS256 signed with the RSA public key as the secret', async () => {
    const { createPublicKey } = await import('node:crypto');
    const pem = createPublicKey({ key: keys.RS256.jwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    const confused: TestKey = { alg: 'HS256', kid: keys.RS256.kid, signing: new TextEncoder().encode(String(pem)), jwk: { kty: 'oct' } };
    assertInvalid(await get('/v1/users/1', bearer(await sign(confused, valid()))), /algorithm is not allowed/);
    const jwkBytes: TestKey = { ...confused, signing: new TextEncoder().encode(JSON.stringify(keys.RS256.jwk)) };
    assertInvalid(await get('/v1/users/1', bearer(await sign(jwkBytes, valid()))), /algorithm is not allowed/);
  });

  it('a bad signature (tampered payload, or signed by another key under a known kid)', async () => {
    const token = await sign(keys.RS256, valid());
    const [h, , s] = token.split('.');
    const tampered = `${h}.${Buffer.from(JSON.stringify(valid({ sub: 'admin' }))).toString('base64url')}.${s}`;
    assertInvalid(await get('/v1/users/1', bearer(tampered)), /signature is invalid/);
    const impostor = await makeKey('RS256', keys.RS256.kid);
    assertInvalid(await get('/v1/users/1', bearer(await sign(impostor, valid()))), /signature is invalid/);
  });

  it('wrong issuer, wrong audience', async () => {
    assertInvalid(await get('/v1/users/1', bearer(await sign(keys.ES256, valid({ iss: 'https://evil.test' })))), /issuer/);
    assertInvalid(await get('/v1/users/1', bearer(await sign(keys.ES256, valid({ aud: 'other' })))), /audience/);
    const multi = await get('/v1/users/1', bearer(await sign(keys.ES256, valid({ aud: ['other', 'api'] }))));
    assert.equal(multi.status, 200, 'one matching audience in a list is enough');
  });

  it('expired and not-yet-valid beyond the skew, and no exp at all', async () => {
    assertInvalid(await get('/v1/users/1', bearer(await sign(keys.RS256, valid({ exp: now() - 31 })))), /expired/);
    assertInvalid(await get('/v1/users/1', bearer(await sign(keys.RS256, valid({ nbf: now() + 60 })))), /not valid yet/);
    const noExp = valid();
    delete (noExp as Record<string, unknown>).exp;
    assertInvalid(await get('/v1/users/1', bearer(await sign(keys.RS256, noExp))), /no expiry/);
  });

  it('malformed tokens', async () => {
    const good = await sign(keys.RS256, valid());
    const cases = [
      'abc', 'a.b', `${good}.x`, 'e30.e30.', '!!!.e30.c2ln', `${good.slice(0, -2)}==`,
      rawToken('not json', valid()), rawToken([1, 2], valid()), rawToken({ alg: 'RS256', kid: 7 }, valid()),
      rawToken({ alg: 'RS256', kid: keys.RS256.kid, crit: ['exp'] }, valid()),
    ];
    for (const token of cases) {
      const r = await get('/v1/users/1', bearer(token));
      assertInvalid(r, /the token is malformed/);
    }
    const withTabs = await get('/v1/users/1', { authorization: 'Bearer a b' });
    assert.equal(withTabs.status, 401);
    assert.equal(withTabs.headers['www-authenticate'], MISSING);
  });

  it('claims do not leak into WWW-Authenticate, whatever the token holds', async () => {
    const evil = await sign(keys.RS256, valid({ iss: 'x"\r\nSet-Cookie: a=b', aud: '"quoted"' }));
    const r = await get('/v1/users/1', bearer(evil));
    assertInvalid(r, /issuer/);
    assert.equal(r.headers['set-cookie'], undefined);
  });

  it('an unknown kid', async () => {
    const stranger = await makeKey('RS256', 'nobody-knows-me');
    assertInvalid(await get('/v1/users/1', bearer(await sign(stranger, valid()))), /signing key is unknown/);
  });

  it('400 for two Authorization headers', async () => {
    const token = await sign(keys.RS256, valid());
    const raw = await rawRequest(gw.port,
      `GET /v1/users/1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${token}\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    assert.equal(raw.status, 400);
    assert.match(raw.headers.get('www-authenticate')![0], /error="invalid_request"/);
    assert.match(raw.body, /"code":"invalid_auth_request"/);
  });
});

describe('scopes', () => {
  it('403 insufficient_scope when the scope claim does not cover the route', async () => {
    const r = await get('/admin/x', bearer(await sign(keys.RS256, valid({ scope: 'users:read admin' }))));
    assert.equal(r.status, 403);
    assert.equal(r.headers['www-authenticate'],
      'Bearer realm="main", error="insufficient_scope", error_description="the token does not grant the required scopes", scope="admin users:write"');
    assert.equal(r.json().error.code, 'insufficient_scope');
    const none = await get('/v1/users/1', bearer(await sign(keys.RS256, valid({ scope: undefined }))));
    assert.equal(none.status, 403);
  });

  it('scopes from a space-separated scope, an scp array, or both', async () => {
    const s1 = await get('/admin/x', bearer(await sign(keys.RS256, valid({ scope: 'admin users:write' }))));
    assert.equal(s1.status, 200);
    const s2 = await get('/admin/x', bearer(await sign(keys.RS256, valid({ scope: undefined, scp: ['users:write', 'admin'] }))));
    assert.equal(s2.status, 200);
    const s3 = await get('/admin/x', bearer(await sign(keys.RS256, valid({ scope: 'admin', scp: ['users:write'] }))));
    assert.equal(s3.status, 200);
  });
});

describe('identity headers cannot be spoofed', () => {
  const spoof = { 'x-user-id': 'root', 'X-Tenant-Id': 'other', 'x-user-scopes': 'admin', 'x-hmac-user': 'root', 'x-keep': 'yes' };

  it('on a route without auth, every provider\'s identity headers are removed', async () => {
    const r = await get('/public/1', spoof);
    assert.equal(r.status, 200);
    const h = (r.json() as Echo).headers;
    assert.equal(h['x-user-id'], undefined);
    assert.equal(h['x-tenant-id'], undefined);
    assert.equal(h['x-user-scopes'], undefined);
    assert.equal(h['x-hmac-user'], undefined);
    assert.equal(h['x-keep'], 'yes');
  });

  it('on an optional route: anonymous requests pass without them, tokens still count', async () => {
    const anon = await get('/maybe/1', spoof);
    assert.equal(anon.status, 200);
    assert.equal((anon.json() as Echo).headers['x-user-id'], undefined);
    const authed = await get('/maybe/1', { ...spoof, ...bearer(await sign(keys.ES256, valid({ sub: 'real' }))) });
    assert.equal((authed.json() as Echo).headers['x-user-id'], 'real');
    assert.equal((authed.json() as Echo).headers['x-hmac-user'], undefined);
    assertInvalid(await get('/maybe/1', bearer('garbage.token.here')), /the token is malformed/);
  });

  it('on every route, whatever its provider, no client-sent identity header gets through', async () => {
    const main = await sign(keys.RS256, valid({ sub: 'm', scope: 'users:read', tenant: undefined }));
    const hmac = await sign(hmacKey, { iss: 'hmac-issuer', sub: 'h', exp: now() + 60 }, { header: { kid: null } });
    const fixed = await sign(fixedKey, valid({ sub: 'f' }));
    const routes: [string, Record<string, string>, Record<string, string | undefined>][] = [
      ['/v1/users/1', bearer(main), { 'x-user-id': 'm', 'x-user-scopes': 'users:read', 'x-tenant-id': undefined, 'x-hmac-user': undefined }],
      ['/maybe/1', bearer(main), { 'x-user-id': 'm', 'x-user-scopes': 'users:read', 'x-tenant-id': undefined, 'x-hmac-user': undefined }],
      ['/hmac/1', bearer(hmac), { 'x-user-id': undefined, 'x-user-scopes': undefined, 'x-tenant-id': undefined, 'x-hmac-user': 'h' }],
      ['/fixed/1', bearer(fixed), { 'x-user-id': 'f', 'x-user-scopes': undefined, 'x-tenant-id': undefined, 'x-hmac-user': undefined }],
      ['/public/1', {}, { 'x-user-id': undefined, 'x-user-scopes': undefined, 'x-tenant-id': undefined, 'x-hmac-user': undefined }],
    ];
    for (const [path, auth, expected] of routes) {
      const r = await get(path, { ...spoof, ...auth });
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      const h = (r.json() as Echo).headers;
      for (const [name, value] of Object.entries(expected)) assert.equal(h[name], value, `${path} ${name}`);
      assert.equal(h['x-keep'], 'yes', `${path}: other headers pass`);
    }
  });

  it('on an authenticated route the token\'s values replace the client\'s (duplicates too)', async () => {
    const token = await sign(keys.RS256, valid({ sub: 'the-user', tenant: undefined }));
    const raw = await rawRequest(gw.port,
      `GET /v1/users/1 HTTP/1.1\r\nHost: a\r\nX-User-Id: root\r\nx-user-id: root2\r\nX-Tenant-Id: t\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    assert.equal(raw.status, 200);
    const h = JSON.parse(raw.body).headers as Echo['headers'];
    assert.equal(h['x-user-id'], 'the-user');
    assert.equal(h['x-tenant-id'], undefined, 'no tenant claim: no header at all, not the client\'s');
  });
});

describe('JWKS', () => {
  it('a key added by rotation is accepted without restart (unknown kid → refetch)', async () => {
    await new Promise((r) => setTimeout(r, COOLDOWN_S * 1000 + 100)); // past any earlier fetch's cooldown
    const rotated = await makeKey('ES256', 'rotated-1');
    jwks.keys = [...jwks.keys, rotated.jwk];
    const before = jwks.hits;
    const r = await get('/v1/users/1', bearer(await sign(rotated, valid({ sub: 'rotated' }))));
    assert.equal(r.status, 200, r.text);
    assert.equal((r.json() as Echo).headers['x-user-id'], 'rotated');
    assert.equal(jwks.hits - before, 1, 'one fetch for both workers');
  });

  it('a flood of unknown kids costs at most one fetch per cooldown', async () => {
    await new Promise((r) => setTimeout(r, COOLDOWN_S * 1000 + 100));
    const before = jwks.hits;
    const started = Date.now();
    const bogus = await makeKey('RS256', 'bogus');
    const tokens = await Promise.all(Array.from({ length: 40 }, (_, i) => sign({ ...bogus, kid: `bogus-${i}` }, valid())));
    let refused = 0;
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(tokens.map((t) => get('/v1/users/1', bearer(t))));
      refused += answers.filter((a) => a.status === 401).length;
      await new Promise((r) => setTimeout(r, 300));
    }
    const elapsedS = (Date.now() - started) / 1000;
    assert.equal(refused, 120);
    const fetches = jwks.hits - before;
    // Fetches start at least one cooldown apart: within elapsedS, at most floor(elapsedS / cooldown) + 1.
    assert.ok(fetches >= 1 && fetches <= Math.floor(elapsedS / COOLDOWN_S) + 1,
      `${fetches} fetches in ${elapsedS.toFixed(1)} s with a ${COOLDOWN_S} s cooldown`);
  });

  it('an oct key (k) published by the JWKS endpoint is not taken, and no secret reaches a log line', async () => {
    await new Promise((r) => setTimeout(r, COOLDOWN_S * 1000 + 100));
    const oct = await makeKey('HS256', 'published-secret');
    const saved = jwks.keys;
    jwks.keys = [...saved, oct.jwk];
    try {
      const stranger = await makeKey('ES256', 'names-a-refetch');
      assertInvalid(await get('/v1/users/1', bearer(await sign(stranger, valid()))), /unknown/);
      const deadline = Date.now() + 10_000;
      while (!gw.stderr().includes('published-secret') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const logs = gw.stderr();
      assert.match(logs, /published-secret: oct keys are not accepted from a JWKS URI/);
      assert.ok(!logs.includes(String(oct.jwk.k)), 'the oct key\'s k is never logged');
      assert.ok(!logs.includes(HMAC_SECRET) && !logs.includes(Buffer.from(HMAC_SECRET).toString('base64url')), 'nor the provider secret');
    } finally {
      jwks.keys = saved;
    }
  });

  it('identity provider down: the cached keys still verify new tokens', async () => {
    jwks.down = true;
    try {
      await new Promise((r) => setTimeout(r, COOLDOWN_S * 1000 + 100));
      // An unknown kid makes the gateway refetch, which fails: the keys it had stay.
      const stranger = await makeKey('RS256', 'while-down');
      const hitsBefore = jwks.hits;
      assertInvalid(await get('/v1/users/1', bearer(await sign(stranger, valid()))), /unknown/);
      assert.ok(jwks.hits > hitsBefore, 'the refetch reached the (failing) provider');
      const r = await get('/v1/users/1', bearer(await sign(keys.RS256, valid({ sub: 'while-down' }))));
      assert.equal(r.status, 200, r.text);
      assert.equal((r.json() as Echo).headers['x-user-id'], 'while-down');
    } finally {
      jwks.down = false;
    }
  });
});

describe('JWKS rotation right after start-up (default jwks_cache: refetch_cooldown_s 30)', () => {
  let idp: JwksServer;
  let fresh: Gateway;
  let boot: TestKey;

  before(async () => {
    boot = await makeKey('ES256', 'boot-1');
    idp = await startJwksServer([boot.jwk]); // Cache-Control max-age=300: no scheduled refresh during the test
    fresh = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2 }
services: { users: { targets: ["${up.origin}"] } }
auth:
  providers:
    - { name: idp, issuer: "${ISSUER}", jwks_uri: "${idp.url}", algorithms: [ES256], claims_to_headers: { sub: X-User-Id } }
routes:
  - { name: all, match: { prefix: / }, service: users, auth: { provider: idp } }
`);
  });

  after(async () => {
    await fresh?.stop();
    await idp?.close();
  });

  it('a key published just after start-up is accepted on first use; a flood of unknown kids still costs at most one fetch per cooldown', async () => {
    const COOLDOWN = 30;
    const started = Date.now();
    const bootHits = idp.hits;
    assert.equal(bootHits, 1, 'the start-up fetch');
    // The operator rotates right after start-up (well within 30 s of the start-up fetch).
    const rotated = await makeKey('ES256', 'rotated-at-boot');
    idp.keys = [boot.jwk, rotated.jwk];
    const token = await sign(rotated, valid({ sub: 'rotated' }));
    const first = await get('/x', bearer(token), fresh);
    assert.equal(first.status, 200, `the new key is accepted on its first use, not after the cooldown: ${first.text}`);
    assert.equal((first.json() as Echo).headers['x-user-id'], 'rotated');
    assert.ok(Date.now() - started < 10_000, 'within seconds of start-up');
    assert.equal(idp.hits - bootHits, 1, 'one fetch, for both workers');
    // Every worker has it now (concurrent requests spread over both workers' listen sockets).
    const again = await Promise.all(Array.from({ length: 8 }, () => get('/x', bearer(token), fresh)));
    assert.deepEqual(again.map((a) => a.status), Array(8).fill(200));

    // A flood of made-up kids on both workers.
    const bogus = await makeKey('ES256', 'bogus');
    let refused = 0;
    for (let round = 0; round < 4; round++) {
      const tokens = await Promise.all(Array.from({ length: 50 }, () =>
        sign({ ...bogus, kid: `k-${Math.random().toString(36).slice(2)}` }, valid())));
      const answers = await Promise.all(tokens.map((t) => get('/x', bearer(t), fresh)));
      for (const a of answers) {
        assertInvalid(a, /unknown/, 'idp');
        refused++;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(refused, 200);
    const elapsedS = (Date.now() - started) / 1000;
    const fetches = idp.hits - bootHits;
    // Kid-triggered fetches start at least a cooldown apart; the rotation's counts.
    assert.ok(fetches <= Math.floor(elapsedS / COOLDOWN) + 1, `${fetches} fetches in ${elapsedS.toFixed(1)} s with a ${COOLDOWN} s cooldown`);
    assert.equal((await get('/x', bearer(token), fresh)).status, 200, 'the rotated key still works');
  });
});

describe('token cache', () => {
  it('a cached token stops working at its exp', async () => {
    const exp = now() + 2;
    const token = await sign(fixedKey, valid({ exp }));
    assert.equal((await get('/fixed/1', bearer(token))).status, 200);
    assert.equal((await get('/fixed/1', bearer(token))).status, 200);
    await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 50));
    assertInvalid(await get('/fixed/1', bearer(token)), /expired/, 'fixed');
  });
});

describe('verification pool bounds', () => {
  let small: Gateway;
  let key: TestKey;

  before(async () => {
    key = await makeKey('RS256', 'pool-1');
    small = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
services: { users: { targets: ["${up.origin}"] } }
auth:
  verifier: { threads: 1, concurrent_tasks_per_thread: 1, max_queue: 2, task_timeout_ms: 1500 }
  providers:
    - { name: p, issuer: "${ISSUER}", keys: [${JSON.stringify(key.jwk)}], algorithms: [RS256] }
routes:
  - { name: all, match: { prefix: / }, service: users, auth: { provider: p } }
`, { env: { LOBBY_TEST_HOOKS: '1' } });
  });

  after(async () => {
    await small?.stop();
  });

  it('a full queue answers 503 auth_overloaded instead of growing', async () => {
    const tokens = await Promise.all(Array.from({ length: 8 }, (_, i) => sign(key, valid({ sub: `s${i}`, lobby_test_delay_ms: 100 }))));
    const answers = await Promise.all(tokens.map((t) => get('/x', bearer(t), small)));
    const codes = answers.map((a) => (a.status === 200 ? 'ok' : a.json().error.code as string));
    // 1 running + 2 queued fit (100 ms each, well within the 1500 ms timeout even on a loaded
    // machine); the others are refused at once.
    assert.ok(codes.every((c) => c === 'ok' || c === 'auth_overloaded'), codes.join(','));
    assert.ok(codes.filter((c) => c === 'auth_overloaded').length >= 4, codes.join(','));
    assert.ok(codes.filter((c) => c === 'ok').length >= 1, codes.join(','));
    for (const a of answers.filter((x) => x.status === 503)) assert.equal(a.headers['retry-after'], '1');
  });

  it('a task over task_timeout_ms answers 503 auth_timeout; its result still fills the cache', async () => {
    const token = await sign(key, valid({ sub: 'slow', lobby_test_delay_ms: 1800 }));
    const r = await get('/x', bearer(token), small);
    assert.equal(r.status, 503);
    assert.equal(r.json().error.code, 'auth_timeout');
    // The late result lands in the cache some time after 1800 ms: poll for it (a loaded
    // machine may take longer), at most 10 s.
    await new Promise((res) => setTimeout(res, 400));
    let again = await get('/x', bearer(token), small);
    for (let i = 0; i < 50 && again.status !== 200; i++) {
      await new Promise((res) => setTimeout(res, 200));
      again = await get('/x', bearer(token), small);
    }
    assert.equal(again.status, 200, 'verified late, served from the cache');
  });
});

describe('inline verification (auth.verifier.mode: inline)', () => {
  let inline: Gateway;

  before(async () => {
    inline = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
services: { users: { targets: ["${up.origin}"] } }
auth:
  verifier: { mode: inline }
  providers:
    - name: main
      issuer: ${ISSUER}
      audiences: [api]
      jwks_uri: ${jwks.url}
      algorithms: [RS256, ES256]
      claims_to_headers: { sub: X-User-Id }
      jwks_cache: { min_ttl_s: 1, default_ttl_s: 300, max_ttl_s: 600, refetch_cooldown_s: ${COOLDOWN_S}, fetch_timeout_ms: 1000 }
routes:
  - { name: all, match: { prefix: / }, service: users, auth: { provider: main } }
`);
  });

  after(async () => {
    await inline?.stop();
  });

  it('verifies on the event loop, same answers, rotation included', async () => {
    const ok = await get('/x', bearer(await sign(keys.ES256, valid({ sub: 'inline-user' }))), inline);
    assert.equal(ok.status, 200, ok.text);
    assert.equal((ok.json() as Echo).headers['x-user-id'], 'inline-user');
    assertInvalid(await get('/x', bearer(await sign(keys.RS256, valid({ aud: 'nope' }))), inline), /audience/);
    await new Promise((r) => setTimeout(r, COOLDOWN_S * 1000 + 100));
    const rotated = await makeKey('RS256', 'inline-rotated');
    jwks.keys = [...jwks.keys, rotated.jwk];
    const r = await get('/x', bearer(await sign(rotated, valid({ sub: 'rot' }))), inline);
    assert.equal(r.status, 200, r.text);
  });
});
