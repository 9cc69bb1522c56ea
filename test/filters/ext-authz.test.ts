// ext-authz's compile (by the real compiler) and its pure parts: where it sits in a chain, the
// config errors with their key paths, the cache key, the decision cache's bounds, and
// config/examples/ext-authz.yaml. The runtime against real services: test/integration/ext-authz.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { RawConfigInput } from '../../src/control/config-schema.js';
import { extAuthz } from '../../src/filters/ext-authz/index.js';
import { keyOf } from '../../src/filters/ext-authz/filter.js';
import { denial, pickHeaders } from '../../src/filters/ext-authz/client.js';
import { DecisionCache, MAX_CACHED_BODY_BYTES, type AuthzDecision } from '../../src/filters/ext-authz/cache.js';
import type { ExtAuthzFilterConfig } from '../../src/filters/ext-authz/config.js';
import { GW_ERR } from '../../src/shared/errors.js';
import { chainOf, compileError, compiledFilterConfig, fakeContext } from './fake-exchange.js';

const SECRET = 'an HS256 secret of 32 bytes, ok!';

const config = (service: Record<string, unknown> = {}, route: Record<string, unknown> = {}): RawConfigInput => ({
  services: { s: { targets: ['http://127.0.0.1:9'] } },
  auth: { providers: [{ name: 'p', issuer: 'i', algorithms: ['HS256'], secret: SECRET, claims_to_headers: { sub: 'X-User-Id' } }] },
  ext_authz: { services: [{ name: 'policy', url: 'http://127.0.0.1:8282/base/', ...service }] },
  routes: [
    { name: 'r', match: { prefix: '/' }, service: 's', auth: { provider: 'p' }, rate_limit: ['l'], ext_authz: { service: 'policy', ...route } },
    { name: 'other', match: { prefix: '/other' }, service: 's' },
  ],
  rate_limits: { l: { key: 'ip', rate: 10 } },
} as RawConfigInput);

test('compile: after authentication, before rate limits; defaults; identity headers from the auth section', () => {
  assert.deepEqual(chainOf(config(), 'r'), ['auth-jwt', 'ext-authz', 'rate-limit']);
  assert.ok(!chainOf(config(), 'other').includes('ext-authz'));
  const cfg = compiledFilterConfig(extAuthz, config({ path_prefix: '/v1/', allowed_headers: ['Authorization', 'authorization', 'X-Tenant'] }), 'r') as ExtAuthzFilterConfig;
  assert.equal(cfg.failureModeAllow, false);
  const s = cfg.service;
  assert.equal(s.origin, 'http://127.0.0.1:8282');
  assert.equal(s.pathPrefix, '/base/v1', "the url's path and path_prefix, without trailing slashes");
  assert.equal(s.timeoutMs, 200);
  assert.equal(s.statusOnError, 403);
  assert.deepEqual(s.allowedHeaders, ['authorization', 'x-tenant']);
  assert.deepEqual(s.identityHeaders, ['x-user-id']);
  assert.deepEqual(s.clientHeaders, ['content-type', 'www-authenticate', 'location', 'retry-after']);
  assert.equal(s.cache, null);
  const cached = compiledFilterConfig(extAuthz, config({ cache: { ttl_s: 5, key: ['method', 'header:X-Key'] } }, { failure_mode_allow: true }), 'r') as ExtAuthzFilterConfig;
  assert.equal(cached.failureModeAllow, true);
  assert.deepEqual(cached.service.cache, { ttlMs: 5000, entries: 10000, key: [{ kind: 0, name: '' }, { kind: 5, name: 'x-key' }] });
});

