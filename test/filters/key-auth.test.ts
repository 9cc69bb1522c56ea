// key-auth on its own: consumers and routes compiled by the real compiler, the filter built
// with the generation's consumer table (as a worker builds it) and run against fake contexts;
// the rate limiter's `key: consumer` with a consumer's own rate; the rules between values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NEXT, REPLY, type WorkerEnv } from '../../src/data/chain.js';
import { compileConfig } from '../../src/control/compile.js';
import { keyAuth } from '../../src/filters/key-auth/index.js';
import { rateLimit } from '../../src/filters/rate-limit/index.js';
import { identityStrip } from '../../src/filters/identity-strip/index.js';
import { authJwt } from '../../src/filters/auth-jwt/index.js';
import { keyHashText } from '../../src/filters/key-auth/schema.js';
import { ConsumerTable, consumerTableFor, KEY_DISABLED, KEY_UNKNOWN } from '../../src/filters/key-auth/consumer-table.js';
import { createBucketTable } from '../../src/shared/bucket-table.js';
import type { RawConfigInput } from '../../src/control/config-schema.js';
import type { AuthJwtFilterConfig } from '../../src/shared/auth-config.js';
import { chainOf, compileError, compiledFilterConfig, fakeContext, fakeHead, valuesOf } from './fake-exchange.js';

const KEY_A1 = 'acme-first-key-0123456789';
const KEY_A2 = 'acme-second-key-0123456789';
const KEY_B = 'globex-key-0123456789abc';
const KEY_OFF = 'disabled-key-0123456789ab';

const services = { s: { targets: ['http://127.0.0.1:9'] } };
function config(over: Partial<RawConfigInput> = {}, keyAuthKey: Record<string, unknown> = {}): RawConfigInput {
  return {
    services,
    consumers: [
      {
        name: 'acme',
        headers: { 'X-Consumer-Id': 'acme', 'X-Consumer-Plan': 'gold é' },
        keys: [{ id: 'k1', hash: keyHashText(KEY_A1) }, { id: 'k2', hash: `sha256:${Buffer.from(keyHashText(KEY_A2).slice(7), 'hex').toString('base64url')}` },
          { id: 'old', hash: keyHashText(KEY_OFF), disabled: true }],
      },
      { name: 'globex', headers: { 'X-Consumer-Id': 'globex' }, keys: [{ id: 'main', hash: keyHashText(KEY_B) }], routes: ['reports'] },
    ],
    routes: [
      { name: 'api', match: { prefix: '/api' }, service: 's', key_auth: { query: 'apikey', ...keyAuthKey } },
      { name: 'reports', match: { prefix: '/reports' }, service: 's', key_auth: {} },
      { name: 'open', match: { prefix: '/open' }, service: 's' },
    ],
    ...over,
  };
}

/** The env a worker's generation gives its filters: the compiled config's runtimes. */
function envOf(raw: RawConfigInput): WorkerEnv {
  return { workerIndex: 0, post: () => undefined, runtimes: compileConfig(raw, 'test.yaml') };
}

function build(raw: RawConfigInput, route = 'api') {
  return keyAuth.build(compiledFilterConfig(keyAuth, raw, route), envOf(raw));
}

test('compile: key-auth on routes with key_auth; identity-strip with the consumer headers on the others', () => {
  const raw = config();
  assert.deepEqual(chainOf(raw, 'api'), ['key-auth']);
  assert.deepEqual(chainOf(raw, 'open'), ['identity-strip']);
  assert.deepEqual(compiledFilterConfig(identityStrip, raw, 'open'), { stripHeaders: ['x-consumer-id', 'x-consumer-plan'] });
  assert.deepEqual(compiledFilterConfig(keyAuth, raw, 'api'),
    { route: 'api', header: 'x-api-key', query: 'apikey', forwardKey: false, optional: false, stripHeaders: ['x-consumer-id', 'x-consumer-plan'] });
  const compiled = compileConfig(raw, 'test.yaml').consumers!;
  assert.equal(compiled.keyCount, 4);
  assert.deepEqual(compiled.consumers[0].headers, ['x-consumer-id', 'acme', 'x-consumer-plan', 'gold \xc3\xa9']);
  // A config without consumers or key_auth compiles exactly as before.
  assert.equal('consumers' in compileConfig({ services, routes: [{ name: 'x', match: { prefix: '/' }, service: 's' }] }, 'test.yaml'), false);
});

