// JWT (JWS compact) verification with node:crypto: the verifier the pool threads run
// (workers/jwt-verify.ts), the `inline` mode runs, and native-bench/jwt-verify.bench.ts
// measures against jose. node:crypto is used for every algorithm because it measured
// fastest for each (docs/performance.md): jose goes through WebCrypto, async, via libuv.
//
// Strict by construction:
//   - the token's `alg` never chooses: it must be in the provider's allowlist, and the
//     key must be able to verify exactly that algorithm (kty, curve, size, its own `alg`,
//     `use`, `key_ops`), so an HS256 token is never checked against an RSA/EC key;
//   - `none` is not an algorithm here; `crit` (extensions we do not implement) is refused;
//   - every segment is strict base64url (no padding, no foreign characters), header and
//     payload are JSON objects, registered claims have the types RFC 7519 gives them;
//   - the signature is checked before any claim, then exp / nbf (with skew), iss, aud.
import { createHmac, timingSafeEqual, verify as cryptoVerify } from 'node:crypto';
import type { Jwk, JwtAlgorithm, VerifierSpec } from '../../shared/auth-config.js';
import { ALG, importJwk, isBase64url, type AlgorithmInfo, type ImportedKey } from '../../shared/jwk.js';

/** Why a token was refused. Crosses threads as a plain string. */
export type VerifyCode =
  | 'malformed'
  | 'alg_not_allowed'
  | 'unknown_kid'
  | 'key_mismatch'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'missing_exp'
  | 'bad_issuer'
  | 'bad_audience'
  | 'bad_claims'
  | 'no_keys'
  /** Introspection (RFC 7662) answered `active: false`. */
  | 'inactive';

export interface VerifiedToken {
  ok: true;
  /** Identity headers for the upstream request: flat [name, value, ...]. */
  headers: string[];
  /** Scopes granted (`scope` split on spaces, plus `scp`). */
  scopes: string[];
  /** `exp` in seconds since the epoch, 0 when the token has none. */
  exp: number;
  /** `sub` when it is a string, else '' (logged as the request's subject). */
  subject: string;
}

export interface RejectedToken {
  ok: false;
  code: VerifyCode;
}

export type VerifyResult = VerifiedToken | RejectedToken;

/** Tokens longer than this are refused unparsed (the header limit caps them anyway). */
export const MAX_TOKEN_LENGTH = 16 * 1024;
/** A kid-less token is tried against at most this many keys. */
export const MAX_KEY_CANDIDATES = 8;
/** Claim values longer than this, or with characters outside visible ASCII, are not injected. */
export const MAX_HEADER_VALUE_LENGTH = 4096;

const REJECTED = new Map<VerifyCode, RejectedToken>();
export function rejected(code: VerifyCode): RejectedToken {
  let r = REJECTED.get(code);
  if (r === undefined) { r = Object.freeze({ ok: false, code }) as RejectedToken; REJECTED.set(code, r); }
  return r;
}

// Keys: src/shared/jwk.ts (re-exported for the verifier's users).
export { ALG, MIN_RSA_BITS, hmacMinBytes, importJwk, isBase64url, jwkAlgorithms, type ImportedKey } from '../../shared/jwk.js';

