// JWT test kit: keys generated per test run (jose, an implementation independent of
// Lobby's verifier), tokens signed with them, and a real JWKS HTTP server whose key set,
// Cache-Control and availability a test controls, counting every fetch.
import type { KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { SignJWT, type JWK, type JWTPayload } from 'jose';
import { freePort } from './ports.js';
import { keyPairForAlg } from './keys.js';

export interface TestKey {
  alg: string;
  kid: string;
  /** jose signing key (KeyObject or secret bytes). */
  signing: KeyObject | Uint8Array;
  /** The public JWK as a JWKS endpoint would publish it (oct: the secret). */
  jwk: JWK;
}

export async function makeKey(alg: string, kid: string): Promise<TestKey> {
  if (alg.startsWith('HS')) {
    const bytes = new Uint8Array(Number(alg.slice(2)) / 8);
    crypto.getRandomValues(bytes);
    return { alg, kid, signing: bytes, jwk: { kty: 'oct', k: Buffer.from(bytes).toString('base64url'), kid } };
  }
  // A KeyObject (not a CryptoKey bound to one algorithm): tests sign RS384/PS256 with the same key.
  const pair = keyPairForAlg(alg);
  return { alg, kid, signing: pair.privateKey, jwk: { ...(pair.publicKey.export({ format: 'jwk' }) as JWK), kid } };
}

export interface SignOptions {
  /** Header overrides (alg, kid, typ, crit...). `kid: null` leaves it out. */
  header?: Record<string, unknown>;
}

/** Signs `claims` (iat set unless given) with `key`. */
export async function sign(key: TestKey, claims: JWTPayload, opts: SignOptions = {}): Promise<string> {
  const header: Record<string, unknown> = { alg: key.alg, kid: key.kid, ...opts.header };
  if (header.kid === null) delete header.kid;
  return new SignJWT({ iat: Math.floor(Date.now() / 1000), ...claims })
    .setProtectedHeader(header as { alg: string })
    .sign(key.signing);
}

/** A token with `alg: none` and no signature. */
export function unsignedToken(claims: JWTPayload): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`;
}

/** Raw segments → a compact token (to build malformed or hand-forged tokens). */
export function rawToken(header: unknown, payload: unknown, signature = 'c2ln'): string {
  const enc = (o: unknown) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');
  return `${enc(header)}.${enc(payload)}.${signature}`;
}

export interface JwksServer {
  readonly url: string;
  readonly port: number;
  /** Fetches served so far (also while `down`). */
  hits: number;
  keys: JWK[];
  /** Cache-Control of the answers (null: none). */
  cacheControl: string | null;
  /** Answer 503 instead of the key set. */
  down: boolean;
  close(): Promise<void>;
}

export async function startJwksServer(keys: JWK[] = []): Promise<JwksServer> {
  const state = { hits: 0, keys, cacheControl: 'max-age=300' as string | null, down: false };
  let server: Server | null = null;
  const port = await freePort();
  server = createServer((req, res) => {
    state.hits++;
    if (state.down) { res.writeHead(503).end('down'); return; }
    const body = JSON.stringify({ keys: state.keys });
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (state.cacheControl !== null) headers['cache-control'] = state.cacheControl;
    res.writeHead(200, headers).end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server!.once('error', reject);
    server!.listen(port, '127.0.0.1', () => resolve());
  });
  const s = server;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    port,
    close: () => new Promise<void>((resolve) => { s.closeAllConnections(); s.close(() => resolve()); }),
  });
}
