// Introspection providers (kind: introspection) in the config, the checks of an introspection
// response (judgeIntrospection), the JWS-shape rule that splits tokens between a route's two
// providers, and the example config.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigText, loadConfigFile, parseConfigText } from '../../src/control/config-load.js';
import { runCheck } from '../../src/control/check.js';
import { redacted, REDACTED } from '../../src/control/config-store.js';
import { configIssues } from '../helpers/config-issues.js';
import { judgeIntrospection } from '../../src/control/introspection.js';
import { isJwsCompact } from '../../src/data/auth/extract.js';
import type { AuthJwtFilterConfig, CompiledIntrospectionProvider, IdentityStripFilterConfig } from '../../src/shared/auth-config.js';

let dir: string;
let file: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lobby-introspection-config-'));
  file = join(dir, 'gateway.yaml');
  await writeFile(join(dir, 'secret.txt'), 'file-secret-value\n');
});
after(async () => { await rm(dir, { recursive: true, force: true }); });

const BASE = `services: { s: { targets: ["http://127.0.0.1:9001"] } }\n`;
const OPAQUE = `{ name: o, kind: introspection, introspection_endpoint: "http://127.0.0.1:9100/introspect", client_id: lobby, client_secret: s3cret, claims_to_headers: { sub: X-User-Id } }`;
const JWT = `{ name: j, issuer: i, secret: "${'k'.repeat(32)}", algorithms: [HS256], claims_to_headers: { sub: X-User-Id, tenant: X-Tenant } }`;
const load = (text: string) => loadConfigText(BASE + text, file, {});
const issues = (text: string) => configIssues(() => load(text));

