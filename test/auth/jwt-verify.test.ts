// The node:crypto verifier (src/data/auth/jwt.ts) against tokens signed by jose: every
// supported algorithm, and every way a token must be refused, with its exact code.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { detachedKeyPair } from '../helpers/keys.js';
import { TokenVerifier, importJwk, type VerifyResult } from '../../src/data/auth/jwt.js';
import type { Jwk, JwtAlgorithm, VerifierSpec } from '../../src/shared/auth-config.js';
import { makeKey, rawToken, sign, unsignedToken, type TestKey } from '../helpers/jwt.js';

const ISS = 'https://issuer.test';
const NOW = Date.now();
const nowS = Math.floor(NOW / 1000);

function spec(algorithms: JwtAlgorithm[], extra: Partial<VerifierSpec> = {}): VerifierSpec {
  return {
    issuer: ISS, audiences: ['api'], algorithms, clockSkewS: 30, requireExp: true,
    claimsToHeaders: [['sub', 'x-user-id'], ['roles', 'x-roles'], ['n', 'x-n']], ...extra,
  };
}

const claims = (extra: Record<string, unknown> = {}) => ({ iss: ISS, aud: 'api', sub: 'u1', exp: nowS + 300, ...extra });

function code(r: VerifyResult): string {
  return r.ok ? 'ok' : r.code;
}

const ALL: JwtAlgorithm[] = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const keys = new Map<string, TestKey>();

before(async () => {
  for (const alg of ALL) keys.set(alg, await makeKey(alg, `kid-${alg}`));
});

describe('every supported algorithm', () => {
  for (const alg of ALL) {
    it(`${alg}: accepts a valid token, refuses a tampered one`, async () => {
      const key = keys.get(alg)!;
      const v = new TokenVerifier(spec([alg]), [key.jwk as Jwk]);
      const token = await sign(key, claims({ roles: ['a', 'b'], n: 7, scope: 'x y', scp: ['z'] }));
      const r = v.verify(token, NOW);
      assert.ok(r.ok, code(r));
      assert.deepEqual(r.headers, ['x-user-id', 'u1', 'x-roles', 'a b', 'x-n', '7']);
      assert.deepEqual(r.scopes, ['x', 'y', 'z']);
      assert.equal(r.exp, nowS + 300);
      const [h, p, s] = token.split('.');
      const flipped = s[0] === 'A' ? 'B' + s.slice(1) : 'A' + s.slice(1);
      assert.equal(code(v.verify(`${h}.${p}.${flipped}`, NOW)), 'bad_signature');
      const otherPayload = Buffer.from(JSON.stringify(claims({ sub: 'root' }))).toString('base64url');
      assert.equal(code(v.verify(`${h}.${otherPayload}.${s}`, NOW)), 'bad_signature');
    });
  }
});

