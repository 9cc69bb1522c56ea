// Key pairs for tests and benches, generated so that exporting them cannot deadlock.
//
// Why not generateKeyPair(Sync) + export directly: in Node 20 the KeyGenJob that made a key
// shares the key's mutex; exporting that key as a JWK allocates while holding the mutex, and
// when the allocation runs a GC that frees the job, the job's destructor waits for the same
// mutex: the process hangs in futex_wait forever (seen as a test that never ends). Keys
// generated as PEM and imported again own a fresh mutex that no job ever touches.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

export interface DetachedKeyPair {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

type Kind = { type: 'rsa'; bits: number } | { type: 'ec'; curve: string } | { type: 'ed25519' };

export function detachedKeyPair(kind: Kind): DetachedKeyPair {
  const publicKeyEncoding = { type: 'spki', format: 'pem' } as const;
  const privateKeyEncoding = { type: 'pkcs8', format: 'pem' } as const;
  const pem = kind.type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: kind.bits, publicKeyEncoding, privateKeyEncoding })
    : kind.type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: kind.curve, publicKeyEncoding, privateKeyEncoding })
      : generateKeyPairSync('ed25519', { publicKeyEncoding, privateKeyEncoding });
  return { publicKey: createPublicKey(pem.publicKey), privateKey: createPrivateKey(pem.privateKey) };
}

/** The key pair a JOSE algorithm signs with (every RS and PS algorithm: RSA 2048). */
export function keyPairForAlg(alg: string): DetachedKeyPair {
  if (alg.startsWith('RS') || alg.startsWith('PS')) return detachedKeyPair({ type: 'rsa', bits: 2048 });
  if (alg === 'EdDSA') return detachedKeyPair({ type: 'ed25519' });
  const curve = ({ ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' } as Record<string, string>)[alg];
  if (curve === undefined) throw new Error(`no key pair for ${alg}`);
  return detachedKeyPair({ type: 'ec', curve });
}
