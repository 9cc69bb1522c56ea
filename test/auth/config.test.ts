// `auth` and `routes[].auth` in the config: what compiles into which filters, and every
// rule with the key path it is reported at.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { detachedKeyPair } from '../helpers/keys.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/control/config-load.js';
import { ConfigError } from '../../src/control/config-error.js';
import type { CompiledConfig } from '../../src/shared/compiled-config.js';
import type { AuthJwtFilterConfig, IdentityStripFilterConfig } from '../../src/shared/auth-config.js';

let dir: string;
let file: string;
const rsa = detachedKeyPair({ type: 'rsa', bits: 2048 });
const rsaJwk = JSON.stringify({ ...rsa.publicKey.export({ format: 'jwk' }), kid: 'r1' });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lobby-auth-config-'));
  file = join(dir, 'gateway.yaml');
  await writeFile(join(dir, 'keys.json'), `{"keys":[${rsaJwk}]}`);
  await writeFile(join(dir, 'key.pem'), String(rsa.publicKey.export({ type: 'spki', format: 'pem' })));
  await writeFile(join(dir, 'private.pem'), String(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' })));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const BASE = `services: { s: { targets: ["http://127.0.0.1:9001"] } }\n`;

function load(text: string, env: NodeJS.ProcessEnv = {}): CompiledConfig {
  return loadConfigText(BASE + text, file, env);
}

function issues(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    load(text, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
  assert.fail('expected the config to be rejected');
}

const PROVIDER = `
auth:
  providers:
    - name: main
      issuer: https://auth.example.test
      audiences: [api]
      jwks_uri: http://127.0.0.1:9100/.well-known/jwks.json
      algorithms: [RS256, ES256]
      clock_skew_s: 30
      claims_to_headers: { sub: X-User-Id, scope: X-User-Scopes, tenant: X-Tenant-Id }
`;

describe('compiled filters', () => {
  it('the issue example: auth-jwt on the route, identity-strip on the others', () => {
    const c = load(`${PROVIDER}
routes:
  - name: users
    match: { prefix: /v1/users }
    service: s
    auth: { provider: main, scopes: [users:read] }
  - name: open
    match: { prefix: /open }
    service: s
`);
    const [users, open] = c.routes;
    assert.equal(users.filters.length, 1);
    assert.equal(users.filters[0].name, 'auth-jwt');
    const cfg = users.filters[0].config as AuthJwtFilterConfig;
    assert.deepEqual(cfg.scopes, ['users:read']);
    assert.equal(cfg.optional, false);
    assert.deepEqual(cfg.stripHeaders, ['x-tenant-id', 'x-user-id', 'x-user-scopes']);
    assert.deepEqual(cfg.provider!.spec.claimsToHeaders, [['sub', 'x-user-id'], ['scope', 'x-user-scopes'], ['tenant', 'x-tenant-id']]);
    assert.deepEqual(cfg.provider!.jwks, {
      uri: 'http://127.0.0.1:9100/.well-known/jwks.json', minTtlS: 60, maxTtlS: 86400, defaultTtlS: 600, refetchCooldownS: 30, fetchTimeoutMs: 5000,
    });
    assert.equal(cfg.provider!.keys, null);
    assert.deepEqual(cfg.runtime, {
      mode: 'pool', threads: 1, concurrentTasksPerThread: 16, atomics: 'async', maxQueue: 256, taskTimeoutMs: 1000,
      cacheEntries: 10000, cacheMaxBytes: 32 * 1024 * 1024, cacheMaxTtlS: 3600, negativeTtlS: 30,
    });
    assert.deepEqual(open.filters, [{ name: 'identity-strip', config: { stripHeaders: ['x-tenant-id', 'x-user-id', 'x-user-scopes'] } satisfies IdentityStripFilterConfig }]);
  });

  it('no filters at all without identity headers', () => {
    const c = load(`
auth:
  providers: [ { name: p, issuer: i, jwks_uri: "http://127.0.0.1:1/k", algorithms: [ES256] } ]
routes: [ { name: r, match: { prefix: / }, service: s } ]
`);
    assert.deepEqual(c.routes[0].filters, []);
  });

  it('secret from the environment, keys_file as JWKS or PEM, inline keys', () => {
    const c = load(`
auth:
  providers:
    - { name: h, issuer: i, secret: "\${JWT_SECRET}", algorithms: [HS256] }
    - { name: j, issuer: i, keys_file: keys.json, algorithms: [RS256, PS256] }
    - { name: p, issuer: i, keys_file: ${join(dir, 'key.pem')}, algorithms: [RS256] }
    - { name: k, issuer: i, keys: [${rsaJwk}], algorithms: [RS256] }
routes:
  - { name: h, match: { prefix: /h }, service: s, auth: { provider: h } }
  - { name: j, match: { prefix: /j }, service: s, auth: { provider: j } }
  - { name: p, match: { prefix: /p }, service: s, auth: { provider: p, optional: true } }
  - { name: k, match: { prefix: /k }, service: s, auth: { provider: k } }
`, { JWT_SECRET: 's'.repeat(32) });
    const cfg = (i: number) => c.routes[i].filters[0].config as AuthJwtFilterConfig;
    assert.deepEqual(cfg(0).provider!.keys, [{ kty: 'oct', k: Buffer.from('s'.repeat(32)).toString('base64url') }]);
    assert.equal(cfg(1).provider!.keys![0].kid, 'r1');
    assert.equal(cfg(2).provider!.keys![0].kty, 'RSA');
    assert.equal(cfg(2).optional, true);
    assert.equal(cfg(3).provider!.keys![0].kid, 'r1');
    assert.notEqual(cfg(1).provider!.fingerprint, cfg(3).provider!.fingerprint);
  });
});

describe('rejected auth configs', () => {
  const route = (provider: string) => `routes: [ { name: r, match: { prefix: / }, service: s, auth: { provider: ${provider} } } ]\n`;

  it('an unknown provider', () => {
    assert.deepEqual(issues(PROVIDER + route('mian')), ['routes[0].auth.provider: unknown provider "mian" (did you mean "main"? defined providers: main)']);
    assert.deepEqual(issues(route('main')), ['routes[0].auth.provider: unknown provider "main" (no auth.providers are defined)']);
  });

  it('key sources: exactly one', () => {
    assert.deepEqual(issues(`auth: { providers: [ { name: p, issuer: i, algorithms: [RS256] } ] }\n`),
      ['auth.providers[0]: needs one key source: jwks_uri, keys_file, keys or secret']);
    assert.deepEqual(issues(`auth: { providers: [ { name: p, issuer: i, jwks_uri: "http://a/k", keys_file: x.json, algorithms: [RS256] } ] }\n`)[0],
      'auth.providers[0]: has jwks_uri and keys_file; use exactly one key source');
  });

  it('algorithms against key types', () => {
    const mixed = issues(`auth: { providers: [ { name: p, issuer: i, secret: "${'s'.repeat(32)}", algorithms: [HS256, RS256] } ] }\n`);
    assert.ok(mixed.some((m) => m.startsWith('auth.providers[0].algorithms: mixes HMAC (HS256) and public-key algorithms (RS256)')), mixed.join('\n'));
    assert.ok(mixed.some((m) => m.startsWith('auth.providers[0].secret: is only for HS256/HS384/HS512')), mixed.join('\n'));
    assert.deepEqual(issues(`auth: { providers: [ { name: p, issuer: i, jwks_uri: "http://a/k", algorithms: [HS256] } ] }\n`),
      ['auth.providers[0].algorithms: HS256 need a shared secret (secret, or oct keys in keys/keys_file); a JWKS endpoint publishes public keys only']);
    assert.deepEqual(issues(`auth: { providers: [ { name: p, issuer: i, keys_file: keys.json, algorithms: [RS256, ES256] } ] }\n`),
      ['auth.providers[0].algorithms: ES256 has no key that can verify it (keys: RSA (kid r1))']);
    assert.deepEqual(issues(`auth: { providers: [ { name: p, issuer: i, secret: short, algorithms: [HS256] } ] }\n`),
      ['auth.providers[0].secret: is 5 bytes; HS256 needs a secret of at least 32 bytes (RFC 7518 §3.2)']);
    assert.match(issues(`auth: { providers: [ { name: p, issuer: i, secret: x, algorithms: [none] } ] }\n`)[0],
      /^auth\.providers\[0\]\.algorithms\[0\]: must be one of "HS256", .*got the string "none"$/);
  });

  it('private keys and unusable keys', () => {
    assert.match(issues(`auth: { providers: [ { name: p, issuer: i, keys_file: private.pem, algorithms: [RS256] } ] }\n`)[0],
      /^auth\.providers\[0\]\.keys_file: .* contains a private key \(PRIVATE KEY\); give the public key only$/);
    const priv = JSON.stringify(rsa.privateKey.export({ format: 'jwk' }));
    assert.match(issues(`auth: { providers: [ { name: p, issuer: i, keys: [${priv}], algorithms: [RS256] } ] }\n`)[0],
      /^auth\.providers\[0\]\.keys\[0\]: contains private key material \(d, p, q, dp, dq, qi\)/);
    assert.match(issues(`auth: { providers: [ { name: p, issuer: i, keys: [ { kty: EC, crv: P-256 } ], algorithms: [ES256] } ] }\n`)[0],
      /^auth\.providers\[0\]\.keys\[0\]: EC key needs "x" and "y"$/);
    assert.match(issues(`auth: { providers: [ { name: p, issuer: i, keys_file: missing.json, algorithms: [RS256] } ] }\n`)[0],
      /^auth\.providers\[0\]\.keys_file: cannot read .*missing\.json \(ENOENT\)$/);
  });

  it('identity headers, scopes, jwks_cache, duplicates', () => {
    const bad = issues(`
auth:
  providers:
    - name: p
      issuer: i
      jwks_uri: "ftp://x/k"
      algorithms: [RS256]
      claims_to_headers: { sub: Host, tenant: "x y", email: X_Mail, a: X-A, b: x-a }
      jwks_cache: { min_ttl_s: 100, max_ttl_s: 10 }
    - { name: p, issuer: i, secret: "${'s'.repeat(32)}", algorithms: [HS256], jwks_cache: {} }
routes: [ { name: r, match: { prefix: / }, service: s, auth: { provider: p, scopes: ["a b", 'q"'] } } ]
`);
    assert.deepEqual(bad, [
      'auth.providers[0].jwks_uri: must be an http:// or https:// URL',
      'auth.providers[0].claims_to_headers.sub: cannot be "Host": the gateway or HTTP owns that header',
      'auth.providers[0].claims_to_headers.tenant: must be an HTTP header name (letters, digits and !#$%&\'*+.^`|~-)',
      'auth.providers[0].claims_to_headers.email: must not contain "_" (some servers read X_User as X-User; use "-")',
      // Reported in the same pass: provider 0 failed the schema, but its name still counts.
      'auth.providers[1].name: duplicate provider name "p" (also auth.providers[0])',
      'routes[0].auth.scopes[0]: must be a scope token: visible ASCII without spaces, " or \\',
      'routes[0].auth.scopes[1]: must be a scope token: visible ASCII without spaces, " or \\',
    ]);
    const rel = issues(`
auth:
  providers:
    - { name: p, issuer: i, jwks_uri: "http://x/k", algorithms: [RS256], claims_to_headers: { a: X-A, b: x-a }, jwks_cache: { min_ttl_s: 100, max_ttl_s: 10 } }
    - { name: p, issuer: i, secret: "${'s'.repeat(32)}", algorithms: [HS256] }
    - { name: q, issuer: i, secret: "${'s'.repeat(32)}", algorithms: [HS256], jwks_cache: {} }
`);
    assert.deepEqual(rel, [
      'auth.providers[0].jwks_cache.min_ttl_s: 100 is more than max_ttl_s 10',
      'auth.providers[0].claims_to_headers.b: header x-a is already filled from claim "a"',
      'auth.providers[1].name: duplicate provider name "p" (also auth.providers[0])',
      'auth.providers[2].jwks_cache: applies only with jwks_uri',
    ]);
  });

  it('verifier and token_cache bounds', () => {
    const bad = issues(`auth: { verifier: { mode: offload, threads: 0, atomics: fast, max_queue: 0 }, token_cache: { entries: -1, colour: red } }\n`);
    assert.deepEqual(bad.map((m) => m.split(':')[0]), [
      'auth.verifier.mode', 'auth.verifier.threads', 'auth.verifier.atomics', 'auth.verifier.max_queue',
      'auth.token_cache.entries', 'auth.token_cache.colour',
    ]);
  });
});

describe('config/examples/auth.yaml', () => {
  it('loads and passes lobby check (so it never rots)', async () => {
    const { fileURLToPath } = await import('node:url');
    const { loadConfigFile } = await import('../../src/control/config-load.js');
    const { runCheck } = await import('../../src/control/check.js');
    const example = fileURLToPath(new URL('../../../config/examples/auth.yaml', import.meta.url));
    process.env.JWT_SECRET = 'an-example-secret-of-at-least-32-bytes';
    const config = await loadConfigFile(example);
    assert.deepEqual(config.routes.map((r) => r.filters.map((f) => f.name)), [['auth-jwt'], ['auth-jwt'], ['auth-jwt'], ['identity-strip']]);
    const sink = { text: '', write(t: string) { this.text += t; return true; } };
    assert.equal(await runCheck(example, sink, sink), 0, sink.text);
  });
});
