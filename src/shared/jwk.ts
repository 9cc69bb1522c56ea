// JWK primitives both planes use: which algorithms a key can verify, HMAC secret sizes, and
// the import of a JWK into a node:crypto KeyObject. The control plane checks configured keys
// and JWKS documents with them (src/filters/auth-jwt/compile.ts, src/control/jwks.ts); the
// verifier (src/data/auth/jwt.ts) imports the keys it verifies with through the same code, so
// a key the config check accepts is exactly a key the verifier can use.
import { constants, createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { JWT_ALGORITHMS, type Jwk, type JwtAlgorithm } from './auth-config.js';

export interface AlgorithmInfo {
  kind: 'hmac' | 'rsa' | 'pss' | 'ec' | 'eddsa';
  hash: string | null;
  /** HMAC: minimum key bytes (RFC 7518 §3.2); EC: bytes of one signature coordinate. */
  size: number;
  curve?: string;
}

export const ALG: Record<JwtAlgorithm, AlgorithmInfo> = {
  HS256: { kind: 'hmac', hash: 'sha256', size: 32 },
  HS384: { kind: 'hmac', hash: 'sha384', size: 48 },
  HS512: { kind: 'hmac', hash: 'sha512', size: 64 },
  RS256: { kind: 'rsa', hash: 'sha256', size: 0 },
  RS384: { kind: 'rsa', hash: 'sha384', size: 0 },
  RS512: { kind: 'rsa', hash: 'sha512', size: 0 },
  PS256: { kind: 'pss', hash: 'sha256', size: 0 },
  PS384: { kind: 'pss', hash: 'sha384', size: 0 },
  PS512: { kind: 'pss', hash: 'sha512', size: 0 },
  ES256: { kind: 'ec', hash: 'sha256', size: 32, curve: 'P-256' },
  ES384: { kind: 'ec', hash: 'sha384', size: 48, curve: 'P-384' },
  ES512: { kind: 'ec', hash: 'sha512', size: 66, curve: 'P-521' },
  EdDSA: { kind: 'eddsa', hash: null, size: 0 },
};

export const MIN_RSA_BITS = 2048;

/** Minimum key bytes of an HMAC algorithm (RFC 7518 §3.2: at least the hash size). */
export function hmacMinBytes(alg: 'HS256' | 'HS384' | 'HS512'): number {
  return ALG[alg].size;
}

export interface ImportedKey {
  kid: string | null;
  /** Algorithms this key may verify (before the provider's allowlist). */
  algs: ReadonlySet<string>;
  key: KeyObject;
  /** HMAC keys: the raw secret (createHmac takes it without a KeyObject lookup). */
  secret: Buffer | null;
  /** crypto.verify key arguments prepared once: RSASSA-PSS, and ECDSA with raw r||s signatures. */
  pssKey: { key: KeyObject; padding: number; saltLength: number };
  ecKey: { key: KeyObject; dsaEncoding: 'ieee-p1363' };
}

/** Imports one JWK for verification, or explains why it cannot be used. Private members are ignored. */
export function importJwk(jwk: Jwk): ImportedKey | { error: string } {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) return { error: 'is not a JWK object' };
  if (jwk.kid !== undefined && typeof jwk.kid !== 'string') return { error: '"kid" must be a string' };
  if (jwk.use !== undefined && jwk.use !== 'sig') return { error: `"use" is ${JSON.stringify(jwk.use)}, not "sig"` };
  if (jwk.key_ops !== undefined && (!Array.isArray(jwk.key_ops) || !jwk.key_ops.includes('verify'))) {
    return { error: '"key_ops" does not include "verify"' };
  }
  if (jwk.alg !== undefined && !(JWT_ALGORITHMS as readonly unknown[]).includes(jwk.alg)) {
    return { error: `"alg" ${JSON.stringify(jwk.alg)} is not a supported signature algorithm` };
  }
  const kid = typeof jwk.kid === 'string' ? jwk.kid : null;
  let algs: JwtAlgorithm[];
  let key: KeyObject;
  let secret: Buffer | null = null;
  try {
    switch (jwk.kty) {
      case 'RSA': {
        if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string') return { error: 'RSA key needs "n" and "e"' };
        key = createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' });
        const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
        if (bits < MIN_RSA_BITS) return { error: `RSA key of ${bits} bits; at least ${MIN_RSA_BITS} are required` };
        algs = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
        break;
      }
      case 'EC': {
        const alg = (['ES256', 'ES384', 'ES512'] as const).find((a) => ALG[a].curve === jwk.crv);
        if (!alg) return { error: `EC curve ${JSON.stringify(jwk.crv)} is not P-256, P-384 or P-521` };
        if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string') return { error: 'EC key needs "x" and "y"' };
        key = createPublicKey({ key: { kty: 'EC', crv: jwk.crv as string, x: jwk.x, y: jwk.y }, format: 'jwk' });
        algs = [alg];
        break;
      }
      case 'OKP': {
        if (jwk.crv !== 'Ed25519' && jwk.crv !== 'Ed448') return { error: `OKP curve ${JSON.stringify(jwk.crv)} is not Ed25519 or Ed448` };
        if (typeof jwk.x !== 'string') return { error: 'OKP key needs "x"' };
        key = createPublicKey({ key: { kty: 'OKP', crv: jwk.crv, x: jwk.x }, format: 'jwk' });
        algs = ['EdDSA'];
        break;
      }
      case 'oct': {
        if (typeof jwk.k !== 'string' || !isBase64url(jwk.k, 0, jwk.k.length)) return { error: 'oct key needs "k" (base64url)' };
        secret = Buffer.from(jwk.k, 'base64url');
        key = createSecretKey(secret);
        algs = (['HS256', 'HS384', 'HS512'] as const).filter((a) => secret!.length >= ALG[a].size);
        if (algs.length === 0) return { error: `HMAC key of ${secret.length} bytes; HS256 needs at least 32` };
        break;
      }
      default:
        return { error: `key type ${JSON.stringify(jwk.kty)} is not RSA, EC, OKP or oct` };
    }
  } catch (err) {
    return { error: `cannot be imported (${(err as Error).message})` };
  }
  if (jwk.alg !== undefined) {
    if (!algs.includes(jwk.alg as JwtAlgorithm)) return { error: `"alg" ${jwk.alg} does not fit a ${jwk.kty} key` };
    algs = [jwk.alg as JwtAlgorithm];
  }
  return {
    kid, algs: new Set(algs), key, secret,
    pssKey: { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
    ecKey: { key, dsaEncoding: 'ieee-p1363' },
  };
}

/** Algorithms a JWK can verify (for config checks), or the reason it cannot be used. */
export function jwkAlgorithms(jwk: Jwk): JwtAlgorithm[] | { error: string } {
  const imported = importJwk(jwk);
  return 'error' in imported ? imported : ([...imported.algs] as JwtAlgorithm[]);
}

// 1 for the base64url alphabet.
const B64URL = new Uint8Array(128);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_') B64URL[ch.charCodeAt(0)] = 1;

/** Strict unpadded base64url over s[from, to): only alphabet characters, a decodable length. */
export function isBase64url(s: string, from: number, to: number): boolean {
  if ((to - from) % 4 === 1) return false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || B64URL[c] === 0) return false;
  }
  return true;
}