describe('refusals', () => {
  let rs: TestKey;
  let v: TokenVerifier;
  before(() => {
    rs = keys.get('RS256')!;
    v = new TokenVerifier(spec(['RS256', 'ES256']), [rs.jwk as Jwk, keys.get('ES256')!.jwk as Jwk]);
  });

  it('alg none, and an algorithm outside the allowlist', async () => {
    assert.equal(code(v.verify(unsignedToken(claims()), NOW)), 'alg_not_allowed');
    assert.equal(code(v.verify(rawToken({ alg: 'none', kid: rs.kid }, claims(), ''), NOW)), 'alg_not_allowed');
    assert.equal(code(v.verify(rawToken({ alg: 'NONE' }, claims(), ''), NOW)), 'alg_not_allowed');
    assert.equal(code(v.verify(await sign({ ...rs, alg: 'RS384' }, claims()), NOW)), 'alg_not_allowed');
  });

  it('algorithm confusion: an HMAC token never meets an RSA key, even when HS256 is allowed', async () => {
    // A provider that (wrongly) allowed both: the RSA key still cannot verify HS256.
    const both = new TokenVerifier(spec(['RS256', 'HS256']), [rs.jwk as Jwk]);
    const forged = await sign({ alg: 'HS256', kid: rs.kid, signing: new TextEncoder().encode(JSON.stringify(rs.jwk)), jwk: { kty: 'oct' } }, claims());
    assert.equal(code(both.verify(forged, NOW)), 'key_mismatch');
    // With no kid, no candidate fits either.
    const noKid = await sign({ alg: 'HS256', kid: '', signing: new TextEncoder().encode('x'.repeat(32)), jwk: { kty: 'oct' } }, claims(), { header: { kid: null } });
    assert.equal(code(both.verify(noKid, NOW)), 'unknown_kid');
  });

  it('a key with its own alg only verifies that algorithm', async () => {
    const pinned = new TokenVerifier(spec(['RS256', 'PS256']), [{ ...rs.jwk, alg: 'RS256' } as Jwk]);
    assert.equal(code(pinned.verify(await sign({ ...rs, alg: 'PS256' }, claims()), NOW)), 'key_mismatch');
    assert.equal(code(pinned.verify(await sign(rs, claims()), NOW)), 'ok');
  });

  it('issuer, audience, exp, nbf (with skew), missing exp, claim types', async () => {
    const t = (c: Record<string, unknown>) => sign(rs, c);
    assert.equal(code(v.verify(await t(claims({ iss: 'other' })), NOW)), 'bad_issuer');
    assert.equal(code(v.verify(await t(claims({ iss: undefined })), NOW)), 'bad_issuer');
    assert.equal(code(v.verify(await t(claims({ aud: 'web' })), NOW)), 'bad_audience');
    assert.equal(code(v.verify(await t(claims({ aud: undefined })), NOW)), 'bad_audience');
    assert.equal(code(v.verify(await t(claims({ aud: ['web', 'api'] })), NOW)), 'ok');
    assert.equal(code(v.verify(await t(claims({ exp: nowS - 29 })), NOW)), 'ok');
    assert.equal(code(v.verify(await t(claims({ exp: nowS - 30 })), NOW)), 'expired');
    assert.equal(code(v.verify(await t(claims({ nbf: nowS + 29 })), NOW)), 'ok');
    assert.equal(code(v.verify(await t(claims({ nbf: nowS + 31 })), NOW)), 'not_yet_valid');
    assert.equal(code(v.verify(await t(claims({ exp: undefined })), NOW)), 'missing_exp');
    assert.equal(code(v.verify(await t(claims({ exp: String(nowS + 60) })), NOW)), 'bad_claims');
    assert.equal(code(v.verify(await t(claims({ nbf: 'soon' })), NOW)), 'bad_claims');
    assert.equal(code(v.verify(await t(claims({ iat: 'x' })), NOW)), 'bad_claims');
    assert.equal(code(v.verify(await t(claims({ scope: 5 })), NOW)), 'bad_claims');
    assert.equal(code(v.verify(await t(claims({ scp: [1] })), NOW)), 'bad_claims');
    const lax = new TokenVerifier(spec(['RS256'], { requireExp: false, audiences: [], clockSkewS: 0 }), [rs.jwk as Jwk]);
    const r = lax.verify(await t(claims({ exp: undefined, aud: undefined })), NOW);
    assert.ok(r.ok);
    assert.equal(r.exp, 0);
    assert.equal(code(lax.verify(await t(claims({ exp: nowS })), NOW)), 'expired', 'exp is exclusive without skew');
  });

  it('malformed tokens', async () => {
    const good = await sign(rs, claims());
    const [h, p, s] = good.split('.');
    for (const token of [
      '', 'a', 'a.b', '.b.c', 'a..c', `${good}.x`, `${h}.${p}.${s}=`, `${h}=.${p}.${s}`, `${h}.${p}.${s}+`,
      `${h}.${p}.${s}/`, `${h}.${p} .${s}`, `${h}.${p}.${s.slice(0, -1)}`.replace(/.$/, '\u00e9'),
      rawToken('{', claims()), rawToken('null', claims()), rawToken('[]', claims()), rawToken({ alg: 7 }, claims()),
      rawToken({ alg: 'RS256', kid: 1 }, claims()), rawToken({ alg: 'RS256', crit: ['b64'], b64: false }, claims()),
      'x'.repeat(20000),
    ]) {
      assert.equal(code(v.verify(token, NOW)), 'malformed', token.slice(0, 40));
    }
    // Well-formed but of the wrong length: a signature problem, not a structural one.
    assert.equal(code(v.verify(`${h}.${p}.${s.slice(0, -4)}`, NOW)), 'bad_signature');
    const es = await sign(keys.get('ES256')!, claims());
    assert.equal(code(v.verify(es.slice(0, -4), NOW)), 'bad_signature', 'ES256 signature shorter than r||s');
    // A payload that is not a JSON object, correctly signed.
    const { CompactSign } = await import('jose');
    const arrayPayload = await new CompactSign(new TextEncoder().encode('[1,2]')).setProtectedHeader({ alg: 'RS256', kid: rs.kid }).sign(rs.signing);
    assert.equal(code(v.verify(arrayPayload, NOW)), 'malformed');
  });

  it('unknown kid, kid-less tokens, no keys', async () => {
    const stranger = await makeKey('RS256', 'who');
    assert.equal(code(v.verify(await sign(stranger, claims()), NOW)), 'unknown_kid');
    assert.equal(code(v.verify(await sign(rs, claims(), { header: { kid: null } }), NOW)), 'ok', 'no kid: every fitting key is tried');
    assert.equal(code(v.verify(await sign(stranger, claims(), { header: { kid: null } }), NOW)), 'bad_signature');
    assert.equal(code(new TokenVerifier(spec(['RS256']), []).verify(await sign(rs, claims()), NOW)), 'no_keys');
  });

  it('claims_to_headers only takes values that are safe header values', async () => {
    const r = v.verify(await sign(rs, claims({ sub: 'a\r\nx-evil: 1', roles: { a: 1 }, n: 'caf\u00e9' })), NOW);
    assert.ok(r.ok);
    assert.deepEqual(r.headers, []);
  });
});