test('compile: JWT routes strip the consumer headers too (auth-jwt\'s own pass)', () => {
  const raw = config({
    auth: { providers: [{ name: 'p', issuer: 'i', algorithms: ['HS256'], secret: 'x'.repeat(32), claims_to_headers: { sub: 'X-User-Id' } }] },
  });
  (raw.routes as object[]).push({ name: 'jwt', match: { prefix: '/jwt' }, service: 's', auth: { provider: 'p' } });
  assert.deepEqual(compiledFilterConfig<AuthJwtFilterConfig>(authJwt, raw, 'jwt').stripHeaders, ['x-consumer-id', 'x-consumer-plan', 'x-user-id']);
  assert.deepEqual(compiledFilterConfig(keyAuth, raw, 'api').stripHeaders, ['x-consumer-id', 'x-consumer-plan', 'x-user-id']);
});

test('a valid key: consumer headers injected, spoofed ones and the key removed, ctx.consumer and subject set', () => {
  const filter = build(config());
  const { ctx, replies } = fakeContext({ headers: ['x-consumer-id', 'root', 'accept', '*/*', 'x-api-key', KEY_A1, 'x-consumer-plan', 'platinum'] });
  assert.equal(filter.onRequest(ctx), NEXT);
  assert.deepEqual(replies, []);
  assert.deepEqual(ctx.headers, ['accept', '*/*', 'x-consumer-id', 'acme', 'x-consumer-plan', 'gold \xc3\xa9']);
  assert.equal(ctx.consumer, 'acme');
  assert.equal(ctx.subject, 'acme');
  // Both keys of a rotation work; the base64url hash form is the same digest.
  const second = fakeContext({ headers: ['x-api-key', KEY_A2] });
  assert.equal(filter.onRequest(second.ctx), NEXT);
  assert.equal(second.ctx.consumer, 'acme');
});

test('refusals: missing 401 api_key_required, unknown/disabled/repeated 401 invalid_api_key, all with WWW-Authenticate', () => {
  const filter = build(config());
  const challenge = 'ApiKey realm="lobby", header="x-api-key", query="apikey"';
  const cases: [string[], string][] = [
    [[], 'api_key_required'],
    [['x-api-key', ''], 'api_key_required'],
    [['x-api-key', 'no-such-key-0123456789'], 'invalid_api_key'],
    [['x-api-key', KEY_OFF], 'invalid_api_key'],
    [['x-api-key', KEY_A1, 'x-api-key', KEY_A2], 'invalid_api_key'],
    // A key's case matters: it is a secret, not a name.
    [['x-api-key', KEY_A1.toUpperCase()], 'invalid_api_key'],
  ];
  for (const [headers, code] of cases) {
    const { ctx, replies } = fakeContext({ headers });
    assert.equal(filter.onRequest(ctx), REPLY, JSON.stringify(headers));
    assert.equal(replies.length, 1);
    assert.equal(replies[0].spec.status, 401);
    assert.equal(replies[0].spec.code, code, JSON.stringify(headers));
    assert.deepEqual(valuesOf(replies[0].headers, 'www-authenticate'), [challenge]);
    assert.equal(ctx.consumer, '');
  }
});

test('a consumer outside its routes allow-list gets 403 consumer_not_allowed; on its route it passes', () => {
  const raw = config();
  const { ctx, replies } = fakeContext({ headers: ['x-api-key', KEY_B] });
  assert.equal(build(raw, 'api').onRequest(ctx), REPLY);
  assert.equal(replies[0].spec.status, 403);
  assert.equal(replies[0].spec.code, 'consumer_not_allowed');
  const ok = fakeContext({ headers: ['x-api-key', KEY_B] });
  assert.equal(build(raw, 'reports').onRequest(ok.ctx), NEXT);
  assert.equal(ok.ctx.consumer, 'globex');
});

test('query key: accepted when the header is absent and removed from the upstream target; forward_key keeps it', () => {
  const filter = build(config());
  const { ctx } = fakeContext({ query: `a=1&apikey=${encodeURIComponent(KEY_A1)}&b=2` });
  ctx.upstreamPath = `/api/x?${ctx.query}`;
  assert.equal(filter.onRequest(ctx), NEXT);
  assert.equal(ctx.upstreamPath, '/api/x?a=1&b=2');
  assert.equal(ctx.query, 'a=1&b=2');
  const only = fakeContext({ query: `apikey=${KEY_A1}` });
  only.ctx.upstreamPath = `/api?${only.ctx.query}`;
  assert.equal(filter.onRequest(only.ctx), NEXT);
  assert.equal(only.ctx.upstreamPath, '/api');

  const keep = build(config({}, { forward_key: true }));
  const h = fakeContext({ headers: ['x-api-key', KEY_A1] });
  assert.equal(keep.onRequest(h.ctx), NEXT);
  assert.deepEqual(valuesOf(h.ctx.headers, 'x-api-key'), [KEY_A1]);
});