describe('introspection providers in the config', () => {
  it('compile: the route gets both providers; the workers get no endpoint or secret; the control plane gets them', () => {
    const c = load(`auth: { providers: [${JWT}, ${OPAQUE}] }
routes:
  - { name: r, match: { prefix: /r }, service: s, auth: { providers: [o, j], scopes: [read] } }
  - { name: free, match: { prefix: /f }, service: s }
`);
    const cfg = c.routes[0].filters[0].config as AuthJwtFilterConfig;
    assert.equal(cfg.provider!.name, 'j');
    assert.equal(cfg.introspection!.name, 'o');
    assert.equal(cfg.introspection!.onUnavailable, 'deny');
    assert.ok(!JSON.stringify(cfg).includes('s3cret') && !JSON.stringify(cfg).includes('/introspect'), 'nothing of the call reaches the route data');
    const control = c.introspection!.providers[0] as CompiledIntrospectionProvider;
    assert.deepEqual({ ...control, fingerprint: '' }, {
      name: 'o', fingerprint: '', endpoint: 'http://127.0.0.1:9100/introspect', clientId: 'lobby', clientSecret: 's3cret',
      clientAuth: 'client_secret_basic', tokenTypeHint: null, issuer: null, audiences: [], clockSkewS: 30,
      claimsToHeaders: [['sub', 'x-user-id']], cacheTtlS: 300, negativeTtlS: 10, timeoutMs: 2000,
    });
    assert.equal(control.fingerprint, cfg.introspection!.fingerprint);
    assert.deepEqual(cfg.stripHeaders, ['x-tenant', 'x-user-id']);
    assert.deepEqual((c.routes[1].filters[0].config as IdentityStripFilterConfig).stripHeaders, ['x-tenant', 'x-user-id'], 'identity headers of every kind are stripped everywhere');
  });

  it('client_secret_file is read relative to the config file; a changed secret changes the fingerprint', () => {
    const a = load(`auth: { providers: [{ name: o, kind: introspection, introspection_endpoint: "http://a/i", client_id: c, client_secret_file: secret.txt }] }
routes: [{ name: r, match: { prefix: /r }, service: s, auth: { provider: o } }]`);
    assert.equal(a.introspection!.providers[0].clientSecret, 'file-secret-value');
    const b = load(`auth: { providers: [{ name: o, kind: introspection, introspection_endpoint: "http://a/i", client_id: c, client_secret: other }] }
routes: [{ name: r, match: { prefix: /r }, service: s, auth: { provider: o } }]`);
    assert.notEqual(a.introspection!.providers[0].fingerprint, b.introspection!.providers[0].fingerprint);
  });

  it('schema issues, and the rules between the values that passed it, in one pass', () => {
    assert.deepEqual(issues(`auth: { providers: [
  { name: o, kind: introspection, secret: "${'k'.repeat(32)}", algorithms: [HS256], introspection_endpoint: "ftp://x/", client_auth: private_key_jwt },
  { name: p, kind: introspection, introspection_endpoint: "http://user:pw@x/", client_id: c, client_secret: a, client_secret_file: secret.txt },
  { name: j, issuer: i, secret: "${'k'.repeat(32)}", algorithms: [HS256], cache_ttl_s: 5, client_id: c },
  { name: q, introspection_endpoint: "http://x/", client_id: c, client_secret: a } ] }\n`), [
      'auth.providers[0].introspection_endpoint: must be an http:// or https:// URL',
      'auth.providers[0].client_auth: must be one of "client_secret_basic", "client_secret_post", got the string "private_key_jwt"',
      'auth.providers[1].introspection_endpoint: must not contain credentials (user:password@)',
      'auth.providers[2].client_id: applies only to kind: introspection providers',
      'auth.providers[2].cache_ttl_s: applies only to kind: introspection providers',
      'auth.providers[3].introspection_endpoint: applies only to kind: introspection providers',
      'auth.providers[3].client_id: applies only to kind: introspection providers',
      'auth.providers[3].client_secret: applies only to kind: introspection providers',
      'auth.providers[3]: needs issuer (kind: jwt)',
      'auth.providers[3]: needs algorithms (kind: jwt)',
      'auth.providers[3]: needs one key source: jwks_uri, keys_file, keys or secret',
    ]);
  });

  it('rules between values (the schema passes)', () => {
    assert.deepEqual(issues(`auth: { providers: [
  { name: o, kind: introspection, secret: "${'k'.repeat(32)}", algorithms: [HS256] },
  { name: p, kind: introspection, introspection_endpoint: "http://x/", client_id: c, client_secret: a, client_secret_file: secret.txt },
  { name: j, issuer: i, secret: "${'k'.repeat(32)}", algorithms: [HS256], cache_ttl_s: 5, client_id: c },
  { name: q, introspection_endpoint: "http://x/", client_id: c, client_secret: a },
  ${OPAQUE.replace('name: o', 'name: o2')}, ${OPAQUE.replace('name: o', 'name: open').replace('client_secret: s3cret', 'client_secret: s3cret, on_unavailable: allow_anonymous')},
  ${JWT.replace('name: j', 'name: j2')} ] }
routes:
  - { name: a, match: { prefix: /a }, service: s, auth: { providers: [o2, open] } }
  - { name: b, match: { prefix: /b }, service: s, auth: { providers: [j2, nope] } }
  - { name: c, match: { prefix: /c }, service: s, auth: { provider: j2, providers: [j2] } }
  - { name: d, match: { prefix: /d }, service: s, auth: { scopes: [x] } }
  - { name: e, match: { prefix: /e }, service: s, auth: { provider: open } }
  - { name: f, match: { prefix: /f }, service: s, auth: { provider: open, optional: true } }
`), [
      'auth.providers[0].secret: applies only to kind: jwt providers (this one is kind: introspection)',
      'auth.providers[0].algorithms: applies only to kind: jwt providers (this one is kind: introspection)',
      'auth.providers[0]: needs introspection_endpoint (kind: introspection)',
      'auth.providers[0]: needs client_id (kind: introspection)',
      'auth.providers[0]: needs client_secret or client_secret_file (kind: introspection)',
      'auth.providers[1].client_secret_file: has client_secret too; use one of them',
      'auth.providers[2].client_id: applies only to kind: introspection providers',
      'auth.providers[2].cache_ttl_s: applies only to kind: introspection providers',
      'auth.providers[3].introspection_endpoint: applies only to kind: introspection providers',
      'auth.providers[3].client_id: applies only to kind: introspection providers',
      'auth.providers[3].client_secret: applies only to kind: introspection providers',
      'auth.providers[3]: needs issuer (kind: jwt)',
      'auth.providers[3]: needs algorithms (kind: jwt)',
      'auth.providers[3]: needs one key source: jwks_uri, keys_file, keys or secret',
      'routes[0].auth.providers[1]: o2 is an introspection provider too; a route takes at most one of each kind (one jwt, one introspection)',
      'routes[1].auth.providers[1]: unknown provider "nope" (defined providers: o, p, j, q, o2, open, j2)',
      'routes[2].auth: has provider and providers; use one of them',
      'routes[3].auth: needs provider (one provider) or providers (a jwt and an introspection provider)',
      'routes[4].auth.provider: provider open sets on_unavailable: allow_anonymous, which only an optional route can use; set optional: true on this route or use a provider with on_unavailable: deny',
    ]);
  });

  it('the admin API shows client_secret redacted', () => {
    const raw = parseConfigText(BASE + `auth: { providers: [${OPAQUE}] }\n`, file, {});
    assert.equal(redacted(raw).auth!.providers[0].client_secret, REDACTED);
    assert.equal(raw.auth!.providers[0].client_secret, 's3cret');
  });
});

