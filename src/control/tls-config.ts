// `server.tls`: its schema fragment and the checks of its files. The bundled uWS build
// crashes the whole process (segfault) when addServerName/SSLApp get a missing key file or a
// wrong passphrase, so every certificate and key is checked here with node:crypto before any
// worker sees it: readable, a certificate, a key the passphrase opens, a matching pair, valid
// now, and covering the server names it is listed for.
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { z } from 'zod';
import { formatKeyPath, type KeyPath } from './config-error.js';
import { rule, section } from './schema-kit.js';
import type { CompiledServerTls, CompiledUpstreamTls, TlsSource } from '../shared/tls-config.js';
import { checkIdentityHeader } from '../filters/auth-jwt/schema.js';

const HOST_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A server name for SNI: a host name, or `*.` and a host name of at least two labels. */
export function checkServerName(raw: string): string | null {
  const name = raw.toLowerCase();
  const wildcard = name.startsWith('*.');
  const labels = (wildcard ? name.slice(2) : name).split('.');
  if (name.length > 253 || !labels.every((l) => HOST_LABEL.test(l))) {
    return 'must be a host name like "api.example.com" or a wildcard like "*.example.com" (the "*" only as the whole first label)';
  }
  if (wildcard && labels.length < 2) return 'a wildcard needs at least two labels after "*." (like "*.example.com")';
  return null;
}

const hstsSchema = section({
  max_age_s: z.number().int().min(0).max(2 ** 31 - 1).default(31536000),
  include_subdomains: z.boolean().default(false),
  preload: z.boolean().default(false),
});

const identityHeader = z.string().superRefine(rule(checkIdentityHeader));

/** `server.tls.client_auth`: mTLS, terminated by Node's TLS (src/data/mtls-listener.ts). */
const clientAuthSchema = section({
  mode: z.enum(['required', 'optional']),
  ca_file: z.string().min(1),
  headers: section({
    subject: z.union([identityHeader, z.literal(false)]).default('x-client-cert-subject'),
    san: z.union([identityHeader, z.literal(false)]).default(false),
    fingerprint: z.union([identityHeader, z.literal(false)]).default(false),
  }).default({ subject: 'x-client-cert-subject', san: false, fingerprint: false }),
});

export const tlsSchema = section({
  port: z.number().int().min(1).max(65535).default(8443),
  cert_file: z.string().min(1),
  key_file: z.string().min(1),
  passphrase: z.string().optional(),
  // uSockets fixes the floor at TLS 1.2 and the build cannot refuse TLS 1.2 (see docs/operations.md).
  min_version: z.enum(['TLS1.2']).default('TLS1.2'),
  ciphers: z.string().min(1).optional(),
  certificates: z.array(section({
    server_names: z.array(z.string().superRefine(rule(checkServerName))).min(1),
    cert_file: z.string().min(1),
    key_file: z.string().min(1),
  })).default([]),
  plain_http: z.enum(['serve', 'redirect', 'off']).default('serve'),
  hsts: hstsSchema.optional(),
  // Replaced by client_auth.ca_file (checkServerTls says so): kept in the schema only for that message.
  client_ca_file: z.string().optional(),
  client_auth: clientAuthSchema.optional(),
});

export type RawTls = z.output<typeof tlsSchema>;

export function compileServerTls(tls: RawTls): CompiledServerTls {
  const hsts = tls.hsts === undefined ? null
    : `max-age=${tls.hsts.max_age_s}${tls.hsts.include_subdomains ? '; includeSubDomains' : ''}${tls.hsts.preload ? '; preload' : ''}`;
  return { port: tls.port, plainHttp: tls.plain_http, hsts, portSuffix: tls.port === 443 ? '' : `:${tls.port}` };
}

export function tlsSource(tls: RawTls, baseDir: string): TlsSource {
  return {
    certFile: resolve(baseDir, tls.cert_file),
    keyFile: resolve(baseDir, tls.key_file),
    passphrase: tls.passphrase ?? null,
    ciphers: tls.ciphers ?? null,
    clientCaFile: tls.client_auth === undefined ? null : resolve(baseDir, tls.client_auth.ca_file),
    clientAuthMode: tls.client_auth?.mode ?? null,
    certificates: tls.certificates.map((c) => ({
      serverNames: c.server_names.map((n) => n.toLowerCase()),
      certFile: resolve(baseDir, c.cert_file),
      keyFile: resolve(baseDir, c.key_file),
    })),
  };
}