test('optional: no key goes on without a consumer; a wrong key is still refused', () => {
  const filter = build(config({}, { optional: true }));
  const none = fakeContext({ headers: ['x-consumer-id', 'acme'] });
  assert.equal(filter.onRequest(none.ctx), NEXT);
  assert.equal(none.ctx.consumer, '');
  assert.deepEqual(none.ctx.headers, [], 'a spoofed consumer header is removed also without a key');
  const bad = fakeContext({ headers: ['x-api-key', 'wrong-key-0123456789'] });
  assert.equal(filter.onRequest(bad.ctx), REPLY);
});

test('a non-ASCII key in a header (its UTF-8 as a byte string) matches the hash of its text', () => {
  const key = 'clé-secrète-0123456789';
  const raw = config({ consumers: [{ name: 'u', keys: [{ id: 'k', hash: keyHashText(key) }] }] });
  const { ctx } = fakeContext({ headers: ['x-api-key', Buffer.from(key, 'utf8').toString('latin1')] });
  assert.equal(build(raw).onRequest(ctx), NEXT);
  assert.equal(ctx.consumer, 'u');
});

test('consumer table: one per version per worker; lookups answer unknown, disabled or the consumer', () => {
  const compiled = compileConfig(config(), 'test.yaml').consumers!;
  const again = compileConfig(config(), 'test.yaml').consumers!;
  assert.equal(compiled.version, again.version);
  assert.equal(consumerTableFor(compiled), consumerTableFor(again), 'an unchanged consumer set keeps its table');
  const table = new ConsumerTable(compiled);
  assert.equal(table.size, 4);
  assert.equal(table.lookup('nope'), KEY_UNKNOWN);
  assert.equal(table.lookup(KEY_OFF), KEY_DISABLED);
  const c = table.lookup(KEY_B);
  assert.ok(typeof c === 'object' && c.name === 'globex');
});

test('config errors: duplicates, a hash in two consumers (both named), unknown routes, bad hashes and headers', () => {
  const dup = compileError(config({
    consumers: [
      { name: 'a', keys: [{ id: 'k', hash: keyHashText(KEY_A1) }, { id: 'k', hash: keyHashText(KEY_A2) }], routes: ['apii'] },
      { name: 'b', keys: [{ id: 'x', hash: keyHashText(KEY_A1) }] },
      { name: 'a' },
    ],
  }));
  assert.match(dup, /consumers\[0\]\.keys\[1\]\.id.*duplicate key id "k" in consumer "a"/);
  assert.match(dup, /consumers\[1\]\.keys\[0\]\.hash.*also the hash of key "k" of consumer "a" \(consumers\[0\]\.keys\[0\]\)/);
  assert.match(dup, /consumers\[2\]\.name.*duplicate consumer name "a" \(also consumers\[0\]\)/);
  assert.match(dup, /consumers\[0\]\.routes\[0\].*unknown route "apii".*did you mean "api"/i);

  const bad = compileError(config({
    consumers: [{
      name: 'c',
      headers: { 'X-Ok': 'a\r\nX-Evil: 1', 'Host': 'x', 'X_Under': 'y' },
      keys: [{ id: 'k', hash: 'plain-key' }, { id: 'k2', hash: 'sha256:abc' }],
    }],
  }));
  assert.match(bad, /consumers\[0\]\.headers.*control characters/);
  assert.match(bad, /consumers\[0\]\.headers.*Host/);
  assert.match(bad, /consumers\[0\]\.headers.*"_"/);
  assert.match(bad, /consumers\[0\]\.keys\[0\]\.hash.*never written in clear/);
  assert.match(bad, /consumers\[0\]\.keys\[1\]\.hash.*64 hex digits or 43 base64url/);

  const header = compileError(config({}, { header: 'X-Consumer-Id' }));
  assert.match(header, /routes\[0\]\.key_auth\.header.*metadata header/);
});

test('one pass: a consumer the schema refuses does not hide the other consumers\' and the routes\' problems', () => {
  const text = compileError(config({
    consumers: [
      { name: 'a', keys: [{ id: 'k', hash: 'sha256:nothex' }], bogus: 1 } as never,
      { name: 'b', keys: [{ id: 'k', hash: keyHashText(KEY_A1) }], routes: ['nope'] },
      { name: 'b' },
    ],
  }));
  assert.match(text, /consumers\[0\]\.keys\[0\]\.hash/);
  assert.match(text, /consumers\[0\].*unknown key/);
  assert.match(text, /consumers\[1\]\.routes\[0\].*unknown route "nope"/);
  assert.match(text, /consumers\[2\]\.name.*duplicate consumer name "b"/);
});

