// The HTTPS listener's certificates on the control plane: reads and checks them
// (tls-config.ts), writes what was checked into private snapshot files for the workers'
// uWS, and rotates them without a restart: when a watched file changes, or on
// POST /tls/reload. A bad new set is refused with its issues and the running one stays.
import { mkdtempSync, rmSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TlsListenerConfig, TlsSource, TlsCertFiles } from '../shared/tls-config.js';
import { log } from '../shared/log.js';
import { ConfigError, issueAt } from './config-error.js';
import { loadTlsMaterial, type CheckedCert, type TlsMaterial } from './tls-config.js';

/** A burst of writes (cert then key, or an editor's save) is applied once, after this. */
const WATCH_DEBOUNCE_MS = 300;

export interface TlsStatus {
  version: number;
  certificates: { names: string[]; subject: string; valid_to: string; fingerprint: string }[];
}

export class TlsManager {
  private readonly dir = mkdtempSync(join(tmpdir(), 'lobby-tls-'));
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | null = null;
  private material: TlsMaterial;
  private version = 0;
  current: TlsListenerConfig;

  /**
   * Throws ConfigError when the files are bad (at start the config check already read them;
   * they may have changed since). `apply` sends a new listener config to every worker and
   * resolves when all use it.
   */
  constructor(private readonly source: TlsSource, private readonly file: string,
    private readonly apply: (config: TlsListenerConfig) => Promise<void>) {
    this.material = this.load();
    this.current = this.snapshot(this.material);
  }

  private load(): TlsMaterial {
    const issues: ReturnType<typeof issueAt>[] = [];
    const material = loadTlsMaterial(this.source, (path, message) => issues.push(issueAt(this.file, path, message)));
    if (material === null) throw new ConfigError(issues);
    return material;
  }

  /** Files named by content: uWS reads exactly the checked bytes, and an unchanged pair keeps its name. */
  private write(cert: CheckedCert): TlsCertFiles {
    const certFile = join(this.dir, `${cert.fingerprint}.crt`);
    const keyFile = join(this.dir, `${cert.fingerprint}.key`);
    writeFileSync(certFile, cert.cert, { mode: 0o600 });
    writeFileSync(keyFile, cert.key, { mode: 0o600 });
    return { certFile, keyFile, fingerprint: cert.fingerprint };
  }

  private snapshot(m: TlsMaterial): TlsListenerConfig {
    let clientCaFile: string | null = null;
    if (m.clientCa !== null) {
      clientCaFile = join(this.dir, `client-ca-${this.version + 1}.pem`);
      writeFileSync(clientCaFile, m.clientCa, { mode: 0o600 });
    }
    return {
      version: ++this.version,
      passphrase: m.source.passphrase,
      ciphers: m.source.ciphers,
      clientCaFile,
      clientAuthMode: m.source.clientAuthMode,
      defaultCert: this.write(m.defaultCert),
      byName: m.byName.map(({ name, cert }) => ({ name, cert: this.write(cert) })),
    };
  }

  /** Re-reads the files; applies them when they are good and differ. Throws ConfigError when bad. */
  async reload(): Promise<{ changed: boolean; status: TlsStatus }> {
    const next = this.load();
    const same = next.defaultCert.fingerprint === this.material.defaultCert.fingerprint &&
      next.byName.length === this.material.byName.length &&
      next.byName.every((e, i) => e.name === this.material.byName[i].name && e.cert.fingerprint === this.material.byName[i].cert.fingerprint) &&
      (next.clientCa?.equals(this.material.clientCa ?? Buffer.alloc(0)) ?? this.material.clientCa === null);
    if (same) return { changed: false, status: this.status() };
    const config = this.snapshot(next);
    try {
      await this.apply(config);
    } catch (err) {
      this.removeFilesOf(config, this.current);
      throw err;
    }
    // The workers read the new files while applying; the old ones serve nothing any more
    // (established connections keep their context in memory), so rotations leave no files behind.
    this.removeFilesOf(this.current, config);
    this.material = next;
    this.current = config;
    log.info('tls certificates rotated', { version: config.version, certificates: this.status().certificates.length });
    return { changed: true, status: this.status() };
  }

  /** Deletes the files `config` wrote that `kept` does not use. */
  private removeFilesOf(config: TlsListenerConfig, kept: TlsListenerConfig): void {
    const used = new Set(filesOf(kept));
    for (const file of filesOf(config)) if (!used.has(file)) rmSync(file, { force: true });
  }

  status(): TlsStatus {
    const all = [{ names: ['(default)'], cert: this.material.defaultCert }];
    for (const { name, cert } of this.material.byName) {
      const same = all.find((e) => e.cert.fingerprint === cert.fingerprint);
      if (same) same.names.push(name); else all.push({ names: [name], cert });
    }
    return {
      version: this.current.version,
      certificates: all.map((e) => ({ names: e.names, subject: e.cert.subject, valid_to: e.cert.validTo, fingerprint: e.cert.fingerprint })),
    };
  }

  /** Watches the folders of every file (a renamed-over file ends a watch on the file itself). */
  watch(): void {
    const files = [this.source.certFile, this.source.keyFile, this.source.clientCaFile,
      ...this.source.certificates.flatMap((c) => [c.certFile, c.keyFile])].filter((f): f is string => f !== null);
    const names = new Set(files);
    for (const folder of new Set(files.map((f) => dirname(f)))) {
      try {
        const w = watch(folder, { persistent: false }, (_event, changed) => {
          if (changed === null || names.has(join(folder, String(changed)))) this.schedule();
        });
        w.on('error', (error) => log.warn('tls file watch failed; POST /tls/reload still rotates', { folder, error: error.message }));
        this.watchers.push(w);
      } catch (error) {
        log.warn('cannot watch tls files; POST /tls/reload still rotates', { folder, error: (error as Error).message });
      }
    }
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.reload().catch((err) => {
        const detail = err instanceof ConfigError ? err.issues.map((i) => `${i.path}: ${i.message}`).join('; ') : String(err);
        log.error('new tls certificates refused; the running ones keep serving', { error: detail });
      });
    }, WATCH_DEBOUNCE_MS);
    this.timer.unref();
  }

  close(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    if (this.timer) clearTimeout(this.timer);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The files a listener config names (its certificates, keys and client CA bundle). */
function filesOf(config: TlsListenerConfig): string[] {
  const certs = [config.defaultCert, ...config.byName.map((e) => e.cert)];
  const files = certs.flatMap((c) => [c.certFile, c.keyFile]);
  if (config.clientCaFile !== null) files.push(config.clientCaFile);
  return files;
}