describe('judgeIntrospection: an introspection response, checked as a JWT\'s claims are', () => {
  const p: CompiledIntrospectionProvider = {
    name: 'o', fingerprint: 'f', endpoint: 'http://x/', clientId: 'c', clientSecret: 's', clientAuth: 'client_secret_basic', tokenTypeHint: null,
    issuer: 'https://as', audiences: ['api'], clockSkewS: 30, claimsToHeaders: [['sub', 'x-user-id'], ['client_id', 'x-client-id'], ['scope', 'x-scopes']],
    cacheTtlS: 300, negativeTtlS: 10, timeoutMs: 1000,
  };
  const now = 1_800_000_000_000;
  const nowS = now / 1000;
  const good = { active: true, iss: 'https://as', aud: ['other', 'api'], sub: 'u1', client_id: 'app', scope: 'a b', exp: nowS + 60 };
  const code = (body: Record<string, unknown>) => { const o = judgeIntrospection(body, p, now); return o.outcome === 'refused' ? o.code : o.outcome; };

  it('active: identity headers, scopes, subject, and the cache time bounded by exp and cache_ttl_s', () => {
    assert.deepEqual(judgeIntrospection(good, p, now), {
      outcome: 'active', headers: ['x-user-id', 'u1', 'x-client-id', 'app', 'x-scopes', 'a b'], scopes: ['a', 'b'], subject: 'u1', expiresAt: (nowS + 60) * 1000,
    });
    assert.equal((judgeIntrospection({ ...good, exp: nowS + 3600 }, p, now) as { expiresAt: number }).expiresAt, now + 300_000);
    assert.equal((judgeIntrospection({ ...good, exp: undefined }, p, now) as { expiresAt: number }).expiresAt, now + 300_000);
  });

  it('refusals, each cached for negative_ttl_s', () => {
    assert.equal(code({ active: false }), 'inactive');
    assert.equal(code({ ...good, active: 'true' }), 'inactive', 'only the JSON boolean true is active');
    assert.equal(code({ ...good, exp: nowS - 31 }), 'expired');
    assert.equal(code({ ...good, exp: nowS - 10 }), 'active', 'within the skew');
    assert.equal(code({ ...good, nbf: nowS + 31 }), 'not_yet_valid');
    assert.equal(code({ ...good, exp: '1' }), 'bad_claims');
    assert.equal(code({ ...good, iss: 'https://evil' }), 'bad_issuer');
    assert.equal(code({ ...good, aud: 'other' }), 'bad_audience');
    assert.equal(code({ ...good, aud: undefined }), 'bad_audience');
    assert.equal(code({ ...good, scope: ['a'] }), 'bad_claims', 'RFC 7662: scope is a string');
    assert.deepEqual(judgeIntrospection({ active: false }, p, now), { outcome: 'refused', code: 'inactive', expiresAt: now + 10_000 });
  });

  it('an unsafe member value is not injected (the JWT path\'s rule)', () => {
    const o = judgeIntrospection({ ...good, sub: 'u1\r\nx-admin: 1', client_id: 'ä' }, p, now);
    assert.equal(o.outcome, 'active');
    assert.deepEqual((o as { headers: string[] }).headers, ['x-scopes', 'a b']);
  });
});

