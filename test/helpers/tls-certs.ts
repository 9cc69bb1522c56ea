// Certificates for TLS tests, made by the real openssl binary: a private CA and leaf
// certificates signed by it (SAN names, an expired one, an encrypted key). Everything is
// written into one temp folder the caller removes.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

export interface LeafOptions {
  /** DNS names (and IPs, as `IP:1.2.3.4`) for subjectAltName. */
  names: string[];
  /** Negative: already expired (notAfter in the past). Default 2. */
  days?: number;
  /** Encrypt the key with this passphrase. */
  passphrase?: string;
  /** Extended key usage: server (default) or client. */
  usage?: 'server' | 'client';
  cn?: string;
}

export class TestPki {
  readonly dir = mkdtempSync(join(tmpdir(), 'lobby-pki-'));
  readonly ca: CertFiles;
  private serial = 1;

  constructor(name = 'Lobby Test CA') {
    this.ca = { cert: join(this.dir, `ca-${name.replace(/\W/g, '')}.pem`), key: join(this.dir, `ca-${name.replace(/\W/g, '')}.key`) };
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', this.ca.key, '-out', this.ca.cert, '-subj', `/CN=${name}`, '-days', '3',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  }

  /** A leaf certificate signed by this CA, into `<base>.pem` / `<base>.key`. */
  leaf(base: string, opts: LeafOptions): CertFiles {
    const files = { cert: join(this.dir, `${base}.pem`), key: join(this.dir, `${base}.key`) };
    const csr = join(this.dir, `${base}.csr`);
    const ext = join(this.dir, `${base}.ext`);
    const san = opts.names.map((n) => (n.startsWith('IP:') ? n : `DNS:${n}`)).join(',');
    writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=${opts.usage === 'client' ? 'clientAuth' : 'serverAuth'}\nbasicConstraints=CA:FALSE\n`);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', files.key, '-out', csr,
      '-subj', `/CN=${opts.cn ?? opts.names[0].replace(/^IP:/, '')}`]);
    openssl(['x509', '-req', '-in', csr, '-CA', this.ca.cert, '-CAkey', this.ca.key, '-set_serial', String(this.serial++),
      '-days', String(opts.days ?? 2), '-extfile', ext, '-out', files.cert]);
    if (opts.passphrase !== undefined) {
      openssl(['pkey', '-in', files.key, '-out', files.key + '.enc', '-aes256', '-passout', `pass:${opts.passphrase}`]);
      writeFileSync(files.key, readFileSync(files.key + '.enc'));
    }
    return files;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}