test('rate limit key: consumer: only on key_auth routes; a consumer\'s own rate replaces the limit\'s for its bucket', () => {
  // Per hour: a pause of the machine between the requests below refills no token.
  const limits = { per_consumer: { key: 'consumer', rate: 100, per: '1h', burst: 3 } };
  const noKeyAuth = compileError(config({ rate_limits: limits, routes: [{ name: 'api', match: { prefix: '/' }, service: 's', rate_limit: ['per_consumer'] }], consumers: [] }));
  assert.match(noKeyAuth, /routes\[0\]\.rate_limit\[0\].*keyed by consumer, but the route has no key_auth/);

  const raw = config({ rate_limits: limits });
  raw.consumers![1] = { ...raw.consumers![1], routes: undefined, rate_limit: { rate: 1, per: '1m', burst: 1 } };
  (raw.routes as { rate_limit?: string[] }[])[0].rate_limit = ['per_consumer'];
  const env = { ...envOf(raw), rateLimitTable: createBucketTable(1024) };
  const auth = keyAuth.build(compiledFilterConfig(keyAuth, raw, 'api'), env);
  const limit = rateLimit.build(compiledFilterConfig(rateLimit, raw, 'api'), env);
  const send = (key: string) => {
    const { ctx, replies } = fakeContext({ headers: ['x-api-key', key] });
    assert.equal(auth.onRequest(ctx), NEXT);
    return { verdict: limit.onRequest(ctx), replies, ctx };
  };
  // acme: the limit's burst of 3, counted apart from globex.
  for (let i = 0; i < 3; i++) assert.equal(send(KEY_A1).verdict, NEXT);
  // The second key of the same consumer draws on the same bucket.
  const fourth = send(KEY_A2);
  assert.equal(fourth.verdict, REPLY);
  assert.equal(fourth.replies[0].spec.code, 'rate_limited');
  // globex: its own burst of 1, and X-RateLimit-Limit says so.
  const g = send(KEY_B);
  assert.equal(g.verdict, NEXT);
  assert.equal(g.ctx.rateLimitLimit, '1');
  const head = fakeHead(200);
  limit.onResponse!(g.ctx, head);
  assert.deepEqual(valuesOf(head.headers, 'ratelimit-policy'), ['"per_consumer";q=1;w=60'], 'the policy of its own rate');
  const acmeHead = fakeHead(200);
  limit.onResponse!(send(KEY_A1).ctx, acmeHead);
  assert.deepEqual(valuesOf(acmeHead.headers, 'ratelimit-policy'), ['"per_consumer";q=3;w=108'], 'the limit\'s policy');
  assert.equal(send(KEY_B).verdict, REPLY);
});

test('config/examples/api-keys.yaml loads and passes lobby check (so it never rots)', async () => {
  const { fileURLToPath } = await import('node:url');
  const { loadConfigFile } = await import('../../src/control/config-load.js');
  const { runCheck } = await import('../../src/control/check.js');
  const file = fileURLToPath(new URL('../../../config/examples/api-keys.yaml', import.meta.url));
  const loaded = await loadConfigFile(file);
  assert.deepEqual(loaded.routes.map((r) => r.filters.map((f) => f.name)), [['key-auth', 'rate-limit'], ['key-auth', 'rate-limit'], ['identity-strip']]);
  assert.equal(loaded.consumers?.keyCount, 3);
  const table = new ConsumerTable(loaded.consumers!);
  const acme = table.lookup('acme-live-key-2026-0123456789');
  assert.ok(typeof acme === 'object' && acme.name === 'acme');
  const sink = { text: '', write(t: string) { this.text += t; return true; } };
  assert.equal(await runCheck(file, sink, sink), 0, sink.text);
});

test('consumer headers: one name once (ignoring case), and never a header a token provider injects', () => {
  const text = compileError(config({
    auth: { providers: [{ name: 'p', issuer: 'i', algorithms: ['HS256'], secret: 'k'.repeat(32), claims_to_headers: { sub: 'X-User-Id' } }] },
    consumers: [
      { name: 'a', headers: { 'X-Team': 'a', 'x-team': 'root' }, keys: [{ id: 'k', hash: keyHashText('key-a-0123456789') }] },
      { name: 'b', headers: { 'X-User-Id': 'svc-b' }, keys: [{ id: 'k', hash: keyHashText('key-b-0123456789') }] },
    ],
  }));
  assert.match(text, /consumers\[0\]\.headers\.x-team.*names the header "x-team" twice/);
  // On a route with auth and key_auth, such a header would replace the token's verified X-User-Id.
  assert.match(text, /consumers\[1\]\.headers\.X-User-Id.*identity header an auth provider injects/);
});