describe('isJwsCompact: which of a route\'s providers a token goes to', () => {
  it('three non-empty base64url segments', () => {
    assert.equal(isJwsCompact('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'), true);
    for (const t of ['6LyhWn9u0wNGNcxLJKgmH2on5WhEVFaLIZfDU8LyF2s', 'a.b', 'a.b.c.d', '.b.c', 'a..c', 'a.b.', 'a.b+.c', 'a.b.c=']) {
      assert.equal(isJwsCompact(t), false, t);
    }
  });
});

describe('config/examples/opaque-tokens.yaml', () => {
  it('loads and passes lobby check (so it never rots)', async () => {
    const example = fileURLToPath(new URL('../../../config/examples/opaque-tokens.yaml', import.meta.url));
    process.env.INTROSPECTION_SECRET = 'an-example-introspection-secret';
    const config = await loadConfigFile(example);
    assert.deepEqual(config.routes.map((r) => r.filters.map((f) => f.name)), [['auth-jwt'], ['auth-jwt'], ['auth-jwt'], ['identity-strip']]);
    assert.deepEqual(config.introspection!.providers.map((p) => p.name), ['opaque', 'opaque-public']);
    const sink = { text: '', write(t: string) { this.text += t; return true; } };
    assert.equal(await runCheck(example, sink, sink), 0, sink.text);
  });
});

describe('loadtest scenario introspection', () => {
  it('compiles with the run\'s endpoint, and the endpoint\'s answer passes the route\'s checks', async () => {
    const { loadScenario } = await import('../../loadtest/scenario.js');
    const { lobbyConfigObject } = await import('../../loadtest/lobby.js');
    const { withIntrospectionUrl, INTROSPECTION_RESPONSE } = await import('../../loadtest/introspection-endpoint.js');
    const { compileConfig } = await import('../../src/control/compile.js');
    const { bearerToken, hasScopes } = await import('../../src/data/auth/extract.js');
    const scenario = loadScenario('introspection');
    assert.equal(scenario.introspection, true);
    const overlay = withIntrospectionUrl(scenario.lobbyConfig, 'http://127.0.0.1:18087/introspect');
    const config = compileConfig(lobbyConfigObject({ host: '127.0.0.1', port: 18080, upstreamUrl: 'http://127.0.0.1:18081', upstreamConnections: 64, overlay }), 'introspection.yaml');
    const filter = config.routes[0].filters.find((f) => f.name === 'auth-jwt')!;
    const { scopes, introspection } = filter.config as AuthJwtFilterConfig;
    assert.ok(introspection);
    const token = bearerToken(scenario.headers.authorization)!;
    assert.equal(isJwsCompact(token), false, 'an opaque token');
    const provider = config.introspection!.providers[0];
    assert.equal(provider.endpoint, 'http://127.0.0.1:18087/introspect');
    const outcome = judgeIntrospection(JSON.parse(INTROSPECTION_RESPONSE), provider, Date.now());
    assert.equal(outcome.outcome, 'active');
    assert.ok(outcome.outcome === 'active' && hasScopes(outcome.scopes, scopes));
    assert.equal(outcome.outcome === 'active' && outcome.headers.length, 6, 'three identity headers injected');
  });
});