/** A certificate and its key as read and checked (the bytes that go to the snapshot files). */
export interface CheckedCert {
  cert: Buffer;
  key: Buffer;
  fingerprint: string;
  /** Subject and validity, for logs and the admin API. */
  subject: string;
  validTo: string;
}

export interface TlsMaterial {
  source: TlsSource;
  defaultCert: CheckedCert;
  byName: { name: string; cert: CheckedCert }[];
  clientCa: Buffer | null;
}

type Report = (path: KeyPath, message: string) => void;
const AT: KeyPath = ['server', 'tls'];

function readAt(file: string, path: KeyPath, report: Report): Buffer | null {
  try {
    return readFileSync(file);
  } catch (err) {
    report(path, `${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    return null;
  }
}

/**
 * Reads and checks one certificate/key pair; null after reporting what is wrong. `names`
 * are the server names the certificate must cover. `now` for validity (ms since epoch).
 * `passphraseAt` is the key the passphrase comes from (server.tls or services.<name>.tls).
 */
function checkPair(
  certFile: string, keyFile: string, passphrase: string | null, ciphers: string | null,
  names: string[], at: KeyPath, passphraseAt: KeyPath, now: number, report: Report,
): CheckedCert | null {
  const certBytes = readAt(certFile, [...at, 'cert_file'], report);
  const keyBytes = readAt(keyFile, [...at, 'key_file'], report);
  if (certBytes === null || keyBytes === null) return null;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certBytes);
  } catch (err) {
    report([...at, 'cert_file'], `${certFile}: not a PEM certificate (${(err as Error).message})`);
    return null;
  }
  let key;
  try {
    key = createPrivateKey({ key: keyBytes, passphrase: passphrase ?? undefined });
  } catch (err) {
    const msg = (err as Error).message;
    // An encrypted key that does not open is a passphrase problem whatever OpenSSL says: a wrong
    // passphrase usually fails the padding check ("bad decrypt"), but about one time in 256 the
    // padding passes and the garbage fails later as "DECODER routines::unsupported".
    const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(keyBytes.toString('latin1'));
    const why = encrypted || /bad decrypt|passphrase|interrupted or cancelled/i.test(msg)
      ? (passphrase === null ? `the key is encrypted: set ${formatKeyPath(passphraseAt)}` : `the passphrase (${formatKeyPath(passphraseAt)}) does not open it`)
      : `not a PEM private key (${msg})`;
    report([...at, 'key_file'], `${keyFile}: ${why}`);
    return null;
  }
  if (!cert.checkPrivateKey(key)) {
    report([...at, 'key_file'], `${keyFile}: is not the key of the certificate ${certFile} (mismatched pair)`);
    return null;
  }
  const notAfter = Date.parse(cert.validTo);
  const notBefore = Date.parse(cert.validFrom);
  if (notAfter <= now) { report([...at, 'cert_file'], `${certFile}: expired on ${cert.validTo}`); return null; }
  if (notBefore > now) { report([...at, 'cert_file'], `${certFile}: not valid before ${cert.validFrom}`); return null; }
  for (const name of names) {
    // A wildcard entry is covered when a name under it is (`*.example.com` by `x.example.com`).
    const probe = name.startsWith('*.') ? `lobby-sni-check${name.slice(1)}` : name;
    if (cert.checkHost(probe) === undefined) {
      report([...at, 'cert_file'], `${certFile}: does not cover the server name ${JSON.stringify(name)} (its names: ${cert.subjectAltName ?? cert.subject})`);
      return null;
    }
  }
  try {
    // The whole set as a TLS server would take it (and the cipher list, when given).
    createSecureContext({ cert: certBytes, key: keyBytes, passphrase: passphrase ?? undefined, ciphers: ciphers ?? undefined });
  } catch (err) {
    report([...at, ciphers !== null && /cipher/i.test((err as Error).message) ? 'ciphers' : 'cert_file'], `${certFile}: refused by TLS (${(err as Error).message})`);
    return null;
  }
  const fingerprint = createHash('sha256').update(certBytes).update('\0').update(keyBytes).digest('hex');
  return { cert: certBytes, key: keyBytes, fingerprint, subject: cert.subject.replace(/\n/g, ', '), validTo: cert.validTo };
}

/** Reads and checks every file of `server.tls`; null when something was reported. */
export function loadTlsMaterial(source: TlsSource, report: Report, now = Date.now()): TlsMaterial | null {
  let ok = true;
  const fail: Report = (path, message) => { ok = false; report(path, message); };
  const defaultCert = checkPair(source.certFile, source.keyFile, source.passphrase, source.ciphers, [], AT, [...AT, 'passphrase'], now, fail);
  const byName: TlsMaterial['byName'] = [];
  const firstAt = new Map<string, number>();
  source.certificates.forEach((entry, index) => {
    const at: KeyPath = [...AT, 'certificates', index];
    entry.serverNames.forEach((name, n) => {
      const first = firstAt.get(name);
      if (first !== undefined) fail([...at, 'server_names', n], `${JSON.stringify(name)} is already listed in server.tls.certificates[${first}]`);
      else firstAt.set(name, index);
    });
    // The build takes one passphrase for every key (server.tls.passphrase).
    const cert = checkPair(entry.certFile, entry.keyFile, source.passphrase, source.ciphers, entry.serverNames, at, [...AT, 'passphrase'], now, fail);
    if (cert !== null) for (const name of entry.serverNames) byName.push({ name, cert });
  });
  let clientCa: Buffer | null = null;
  if (source.clientCaFile !== null) {
    clientCa = readAt(source.clientCaFile, [...AT, 'client_auth', 'ca_file'], fail);
    if (clientCa !== null) {
      try {
        new X509Certificate(clientCa);
        createSecureContext({ ca: clientCa });
      } catch (err) {
        fail([...AT, 'client_auth', 'ca_file'], `${source.clientCaFile}: not a PEM CA certificate bundle (${(err as Error).message})`);
      }
    }
  }
  if (!ok || defaultCert === null) return null;
  return { source, defaultCert, byName, clientCa };
}

/** Checks `server.tls` at load (compile.ts); the material itself is read again at start. */
export function checkServerTls(tls: RawTls | undefined, baseDir: string, report: Report): void {
  if (tls === undefined) return;
  if (tls.client_ca_file !== undefined) {
    report([...AT, 'client_ca_file'], 'replaced by server.tls.client_auth: write `client_auth: { mode: optional, ca_file: '
      + `${JSON.stringify(tls.client_ca_file)} }\` (or mode: required to refuse clients without a certificate)`);
  }
  loadTlsMaterial(tlsSource(tls, baseDir), report);
}

// ---------------------------------------------------------------------------------------
// TLS to upstreams: `services.<name>.tls`, for its https:// targets.

export const upstreamTlsSchema = section({
  ca_file: z.string().min(1).optional(),
  servername: z.string().superRefine(rule(checkServerName)).optional(),
  cert_file: z.string().min(1).optional(),
  key_file: z.string().min(1).optional(),
  passphrase: z.string().optional(),
  verify: z.boolean().default(true),
});

export type RawUpstreamTls = z.output<typeof upstreamTlsSchema>;

/** Reads and checks a service's upstream TLS files; null after reporting. `at` = ['services', name, 'tls']. */
export function compileUpstreamTls(raw: RawUpstreamTls | undefined, baseDir: string, at: KeyPath, report: Report): CompiledUpstreamTls | null {
  const tls = raw ?? { verify: true } as RawUpstreamTls;
  let ok = true;
  const fail: Report = (path, message) => { ok = false; report(path, message); };
  let ca: string | null = null;
  if (tls.ca_file !== undefined) {
    const file = resolve(baseDir, tls.ca_file);
    const bytes = readAt(file, [...at, 'ca_file'], fail);
    if (bytes !== null) {
      try { new X509Certificate(bytes); createSecureContext({ ca: bytes }); ca = bytes.toString('latin1'); } catch (err) {
        fail([...at, 'ca_file'], `${file}: not a PEM CA certificate bundle (${(err as Error).message})`);
      }
    }
  }
  let cert: string | null = null;
  let key: string | null = null;
  if ((tls.cert_file === undefined) !== (tls.key_file === undefined)) {
    fail([...at, tls.cert_file === undefined ? 'cert_file' : 'key_file'], 'a client certificate needs both cert_file and key_file');
  } else if (tls.cert_file !== undefined) {
    const pair = checkPair(resolve(baseDir, tls.cert_file), resolve(baseDir, tls.key_file!), tls.passphrase ?? null, null, [], at, [...at, 'passphrase'], Date.now(), fail);
    if (pair !== null) { cert = pair.cert.toString('latin1'); key = pair.key.toString('latin1'); }
  }
  if (!ok) return null;
  const fingerprint = createHash('sha256').update(JSON.stringify([ca, cert, key, tls.servername ?? null, tls.verify])).digest('hex').slice(0, 16);
  return { ca, cert, key, passphrase: tls.passphrase ?? null, servername: tls.servername ?? null, verify: tls.verify, fingerprint };
}
