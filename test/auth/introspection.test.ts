// Opaque access tokens through RFC 7662 introspection, end to end: a real Lobby (two workers)
// in front of a real upstream, asking a real authorization server (oidc-provider, started on
// loopback by test/helpers/oauth-server.ts) about tokens it issued by client credentials.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { startOAuthServer, GATEWAY_CLIENT, GATEWAY_POST_CLIENT, API_AUDIENCE, SHORT_TTL_S, type OAuthServer } from '../helpers/oauth-server.js';
import { freePort } from '../helpers/ports.js';
import { waitUntil } from '../helpers/admin.js';

const JWT_SECRET = 'a-local-jwt-secret-of-at-least-32-bytes';

describe('introspection (RFC 7662) against oidc-provider', () => {
  let auth: OAuthServer;
  let upstream: Upstream;
  let gw: Gateway;
  let adminPort: number;

  before(async () => {
    auth = await startOAuthServer(await freePort());
    upstream = await startUpstream('api');
    adminPort = await freePort();
    const provider = (name: string, extra: string) => `
    - name: ${name}
      kind: introspection
      introspection_endpoint: ${auth.introspectionEndpoint}
      client_id: ${GATEWAY_CLIENT.id}
      client_secret: \${INTROSPECTION_SECRET}
      client_auth: client_secret_basic
      token_type_hint: access_token
      issuer: ${auth.issuer}
      audiences: ["${API_AUDIENCE}"]
      claims_to_headers: { client_id: X-Client-Id, scope: X-Scopes }
      timeout_ms: 1000
      ${extra}`;
    gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2 }
admin: { host: 127.0.0.1, port: ${adminPort} }
services:
  api: { targets: ["${upstream.origin}"] }
auth:
  providers:${provider('opaque', 'cache_ttl_s: 1\n      negative_ttl_s: 30')}${provider('opaque-long', 'cache_ttl_s: 300')}${provider('opaque-open', 'on_unavailable: allow_anonymous')}
    - name: opaque-post
      kind: introspection
      introspection_endpoint: ${auth.introspectionEndpoint}
      client_id: ${GATEWAY_POST_CLIENT.id}
      client_secret: ${GATEWAY_POST_CLIENT.secret}
      client_auth: client_secret_post
      audiences: ["${API_AUDIENCE}"]
      claims_to_headers: { client_id: X-Client-Id }
    - name: local
      issuer: lobby-test
      secret: ${JWT_SECRET}
      algorithms: [HS256]
      claims_to_headers: { sub: X-Client-Id, scope: X-Scopes }
routes:
  - { name: orders, match: { prefix: /orders }, service: api, auth: { providers: [local, opaque], scopes: [orders:read] } }
  # The counting tests: opaque (1 s cache) would ask again if a loaded machine spread them past a second.
  - { name: counted, match: { prefix: /counted }, service: api, auth: { providers: [local, opaque-long], scopes: [orders:read] } }
  - { name: admin, match: { prefix: /admin }, service: api, auth: { provider: opaque, scopes: [orders:admin] } }
  - { name: long, match: { prefix: /long }, service: api, auth: { provider: opaque-long } }
  - { name: post, match: { prefix: /post }, service: api, auth: { provider: opaque-post } }
  - { name: maybe, match: { prefix: /maybe }, service: api, auth: { provider: opaque-open, optional: true } }
`, { env: { INTROSPECTION_SECRET: GATEWAY_CLIENT.secret } });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await auth?.close();
  });

  async function get(path: string, token: string | null, headers: Record<string, string> = {}) {
    const res = await request(`${gw.url}${path}`, { headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...headers } });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
  }

  it('an active token is accepted, its claims injected as identity headers (spoofed ones stripped), and cached', async () => {
    const token = await auth.token('orders:read orders:write');
    const before = auth.introspections;
    const res = await get('/orders/1', token, { 'x-client-id': 'spoofed', 'x-scopes': 'orders:admin' });
    assert.equal(res.status, 200, res.text);
    const seen = res.json().headers;
    assert.equal(seen['x-client-id'], 'app');
    assert.equal(seen['x-scopes'], 'orders:read orders:write');
    assert.equal(seen.authorization, `Bearer ${token}`, 'forward_token defaults to true');
    assert.equal(auth.introspections, before + 1);
    for (let i = 0; i < 10; i++) assert.equal((await get('/counted/1', token)).status, 200);
    assert.equal(auth.introspections, before + 2, 'repeated requests are answered from the caches (one call for the long-cached provider)');
  });

  it('client_secret_post: the client authenticates in the form body', async () => {
    const token = await auth.token('orders:read');
    const before = auth.introspections;
    const res = await get('/post', token);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json().headers['x-client-id'], 'app');
    assert.equal(auth.introspections, before + 1);
  });

  it('a revoked token is refused once the cache time has passed', async () => {
    const token = await auth.token('orders:read');
    assert.equal((await get('/orders/2', token)).status, 200);
    await auth.revoke(token);
    let last = await get('/orders/2', token);
    await waitUntil('the revoked token to be refused', async () => (last = await get('/orders/2', token)).status === 401, 10_000);
    assert.equal(last.json().error.code, 'invalid_token');
    assert.match(String(last.headers['www-authenticate']), /^Bearer realm="opaque", error="invalid_token", error_description="the token is not active"$/);
    assert.ok(last.json().error.correlation_id);
  });

  it('an expired token is refused: the cache keeps it no longer than its exp, whatever cache_ttl_s says', async () => {
    // Taken before the token is minted: its exp is at most SHORT_TTL_S whole seconds after this
    // (oidc-provider rounds to seconds), so "not before it expired" holds however slow the GETs.
    const issued = Date.now();
    const token = await auth.token('orders:read', 'https://short.test');
    assert.equal((await get('/long', token)).status, 200);
    let last = await get('/long', token);
    // Within the wait's 15 s, long before cache_ttl_s (300 s): the cache kept it no longer than exp.
    await waitUntil('the expired token to be refused', async () => (last = await get('/long', token)).status === 401, 15_000);
    assert.ok(Date.now() - issued >= (SHORT_TTL_S - 1) * 1000, 'not before the token expired');
    assert.equal(last.json().error.code, 'invalid_token');
  });

  it('a token for another audience is refused 401', async () => {
    const token = await auth.token('orders:read', 'https://other.test');
    const res = await get('/orders/3', token);
    assert.equal(res.status, 401);
    assert.match(String(res.headers['www-authenticate']), /error_description="the audience is not accepted"/);
  });

  it('a token without the route\'s scope is refused 403 insufficient_scope', async () => {
    const token = await auth.token('orders:read');
    const res = await get('/admin', token);
    assert.equal(res.status, 403);
    assert.equal(res.json().error.code, 'insufficient_scope');
    assert.match(String(res.headers['www-authenticate']), /^Bearer realm="opaque", error="insufficient_scope", .*scope="orders:admin"$/);
  });

  it('an unknown token is refused, and the refusal cached (negative_ttl_s)', async () => {
    const before = auth.introspections;
    for (let i = 0; i < 3; i++) assert.equal((await get('/orders/4', 'not-a-token-anyone-issued')).status, 401);
    assert.equal(auth.introspections, before + 1);
  });

  it('100 concurrent requests with one new token cause one introspection call (across both workers)', async () => {
    const token = await auth.token('orders:read');
    const before = auth.introspections;
    const results = await Promise.all(Array.from({ length: 100 }, () => get('/counted/5', token)));
    assert.deepEqual([...new Set(results.map((r) => r.status))], [200]);
    assert.equal(auth.introspections, before + 1);
  });

  it('a JWT on the same route is verified locally (no introspection), an opaque token is introspected', async () => {
    const jwt = await new SignJWT({ scope: 'orders:read' }).setProtectedHeader({ alg: 'HS256' })
      .setIssuer('lobby-test').setSubject('jwt-user').setExpirationTime('10m').sign(Buffer.from(JWT_SECRET));
    const before = auth.introspections;
    const res = await get('/orders/6', jwt);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json().headers['x-client-id'], 'jwt-user');
    assert.equal(auth.introspections, before, 'the JWT was not introspected');
    const bad = await get('/orders/6', jwt.slice(0, -4) + 'AAAA');
    assert.equal(bad.status, 401);
    assert.match(String(bad.headers['www-authenticate']), /^Bearer realm="local", .*the signature is invalid/);
    assert.equal(auth.introspections, before, 'a JWT-shaped token goes to the JWT provider only');
  });

  it('authorization server failing (503): 503 auth_unavailable, or anonymous on an optional fail-open route', async () => {
    auth.failIntrospection(true);
    try {
      const token = await auth.token('orders:read');
      const res = await get('/orders/7', token);
      assert.equal(res.status, 503);
      assert.equal(res.json().error.code, 'auth_unavailable');
      assert.equal(res.headers['retry-after'], '1');
      const open = await get('/maybe', token, { 'x-client-id': 'spoofed' });
      assert.equal(open.status, 200, open.text);
      assert.equal(open.json().headers['x-client-id'], undefined, 'anonymous: no identity, spoofed header stripped');
    } finally {
      auth.failIntrospection(false);
    }
  });

  it('authorization server not answering: 503 auth_unavailable once timeout_ms has passed', async () => {
    auth.stallIntrospection(true);
    try {
      const token = await auth.token('orders:read');
      const started = Date.now();
      const res = await get('/orders/9', token);
      assert.equal(res.status, 503);
      assert.equal(res.json().error.code, 'auth_unavailable');
      assert.ok(Date.now() - started >= 900, 'answered when the call timed out (timeout_ms 1000), not before');
    } finally {
      auth.stallIntrospection(false);
    }
  });

  it('authorization server down: 503 auth_unavailable for new tokens, cached tokens still work until their cache time', async () => {
    const cached = await auth.token('orders:read');
    assert.equal((await get('/long', cached)).status, 200);
    const fresh = await auth.token('orders:read');
    await auth.down();
    const res = await get('/orders/8', fresh);
    assert.equal(res.status, 503);
    assert.equal(res.json().error.code, 'auth_unavailable');
    assert.equal((await get('/long', cached)).status, 200, 'cached for cache_ttl_s (300 s)');
  });

  it('lobby_introspection_calls_total counts the calls made, by provider and result', async () => {
    const text = await (await request(`http://127.0.0.1:${adminPort}/metrics`)).body.text();
    const value = (provider: string, result: string) =>
      Number(new RegExp(`^lobby_introspection_calls_total\\{provider="${provider}",result="${result}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    assert.equal(value('opaque-post', 'ok'), 1);
    assert.equal(value('opaque-post', 'error'), 0);
    assert.ok(value('opaque', 'error') >= 3, 'failing, not answering, down');
    assert.ok(value('opaque', 'ok') + value('opaque-long', 'ok') >= 7);
    assert.ok(value('opaque-long', 'ok') >= 2, 'the counted route\'s calls');
  });
});