function decodeJsonObject(segment: string): Record<string, unknown> | null {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/** A value that can go into a header as is: visible ASCII and spaces, bounded. */
export function isSafeHeaderValue(v: string): boolean {
  if (v.length === 0 || v.length > MAX_HEADER_VALUE_LENGTH) return false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

function claimToHeaderValue(v: unknown): string | null {
  let s: string;
  if (typeof v === 'string') s = v;
  else if (typeof v === 'number') { if (!Number.isFinite(v)) return null; s = String(v); }
  else if (typeof v === 'boolean') s = v ? 'true' : 'false';
  else if (Array.isArray(v)) {
    if (!v.every((x) => typeof x === 'string' || (typeof x === 'number' && Number.isFinite(x)))) return null;
    s = v.join(' ');
  } else return null;
  return isSafeHeaderValue(s) ? s : null;
}

/**
 * The identity headers of verified claims (flat [name, value, ...]): each configured claim
 * whose value is safe in a header (claimToHeaderValue). Shared by the JWT verifier and the
 * introspection client (src/control/introspection.ts), so both inject exactly the same bytes.
 */
export function identityHeaders(claims: Record<string, unknown>, claimsToHeaders: readonly (readonly [string, string])[]): string[] {
  const headers: string[] = [];
  for (const [claim, header] of claimsToHeaders) {
    const value = claimToHeaderValue(claims[claim]);
    if (value !== null) headers.push(header, value);
  }
  return headers;
}

/** Scopes granted by `scope` (space-separated, or a list) and `scp`; null when malformed. */
export function scopesOf(payload: Record<string, unknown>): string[] | null {
  const out: string[] = [];
  const add = (v: unknown): boolean => {
    if (typeof v === 'string') { for (const s of v.split(' ')) if (s !== '') out.push(s); return true; }
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) { for (const s of v as string[]) if (s !== '') out.push(s); return true; }
    return false;
  };
  if (payload.scope !== undefined && !add(payload.scope)) return null;
  if (payload.scp !== undefined && !add(payload.scp)) return null;
  return out;
}

// ---------------------------------------------------------------------------------------
// The verifier

export class TokenVerifier {
  private readonly allowed: ReadonlySet<string>;
  /** Candidates for a token's kid: the keys with that kid, then every kid-less key (built once). */
  private readonly byKid = new Map<string, ImportedKey[]>();
  private readonly kidless: ImportedKey[] = [];
  private readonly all: ImportedKey[] = [];
  private readonly audiences: ReadonlySet<string>;
  /** Keys of the set that could not be used (with why), for logs. */
  readonly skipped: string[] = [];

  constructor(readonly spec: VerifierSpec, keys: readonly Jwk[] | null) {
    this.allowed = new Set(spec.algorithms);
    this.audiences = new Set(spec.audiences);
    for (const jwk of keys ?? []) {
      const imported = importJwk(jwk);
      if ('error' in imported) { this.skipped.push(`${jwk?.kid ?? '(no kid)'}: ${imported.error}`); continue; }
      // Only what the allowlist permits is ever tried with this key.
      const algs = new Set([...imported.algs].filter((a) => this.allowed.has(a)));
      if (algs.size === 0) { this.skipped.push(`${imported.kid ?? '(no kid)'}: fits none of the allowed algorithms`); continue; }
      const key: ImportedKey = { ...imported, algs };
      this.all.push(key);
      if (key.kid === null) this.kidless.push(key);
      else {
        const list = this.byKid.get(key.kid);
        if (list) list.push(key); else this.byKid.set(key.kid, [key]);
      }
    }
    if (this.kidless.length > 0) for (const list of this.byKid.values()) list.push(...this.kidless);
  }

  get keyCount(): number {
    return this.all.length;
  }

  /** Verifies a compact JWS token at `nowMs` (ms since the epoch). Never throws. */
  verify(token: string, nowMs: number): VerifyResult {
    const len = token.length;
    if (len > MAX_TOKEN_LENGTH) return rejected('malformed');
    const d1 = token.indexOf('.');
    const d2 = d1 < 0 ? -1 : token.indexOf('.', d1 + 1);
    if (d1 <= 0 || d2 < 0 || d2 === d1 + 1 || token.indexOf('.', d2 + 1) !== -1) return rejected('malformed');
    if (!isBase64url(token, 0, d1) || !isBase64url(token, d1 + 1, d2) || !isBase64url(token, d2 + 1, len)) return rejected('malformed');

    const header = decodeJsonObject(token.slice(0, d1));
    if (header === null) return rejected('malformed');
    const alg = header.alg;
    if (typeof alg !== 'string') return rejected('malformed');
    if (!this.allowed.has(alg)) return rejected('alg_not_allowed');
    if (header.crit !== undefined) return rejected('malformed');
    const kid = header.kid;
    if (kid !== undefined && typeof kid !== 'string') return rejected('malformed');
    if (this.all.length === 0) return rejected('no_keys');

    let candidates: readonly ImportedKey[];
    let kidKnown = true;
    if (kid === undefined) candidates = this.all;
    else {
      const byKid = this.byKid.get(kid);
      kidKnown = byKid !== undefined;
      candidates = byKid ?? this.kidless;
    }

    const info = ALG[alg as JwtAlgorithm];
    const signature = Buffer.from(token.slice(d2 + 1), 'base64url');
    if (info.kind === 'ec' && signature.length !== 2 * info.size) return rejected('bad_signature');
    const signingInput = Buffer.from(token.slice(0, d2), 'latin1');
    let tried = 0;
    let valid = false;
    for (let i = 0; i < candidates.length && tried < MAX_KEY_CANDIDATES; i++) {
      const k = candidates[i];
      if (!k.algs.has(alg)) continue;
      tried++;
      if (checkSignature(info, k, signingInput, signature)) { valid = true; break; }
    }
    if (tried === 0) return rejected(kidKnown && kid !== undefined ? 'key_mismatch' : 'unknown_kid');
    if (!valid) return rejected('bad_signature');

    const payload = decodeJsonObject(token.slice(d1 + 1, d2));
    if (payload === null) return rejected('malformed');
    return this.checkClaims(payload, nowMs / 1000);
  }

  private checkClaims(p: Record<string, unknown>, nowS: number): VerifyResult {
    const spec = this.spec;
    const skew = spec.clockSkewS;
    const exp = p.exp;
    if (exp !== undefined) {
      if (typeof exp !== 'number' || !Number.isFinite(exp)) return rejected('bad_claims');
      if (nowS >= exp + skew) return rejected('expired');
    } else if (spec.requireExp) return rejected('missing_exp');
    const nbf = p.nbf;
    if (nbf !== undefined) {
      if (typeof nbf !== 'number' || !Number.isFinite(nbf)) return rejected('bad_claims');
      if (nowS + skew < nbf) return rejected('not_yet_valid');
    }
    if (p.iat !== undefined && (typeof p.iat !== 'number' || !Number.isFinite(p.iat))) return rejected('bad_claims');
    if (p.iss !== spec.issuer) return rejected('bad_issuer');
    if (this.audiences.size > 0) {
      const aud = p.aud;
      let match = false;
      if (typeof aud === 'string') match = this.audiences.has(aud);
      else if (Array.isArray(aud)) {
        for (const a of aud) if (typeof a === 'string' && this.audiences.has(a)) { match = true; break; }
      }
      if (!match) return rejected('bad_audience');
    }
    const scopes = scopesOf(p);
    if (scopes === null) return rejected('bad_claims');
    const headers = identityHeaders(p, spec.claimsToHeaders);
    return { ok: true, headers, scopes, exp: typeof exp === 'number' ? exp : 0, subject: typeof p.sub === 'string' ? p.sub : '' };
  }
}

function checkSignature(info: AlgorithmInfo, k: ImportedKey, data: Buffer, signature: Buffer): boolean {
  try {
    switch (info.kind) {
      case 'hmac': {
        const mac = createHmac(info.hash!, k.secret!).update(data).digest();
        return mac.length === signature.length && timingSafeEqual(mac, signature);
      }
      case 'rsa':
        return cryptoVerify(info.hash, data, k.key, signature);
      case 'pss':
        return cryptoVerify(info.hash, data, k.pssKey, signature);
      case 'ec':
        return cryptoVerify(info.hash, data, k.ecKey, signature);
      case 'eddsa':
        return cryptoVerify(null, data, k.key, signature);
    }
  } catch {
    return false;
  }
}
