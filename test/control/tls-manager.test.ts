// The TLS manager's files (src/control/tls-manager.ts): uWS reads certificates from files, so
// the manager writes the checked bytes to its own folder; a rotation must leave only the
// current config's files there (not one more pair and CA bundle per rotation until exit),
// and a rotation the workers refused removes what it wrote.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { TlsManager } from '../../src/control/tls-manager.js';
import type { TlsListenerConfig, TlsSource } from '../../src/shared/tls-config.js';
import { TestPki } from '../helpers/tls-certs.js';

const pki = new TestPki();
const live = mkdtempSync(join(tmpdir(), 'lobby-tls-live-'));
after(() => { pki.remove(); rmSync(live, { recursive: true, force: true }); });

const first = pki.leaf('first', { names: ['localhost'] });
const second = pki.leaf('second', { names: ['localhost'] });
const third = pki.leaf('third', { names: ['localhost'] });
const put = (files: { cert: string; key: string }) => { copyFileSync(files.cert, join(live, 'cert.pem')); copyFileSync(files.key, join(live, 'key.pem')); };

function filesOf(c: TlsListenerConfig): string[] {
  return [c.defaultCert.certFile, c.defaultCert.keyFile, ...(c.clientCaFile === null ? [] : [c.clientCaFile])];
}

describe('TlsManager files', () => {
  it('keeps only the current certificate, key and client CA files across rotations; a refused one leaves nothing', async () => {
    put(first);
    const source: TlsSource = {
      certFile: join(live, 'cert.pem'), keyFile: join(live, 'key.pem'), passphrase: null, ciphers: null,
      clientCaFile: pki.ca.cert, clientAuthMode: 'optional', certificates: [],
    };
    let refuse = false;
    const applied: TlsListenerConfig[] = [];
    const manager = new TlsManager(source, 'gateway.yaml', async (config) => {
      if (refuse) throw new Error('a worker refused it');
      applied.push(config);
    });
    try {
      const dir = dirname(manager.current.defaultCert.certFile);
      const listing = () => readdirSync(dir).sort();
      assert.deepEqual(listing(), filesOf(manager.current).map((f) => f.slice(dir.length + 1)).sort());
      const before = manager.current;

      put(second);
      assert.equal((await manager.reload()).changed, true);
      assert.equal(applied.length, 1);
      assert.deepEqual(listing(), filesOf(manager.current).map((f) => f.slice(dir.length + 1)).sort(), 'only the current files');
      for (const file of filesOf(before)) assert.equal(existsSync(file), false, `${file} of the old config is gone`);

      refuse = true;
      put(third);
      const current = manager.current;
      await assert.rejects(manager.reload(), /a worker refused it/);
      assert.equal(manager.current, current, 'the running config stays');
      assert.deepEqual(listing(), filesOf(current).map((f) => f.slice(dir.length + 1)).sort(), 'the refused rotation wrote nothing that stays');
    } finally {
      manager.close();
    }
  });
});