describe('keys', () => {
  it('refuses weak, foreign and unusable keys', () => {
    const weak = detachedKeyPair({ type: 'rsa', bits: 1024 }).publicKey.export({ format: 'jwk' }) as Jwk;
    assert.match((importJwk(weak) as { error: string }).error, /1024 bits/);
    assert.match((importJwk({ kty: 'oct', k: Buffer.alloc(16).toString('base64url') }) as { error: string }).error, /16 bytes/);
    assert.match((importJwk({ kty: 'EC', crv: 'secp256k1', x: 'a', y: 'b' }) as { error: string }).error, /curve/);
    assert.match((importJwk({ kty: 'OKP', crv: 'X25519', x: 'a' }) as { error: string }).error, /Ed25519/);
    assert.match((importJwk({ ...keys.get('RS256')!.jwk, use: 'enc' } as Jwk) as { error: string }).error, /use/);
    assert.match((importJwk({ ...keys.get('RS256')!.jwk, alg: 'ES256' } as Jwk) as { error: string }).error, /does not fit/);
    assert.match((importJwk({ kty: 'RSA', n: 'x', e: 'AQAB' }) as { error: string }).error, /cannot be imported|bits/);
  });

  it('a 32-byte oct key verifies HS256 only; 64 bytes all three', () => {
    const k32 = importJwk({ kty: 'oct', k: Buffer.alloc(32, 1).toString('base64url') });
    assert.deepEqual([...(k32 as unknown as { algs: Set<string> }).algs], ['HS256']);
    const k64 = importJwk({ kty: 'oct', k: Buffer.alloc(64, 1).toString('base64url') });
    assert.deepEqual([...(k64 as unknown as { algs: Set<string> }).algs], ['HS256', 'HS384', 'HS512']);
  });
});