test('config errors name the key path and what is wrong', () => {
  assert.match(compileError(config({}, { service: 'polcy' })), /routes\[0\]\.ext_authz\.service: unknown ext_authz service "polcy" .*policy/);
  const dup = config();
  (dup.ext_authz as { services: unknown[] }).services.push({ name: 'policy', url: 'http://127.0.0.1:1' });
  assert.match(compileError(dup), /ext_authz\.services\[1\]\.name: duplicate ext_authz service name "policy"/);
  assert.match(compileError(config({ url: 'ftp://x' })), /ext_authz\.services\[0\]\.url: must be an http:\/\/ or https:\/\/ URL/);
  assert.match(compileError(config({ url: 'http://u:p@x' })), /url: must not contain credentials/);
  assert.match(compileError(config({ url: 'http://x/?a=1' })), /url: must not have a query or a fragment/);
  assert.match(compileError(config({ path_prefix: 'authz' })), /path_prefix: must start with "\/"/);
  assert.match(compileError(config({ allowed_headers: ['host'] })), /allowed_headers\[0\]: cannot be "host"/);
  assert.match(compileError(config({ allowed_headers: ['x-lobby-subject'] })), /allowed_headers\[0\]: cannot be "x-lobby-subject"/);
  assert.match(compileError(config({ allowed_upstream_headers: ['x-ok', 'Content-Length'] })), /allowed_upstream_headers\[1\]: cannot be "Content-Length"/);
  assert.match(compileError(config({ allowed_upstream_headers: ['x-lobby-ext-authz-failure'] })), /allowed_upstream_headers\[0\]: cannot be/);
  assert.match(compileError(config({ allowed_client_headers: ['transfer-encoding'] })), /allowed_client_headers\[0\]: cannot be "transfer-encoding"/);
  assert.match(compileError(config({ allowed_headers: ['bad header'] })), /allowed_headers\[0\]: must be an HTTP header name/);
  assert.match(compileError(config({ cache: { ttl_s: 5, key: ['cookie'] } })), /cache\.key\[0\]: must be "method", "host", "path", "query", "subject" or "header:NAME"/);
  assert.match(compileError(config({ cache: { ttl_s: 5, key: [] } })), /cache\.key: must name at least one attribute/);
  assert.match(compileError(config({ cache: { ttl_s: 5, key: ['header:x-forwarded-for'] } })), /cache\.key\[0\]: header:x-forwarded-for cannot be a key/);
  assert.match(compileError(config({ status_on_error: 200 })), /status_on_error/);
  assert.match(compileError(config({ timeout_ms: 0 })), /timeout_ms/);
  assert.match(compileError(config({ bogus: 1 })), /ext_authz\.services\[0\]\.bogus: unknown key \(allowed: name, url, path_prefix/);
});

test('one pass: a service that fails the schema is reported once, not again at the routes naming it', () => {
  const raw = config({ url: 'ftp://x' });
  raw.routes!.push({ name: 'typo', match: { prefix: '/typo' }, service: 's', ext_authz: { service: 'nope' } } as never);
  const text = compileError(raw);
  assert.match(text, /ext_authz\.services\[0\]\.url: must be an http/);
  assert.match(text, /routes\[2\]\.ext_authz\.service: unknown ext_authz service "nope"/);
  assert.doesNotMatch(text, /routes\[0\]\.ext_authz/);
});

test('the cache key: a digest of the configured attributes, never the values themselves', () => {
  const parts = [{ kind: 0, name: '' }, { kind: 2, name: '' }, { kind: 5, name: 'authorization' }];
  const keyFor = (headers: string[], method = 'GET', path = '/a') => {
    const { ctx } = fakeContext({ headers, method });
    ctx.path = path;
    return keyOf(ctx, parts);
  };
  const secret = 'Bearer s3cr3t-token';
  const key = keyFor(['authorization', secret]);
  assert.match(key, /^[A-Za-z0-9_-]{43}$/, 'a SHA-256 digest in base64url');
  assert.ok(!key.includes('s3cr3t'));
  assert.equal(keyFor(['accept', '*/*', 'authorization', secret]), key, 'headers outside the key do not matter');
  assert.equal(keyFor(['Authorization', secret]), key, 'header names are matched case-insensitively');
  assert.notEqual(keyFor(['authorization', 'Bearer other']), key);
  assert.notEqual(keyFor(['authorization', secret], 'POST'), key);
  assert.notEqual(keyFor(['authorization', secret], 'GET', '/b'), key);
  assert.notEqual(keyFor([]), keyFor(['authorization', '']), 'an absent header and an empty one differ');
  assert.notEqual(keyFor(['authorization', 'a', 'authorization', 'b']), keyFor(['authorization', 'a,b']));
  // Attributes cannot run into each other: method "GET" + path "/a" is not method "GET/" + path "a".
  assert.notEqual(keyFor([], 'GET', '/a'), keyFor([], 'GET/', 'a'));
});

test('the decision cache: bounded in entries (least recently used out), TTL, large denial bodies not kept', () => {
  const allow: AuthzDecision = { allowed: true, headers: [], status: 0, body: null, spec: null };
  const cache = new DecisionCache(4, 1000);
  for (const k of ['a', 'b', 'c', 'd']) cache.set(k, allow, 0);
  // a and b are used (they had drifted into the older half, so they move up), then two more
  // come in: c and d, now the least recently used, go.
  cache.get('a', 0);
  cache.get('b', 0);
  cache.set('x0', allow, 0);
  cache.set('x1', allow, 0);
  assert.equal(cache.size, 4);
  assert.equal(cache.get('d', 0), undefined);
  assert.equal(cache.get('a', 0), allow);
  assert.equal(cache.get('b', 0), allow);
  assert.equal(cache.get('c', 0), undefined);
  assert.equal(cache.get('a', 999), allow);
  assert.equal(cache.get('a', 1000), undefined, 'dead at its TTL');
  const big = denial(403, [], Buffer.alloc(MAX_CACHED_BODY_BYTES + 1));
  cache.set('big', big, 0);
  assert.equal(cache.get('big', 0), undefined);
});

test('a denial carries its reply, made once: the record with the service status; without a body, no Content-Type', () => {
  const relayed = denial(401, ['content-type', 'text/plain', 'www-authenticate', 'Basic'], Buffer.from('no'));
  assert.deepEqual(relayed.headers, ['content-type', 'text/plain', 'www-authenticate', 'Basic'], 'a relayed body keeps its type');
  assert.deepEqual(relayed.spec, { ...GW_ERR.ext_authz_denied, status: 401 });
  const json = denial(401, ['content-type', 'text/plain', 'www-authenticate', 'Basic'], null);
  assert.deepEqual(json.headers, ['www-authenticate', 'Basic'], "the gateway's JSON error has its own content type");
  // One record per status: the exchange builds the JSON body's prefix once per record object.
  assert.equal(json.spec, relayed.spec);
  assert.equal(denial(403, [], null).spec, GW_ERR.ext_authz_denied);
});

test("an answer's headers: only the named ones, every copy; any unsafe value refuses the whole answer", () => {
  const names = ['x-user', 'set-cookie'];
  assert.deepEqual(pickHeaders({ 'x-user': 'alice', 'x-other': 'no', 'set-cookie': ['a=1', 'b=2'] }, names),
    ['x-user', 'alice', 'set-cookie', 'a=1', 'set-cookie', 'b=2']);
  assert.deepEqual(pickHeaders({ 'x-user': 'caf\xe9' }, names), ['x-user', 'caf\xe9'], 'obs-text bytes pass as bytes');
  // undici's parser refuses most of these before; the gateway does not rely on it.
  for (const bad of ['a\rb', 'a\nb', 'a\x00b', 'a\x01b', 'a\x7fb', 'caf\u0101']) {
    assert.equal(pickHeaders({ 'x-user': 'ok', 'set-cookie': ['a=1', bad] }, names), null, JSON.stringify(bad));
  }
  assert.deepEqual(pickHeaders({ 'x-other': 'a\rb' }, names), [], 'a header that is not copied does not matter');
});

test('config/examples/ext-authz.yaml loads and passes lobby check', async () => {
  const { loadConfigFile } = await import('../../src/control/config-load.js');
  const { runCheck } = await import('../../src/control/check.js');
  const file = fileURLToPath(new URL('../../../config/examples/ext-authz.yaml', import.meta.url));
  const loaded = await loadConfigFile(file);
  const authzOf = (name: string) => loaded.routes.find((r) => r.name === name)!.filters.find((f) => f.name === 'ext-authz')?.config as ExtAuthzFilterConfig | undefined;
  assert.equal(authzOf('health'), undefined);
  assert.equal(authzOf('orders')!.failureModeAllow, false);
  assert.equal(authzOf('reports')!.failureModeAllow, true);
  const service = authzOf('orders')!.service;
  assert.equal(service.pathPrefix, '/authz');
  assert.equal(service.statusOnError, 503);
  assert.deepEqual(service.identityHeaders, ['x-tenant-id', 'x-user-id']);
  assert.equal(service.cache!.key.length, 5);
  const sink = { text: '', write(t: string) { this.text += t; return true; } };
  assert.equal(await runCheck(file, sink, sink), 0, sink.text);
});
