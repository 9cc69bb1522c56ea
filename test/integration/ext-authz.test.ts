// External authorization end to end: a real Lobby process (one worker, so the per-worker
// decision cache is one cache), a real policy service speaking the Envoy ext_authz HTTP
// contract (test/helpers/authz-service.ts), raw services sending answers node:http cannot
// write, and a recording upstream that sees the exact bytes the gateway forwards.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { request } from 'undici';
import { SignJWT } from 'jose';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startRecordingUpstream, type RecordedRequest, type RecordingUpstream } from '../helpers/recording-upstream.js';
import { startAuthzService, startRawAuthzService, type AuthzService, type RawAuthzService } from '../helpers/authz-service.js';
import { freePort } from '../helpers/ports.js';
import { waitUntil } from '../helpers/admin.js';

const ACME_KEY = 'acme-test-key-0123456789abcdef';
const SECRET = 'an HS256 secret of at least 32 bytes!';
const ISSUER = 'https://issuer.test';

let up: RecordingUpstream;
let authz: AuthzService;
let crAnswer: RawAuthzService;
let delAnswer: RawAuthzService;
let injectAnswer: RawAuthzService;
let gw: Gateway;

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await request(gw.url + path, { headers });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

/** The values of header `name` in a recorded upstream request. */
function headerValues(req: RecordedRequest, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < req.headers.length; i += 2) if (req.headers[i].toLowerCase() === name) out.push(req.headers[i + 1]);
  return out;
}

/** The upstream request for `path` (the last one). */
function forwarded(path: string): RecordedRequest | undefined {
  return up.requests.filter((r) => r.url === path).at(-1);
}

function token(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT({ iss: ISSUER, exp: Math.floor(Date.now() / 1000) + 600, ...claims })
    .setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
}

function assertGatewayError(r: Awaited<ReturnType<typeof get>>, status: number, code: string): void {
  assert.equal(r.status, status, r.text);
  const body = JSON.parse(r.text) as { error: { code: string; status: number; correlation_id: string } };
  assert.equal(body.error.code, code);
  assert.equal(body.error.status, status);
  assert.equal(body.error.correlation_id, r.headers['x-correlation-id']);
}

before(async () => {
  up = await startRecordingUpstream();
  authz = await startAuthzService();
  const answer = (header: string) => Buffer.from(`HTTP/1.1 200 OK\r\n${header}\r\ncontent-length: 0\r\n\r\n`, 'latin1');
  crAnswer = await startRawAuthzService(answer('x-authz-user: alice\rx-admin: true'));
  delAnswer = await startRawAuthzService(answer('x-authz-user: alice\x7f'));
  injectAnswer = await startRawAuthzService(answer('x-authz-user: alice\r\nx-admin: true'));
  const closedPort = await freePort();
  const service = (name: string, url: string, extra = '') =>
    `    - { name: ${name}, url: "${url}", timeout_ms: 5000, allowed_headers: [authorization, x-tenant], allowed_upstream_headers: [x-authz-user]${extra} }`;
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
services: { app: { targets: ["${up.origin}"] } }
auth:
  providers:
    - { name: p, issuer: "${ISSUER}", algorithms: [HS256], secret: "${SECRET}", claims_to_headers: { sub: X-User-Id, role: X-User-Role } }
  verifier: { mode: inline }
consumers:
  - { name: acme, headers: { X-Consumer-Id: acme-corp }, keys: [{ id: k1, hash: "sha256:${createHash('sha256').update(ACME_KEY).digest('hex')}" }] }
ext_authz:
  services:
${service('policy', `${authz.origin}/authz`)}
${service('cached', `${authz.origin}/authz`, ', cache: { ttl_s: 60, key: [method, path, "header:authorization"] }')}
    - { name: slow, url: "${authz.origin}", path_prefix: /slow, timeout_ms: 300, status_on_error: 503 }
    - { name: slow-cached, url: "${authz.origin}", path_prefix: /slow, timeout_ms: 10000, allowed_upstream_headers: [x-authz-user], cache: { ttl_s: 60, key: [path] } }
${service('down', `http://127.0.0.1:${closedPort}`)}
${service('cr', crAnswer.origin)}
${service('del', delAnswer.origin)}
${service('inject', injectAnswer.origin)}
routes:
  - { name: api, match: { prefix: /api }, service: app, ext_authz: { service: policy } }
  - { name: jwt, match: { prefix: /jwt }, service: app, auth: { provider: p }, ext_authz: { service: policy } }
  - { name: keyed, match: { prefix: /keyed }, service: app, key_auth: {}, ext_authz: { service: policy } }
  - { name: cached, match: { prefix: /cached }, service: app, ext_authz: { service: cached } }
  - { name: slow-closed, match: { prefix: /slow-closed }, service: app, ext_authz: { service: slow } }
  - { name: slow-open, match: { prefix: /slow-open }, service: app, ext_authz: { service: slow, failure_mode_allow: true } }
  - { name: slow-cached, match: { prefix: /wait-cached }, service: app, ext_authz: { service: slow-cached } }
  - { name: deadline, match: { prefix: /deadline }, service: app, deadline_ms: 300, ext_authz: { service: slow-cached } }
  - { name: down, match: { prefix: /down }, service: app, ext_authz: { service: down } }
  - { name: down-open, match: { prefix: /open-down }, service: app, ext_authz: { service: down, failure_mode_allow: true } }
  - { name: cr, match: { prefix: /cr }, service: app, ext_authz: { service: cr } }
  - { name: del, match: { prefix: /del }, service: app, ext_authz: { service: del } }
  - { name: inject, match: { prefix: /inject }, service: app, ext_authz: { service: inject } }
  - { name: plain, match: { prefix: /plain }, service: app }
`, { readyPath: '/plain/ready' });
});

after(async () => {
  authz?.release();
  await gw?.stop();
  await Promise.all([up?.close(), authz?.close(), crAnswer?.close(), delAnswer?.close(), injectAnswer?.close()]);
});

describe('the check request', () => {
  it('carries the method, prefix + path + query, Host, the correlation id and only allowlisted headers; no body', async () => {
    const before = authz.checks.length;
    const res = await request(`${gw.url}/api/items?x=1`, {
      method: 'POST', body: 'payload',
      headers: { host: 'shop.example', authorization: 'Bearer t1', 'x-tenant': 't9', 'x-secret-client': 'do not send', 'x-correlation-id': 'corr-123' },
    });
    await res.body.text();
    assert.equal(res.statusCode, 200);
    assert.equal(authz.checks.length, before + 1);
    const check = authz.checks.at(-1)!;
    assert.equal(check.method, 'POST');
    assert.equal(check.url, '/authz/api/items?x=1');
    assert.equal(check.headers.host, 'shop.example');
    assert.equal(check.headers['x-correlation-id'], 'corr-123');
    assert.equal(check.headers.authorization, 'Bearer t1');
    assert.equal(check.headers['x-tenant'], 't9');
    assert.equal(check.headers['x-secret-client'], undefined, 'a header outside allowed_headers is not sent');
    assert.equal(check.headers['x-lobby-subject'], undefined, 'no subject without authentication');
    assert.equal(check.headers['content-length'], '0');
    assert.equal(check.bodyBytes, 0);
    // The upstream still gets the body and the client's headers.
    const fwd = forwarded('/api/items?x=1')!;
    assert.equal(fwd.body.toString(), 'payload');
    assert.deepEqual(headerValues(fwd, 'x-secret-client'), ['do not send']);
  });

  it('with auth-jwt: the verified identity (identity headers, subject) reaches the service, spoofed copies do not', async () => {
    const t = await token({ sub: 'alice', role: 'admin' });
    const r = await get('/jwt/admin/panel', { authorization: `Bearer ${t}`, 'x-user-id': 'mallory', 'x-lobby-subject': 'mallory' });
    assert.equal(r.status, 200, r.text);
    const check = authz.checks.at(-1)!;
    assert.equal(check.url, '/authz/jwt/admin/panel');
    assert.equal(check.headers['x-user-id'], 'alice');
    assert.equal(check.headers['x-user-role'], 'admin');
    assert.equal(check.headers['x-lobby-subject'], 'alice');
    const fwd = forwarded('/jwt/admin/panel')!;
    assert.deepEqual(headerValues(fwd, 'x-authz-user'), ['alice']);
    // A subject beyond Latin-1 reaches the service as its UTF-8 bytes (node:http reads them as latin1).
    assert.equal((await get('/jwt/x', { authorization: `Bearer ${await token({ sub: 'zoë 東京', role: 'admin' })}` })).status, 200);
    assert.equal(Buffer.from(String(authz.checks.at(-1)!.headers['x-lobby-subject']), 'latin1').toString('utf8'), 'zoë 東京');
    // A non-admin token: the service denies.
    const user = await get('/jwt/admin/panel', { authorization: `Bearer ${await token({ sub: 'bob', role: 'user' })}` });
    assert.equal(user.status, 403);
    // A client claiming the role without a token on a route without auth: identity-strip removed it.
    const spoof = await get('/api/admin', { 'x-user-role': 'admin' });
    assert.equal(spoof.status, 403);
    assert.equal(authz.checks.at(-1)!.headers['x-user-role'], undefined);
  });
});

describe('identity from an API key', () => {
  it('with key-auth: the consumer headers and the consumer as subject reach the service, spoofed copies do not', async () => {
    const r = await get('/keyed/orders', { 'x-api-key': ACME_KEY, 'x-consumer-id': 'mallory', 'x-lobby-subject': 'mallory' });
    assert.equal(r.status, 200, r.text);
    const check = authz.checks.at(-1)!;
    assert.equal(check.headers['x-consumer-id'], 'acme-corp');
    assert.equal(check.headers['x-lobby-subject'], 'acme');
    assert.equal(check.headers['x-api-key'], undefined, 'the key is not an allowlisted header');
    // Without a key: refused before the check.
    const before = authz.checks.length;
    assert.equal((await get('/keyed/orders', { 'x-consumer-id': 'acme-corp' })).status, 401);
    assert.equal(authz.checks.length, before);
  });
});

describe('decisions', () => {
  it('allowed: the allowlisted answer headers go upstream, replacing client copies; others do not', async () => {
    const r = await get('/api/orders', { authorization: 'Bearer carol', 'x-authz-user': 'spoofed', 'x-lobby-ext-authz-failure': 'true' });
    assert.equal(r.status, 200, r.text);
    const fwd = forwarded('/api/orders')!;
    assert.deepEqual(headerValues(fwd, 'x-authz-user'), ['Bearer carol']);
    assert.deepEqual(headerValues(fwd, 'x-authz-secret'), [], 'not in allowed_upstream_headers');
    assert.deepEqual(headerValues(fwd, 'x-lobby-ext-authz-failure'), [], 'a client copy is removed');
    assert.equal(up.errors.length, 0);
  });

  it('denied: the service status, allowlisted headers and body reach the client; no upstream request', async () => {
    const count = up.requests.length;
    const r = await get('/api/admin/users');
    assert.equal(r.status, 403);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['www-authenticate'], 'Policy realm="test"');
    assert.equal(r.headers['x-internal-debug'], undefined, 'not in allowed_client_headers');
    assert.ok(r.headers['x-correlation-id']);
    assert.deepEqual(JSON.parse(r.text), { reason: 'admins only' });
    const text = await get('/api/x', { authorization: 'Bearer deny' });
    assert.equal(text.status, 401);
    assert.equal(text.text, 'denied by policy');
    const redirect = await get('/api/redirect');
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.location, '/login');
    assert.equal(up.requests.length, count, 'a denied request never reaches the upstream');
  });

  it('a denial without a body, or with one past 64 KiB, gets the JSON error with the service status', async () => {
    const empty = await get('/api/empty-deny');
    assertGatewayError(empty, 401, 'ext_authz_denied');
    assert.equal(empty.headers['www-authenticate'], 'Policy realm="test"');
    const big = await get('/api/big-deny');
    assertGatewayError(big, 403, 'ext_authz_denied');
    assert.equal(big.headers['content-type'], 'application/json');
  });
});

describe('failures', () => {
  it('timeout on a fail-closed route: status_on_error (503) ext_authz_timeout, nothing upstream', async () => {
    const count = up.requests.length;
    const r = await get('/slow-closed/a');
    assertGatewayError(r, 503, 'ext_authz_timeout');
    assert.equal(up.requests.length, count);
  });

  it('timeout on a failure_mode_allow route: forwarded with x-lobby-ext-authz-failure: true', async () => {
    const r = await get('/slow-open/b', { 'x-lobby-ext-authz-failure': 'false' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(headerValues(forwarded('/slow-open/b')!, 'x-lobby-ext-authz-failure'), ['true']);
  });

  it('service down: 403 ext_authz_unavailable (the default status_on_error); fail-open forwards', async () => {
    assertGatewayError(await get('/down/c'), 403, 'ext_authz_unavailable');
    const open = await get('/open-down/c');
    assert.equal(open.status, 200, open.text);
    assert.deepEqual(headerValues(forwarded('/open-down/c')!, 'x-lobby-ext-authz-failure'), ['true']);
  });

  it('a 5xx answer is a failure, not a denial: its body never reaches the client', async () => {
    const r = await get('/api/boom');
    assertGatewayError(r, 403, 'ext_authz_unavailable');
    assert.doesNotMatch(r.text, /oops/);
  });

  it('answer header values that are not safe bytes are refused: nothing reaches the upstream', async () => {
    const count = up.requests.length;
    assertGatewayError(await get('/cr/x'), 403, 'ext_authz_unavailable');
    assertGatewayError(await get('/del/x'), 403, 'ext_authz_unavailable');
    assert.ok(crAnswer.checks() >= 1 && delAnswer.checks() >= 1);
    assert.equal(up.requests.length, count);
    // CR LF inside a value ends the header: the second line is a header of its own, not allowed.
    const r = await get('/inject/x');
    assert.equal(r.status, 200, r.text);
    const fwd = forwarded('/inject/x')!;
    assert.deepEqual(headerValues(fwd, 'x-authz-user'), ['alice']);
    assert.deepEqual(headerValues(fwd, 'x-admin'), []);
    assert.equal(up.errors.length, 0);
  });

  it('a client that leaves during the check: nothing breaks, the late answer is dropped', async () => {
    const held = authz.held();
    const socket = connect(gw.port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('GET /slow-open/abandoned HTTP/1.1\r\nhost: x\r\n\r\n');
    await waitUntil('the check is held', () => authz.held() > held);
    socket.destroy();
    await new Promise((r) => setTimeout(r, 50));
    authz.release();
    // Past the service's 300 ms timeout, whose fail-open would forward a request still there.
    await new Promise((r) => setTimeout(r, 600));
    // The gateway goes on serving, and the abandoned request never reached the upstream.
    assert.equal((await get('/api/after-abort')).status, 200);
    assert.equal(forwarded('/slow-open/abandoned'), undefined);
    assert.doesNotMatch(gw.stderr(), /fault/);
  });
});

describe('the decision cache', () => {
  it('an identical request is answered from the cache; another key attribute asks again', async () => {
    const start = authz.checks.length;
    assert.equal((await get('/cached/r1', { authorization: 'Bearer a' })).status, 200);
    assert.equal(authz.checks.length, start + 1);
    const second = await get('/cached/r1', { authorization: 'Bearer a', 'x-other': 'not in the key' });
    assert.equal(second.status, 200);
    assert.equal(authz.checks.length, start + 1, 'served from the cache');
    assert.deepEqual(headerValues(forwarded('/cached/r1')!, 'x-authz-user'), ['Bearer a'], 'cached upstream headers are applied');
    assert.equal((await get('/cached/r1', { authorization: 'Bearer b' })).status, 200);
    assert.equal(authz.checks.length, start + 2, 'another Authorization is another key');
    await get('/cached/r2', { authorization: 'Bearer a' });
    assert.equal(authz.checks.length, start + 3, 'another path is another key');
    // A denial is cached too, with its status and body.
    const denied = await get('/cached/admin', { authorization: 'Bearer a' });
    const again = await get('/cached/admin', { authorization: 'Bearer a' });
    assert.equal(authz.checks.length, start + 4);
    assert.equal(again.status, 403);
    assert.equal(again.text, denied.text);
  });

  it('identical requests that miss together share one check', async () => {
    const start = authz.checks.length;
    const held = authz.held();
    const pending = [get('/wait-cached/same'), get('/wait-cached/same'), get('/wait-cached/same')];
    await waitUntil('the check is held', () => authz.held() > held);
    // The other two reach the gateway meanwhile and join the check in flight (one worker):
    // without sharing, they would be held at the service too.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(authz.held(), held + 1);
    assert.equal(authz.checks.length, start + 1);
    authz.release();
    const answers = await Promise.all(pending);
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200]);
    assert.equal(authz.checks.length, start + 1, 'one check for the three');
    const sent = up.requests.filter((r) => r.url === '/wait-cached/same');
    assert.equal(sent.length, 3);
    for (const r of sent) assert.deepEqual(headerValues(r, 'x-authz-user'), ['late']);
  });

  it("the route's deadline covers the wait for the check; the late answer still fills the cache", async () => {
    const held = authz.held();
    const r = await get('/deadline/d1');
    assertGatewayError(r, 504, 'deadline_exceeded');
    await waitUntil('the check is held at the service', () => authz.held() > held);
    assert.equal(forwarded('/deadline/d1'), undefined);
    const start = authz.checks.length;
    authz.release();
    await waitUntil('the late answer is cached', async () => (await get('/deadline/d1')).status === 200);
    assert.equal(authz.checks.length, start, 'answered from the cache');
    assert.deepEqual(headerValues(forwarded('/deadline/d1')!, 'x-authz-user'), ['late']);
  });

  it('failures are not cached', async () => {
    const start = authz.checks.length;
    await get('/cached/boom', { authorization: 'Bearer a' });
    await get('/cached/boom', { authorization: 'Bearer a' });
    assert.equal(authz.checks.length, start + 2);
  });
});
