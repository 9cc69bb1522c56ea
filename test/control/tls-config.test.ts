// server.tls and services.*.tls at load: every bad certificate or key is a config error
// naming the file and the key path (uWS would segfault on some of them), checked with
// certificates made by openssl.
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { compileConfig } from '../../src/control/compile.js';
import { ConfigError } from '../../src/control/config-error.js';
import { TestPki, type CertFiles } from '../helpers/tls-certs.js';

let pki: TestPki;
let good: CertFiles;
let other: CertFiles;
let expired: CertFiles;
let encrypted: CertFiles;
let api: CertFiles;
let wild: CertFiles;

before(() => {
  pki = new TestPki();
  good = pki.leaf('good', { names: ['localhost'] });
  other = pki.leaf('other', { names: ['other.test'] });
  expired = pki.leaf('expired', { names: ['old.test'], days: -1 });
  encrypted = pki.leaf('enc', { names: ['localhost'], passphrase: 'secret' });
  api = pki.leaf('api', { names: ['api.test'] });
  wild = pki.leaf('wild', { names: ['*.example.com'] });
});
after(() => pki?.remove());

const FILE = '/etc/lobby/gateway.yaml';

function issues(tls: Record<string, unknown>, services: Record<string, unknown> = { up: { targets: ['http://127.0.0.1:9001'] } }): string[] {
  try {
    compileConfig({ server: { tls: tls as never }, services: services as never, routes: [] }, FILE);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
}

describe('server.tls at load', () => {
  it('accepts a good set: default, SNI, wildcard, encrypted key with its passphrase, client CA', () => {
    assert.deepEqual(issues({ cert_file: good.cert, key_file: good.key, client_auth: { mode: 'required', ca_file: pki.ca.cert },
      certificates: [{ server_names: ['api.test'], cert_file: api.cert, key_file: api.key }, { server_names: ['*.example.com'], cert_file: wild.cert, key_file: wild.key }] }), []);
    assert.deepEqual(issues({ cert_file: encrypted.cert, key_file: encrypted.key, passphrase: 'secret' }), []);
  });

  it('refuses the old client_ca_file key with the way to write client_auth', () => {
    assert.match(issues({ cert_file: good.cert, key_file: good.key, client_ca_file: pki.ca.cert }).join('\n'),
      /server\.tls\.client_ca_file: replaced by server\.tls\.client_auth: write `client_auth: \{ mode: optional, ca_file: /);
    assert.match(issues({ cert_file: good.cert, key_file: good.key, client_auth: { mode: 'sometimes', ca_file: pki.ca.cert } }).join('\n'), /server\.tls\.client_auth\.mode/);
    assert.match(issues({ cert_file: good.cert, key_file: good.key, client_auth: { mode: 'required', ca_file: pki.ca.cert, headers: { subject: 'Bad Name' } } }).join('\n'), /server\.tls\.client_auth\.headers\.subject/);
  });

  it('refuses an unreadable file, a mismatched pair, an expired certificate, a wrong or missing passphrase', () => {
    const missing = join(pki.dir, 'nope.pem');
    assert.match(issues({ cert_file: missing, key_file: good.key }).join('\n'), new RegExp(`server\\.tls\\.cert_file: ${missing}: cannot be read \\(ENOENT\\)`));
    assert.match(issues({ cert_file: good.cert, key_file: other.key }).join('\n'), /server\.tls\.key_file: .*other\.key: is not the key of the certificate .*good\.pem \(mismatched pair\)/);
    assert.match(issues({ cert_file: expired.cert, key_file: expired.key }).join('\n'), /server\.tls\.cert_file: .*expired\.pem: expired on /);
    assert.match(issues({ cert_file: encrypted.cert, key_file: encrypted.key, passphrase: 'wrong' }).join('\n'), /server\.tls\.key_file: .*enc\.key: the passphrase \(server\.tls\.passphrase\) does not open it/);
    assert.match(issues({ cert_file: encrypted.cert, key_file: encrypted.key }).join('\n'), /the key is encrypted: set server\.tls\.passphrase/);
    const garbage = join(pki.dir, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate');
    assert.match(issues({ cert_file: garbage, key_file: good.key }).join('\n'), /server\.tls\.cert_file: .*garbage\.pem: not a PEM certificate/);
    const unreadable = join(pki.dir, 'unreadable.key');
    writeFileSync(unreadable, 'x');
    chmodSync(unreadable, 0o000);
    // root reads a mode-000 file; then it is refused as not a key, which is also a clear error.
    assert.match(issues({ cert_file: good.cert, key_file: unreadable }).join('\n'), /server\.tls\.key_file: .*unreadable\.key: (cannot be read \(EACCES\)|not a PEM private key)/);
  });

  it('tells every wrong passphrase as one, also the one in ~256 that OpenSSL reports as a decoder error', () => {
    // A wrong passphrase usually fails the padding check; now and then the padding passes and
    // the garbage fails to parse instead. 600 tries meet that case with ~90 % probability.
    for (let i = 0; i < 600; i++) {
      const out = issues({ cert_file: encrypted.cert, key_file: encrypted.key, passphrase: `wrong-${i}` }).join('\n');
      assert.match(out, /the passphrase \(server\.tls\.passphrase\) does not open it/, `passphrase wrong-${i}: ${out}`);
    }
  });

  it('refuses an SNI certificate that does not cover its names, a name listed twice, a bad name, an unknown cipher list', () => {
    const out = issues({ cert_file: good.cert, key_file: good.key, ciphers: 'NO-SUCH-CIPHER',
      certificates: [
        { server_names: ['shop.test'], cert_file: api.cert, key_file: api.key },
        { server_names: ['*.example.com', 'api.test', 'x.*.test'], cert_file: wild.cert, key_file: wild.key },
        { server_names: ['*.example.com'], cert_file: wild.cert, key_file: wild.key },
      ] }).join('\n');
    assert.match(out, /server\.tls\.certificates\[1\]\.server_names\[2\]: must be a host name/);
    const cover = issues({ cert_file: good.cert, key_file: good.key,
      certificates: [{ server_names: ['shop.test'], cert_file: api.cert, key_file: api.key }] }).join('\n');
    assert.match(cover, /server\.tls\.certificates\[0\]\.cert_file: .*api\.pem: does not cover the server name "shop\.test"/);
    const twice = issues({ cert_file: good.cert, key_file: good.key, certificates: [
      { server_names: ['*.example.com'], cert_file: wild.cert, key_file: wild.key },
      { server_names: ['*.example.com'], cert_file: wild.cert, key_file: wild.key }] }).join('\n');
    assert.match(twice, /server\.tls\.certificates\[1\]\.server_names\[0\]: "\*\.example\.com" is already listed in server\.tls\.certificates\[0\]/);
    assert.match(issues({ cert_file: good.cert, key_file: good.key, ciphers: 'NO-SUCH-CIPHER' }).join('\n'), /server\.tls\.ciphers: .*refused by TLS/);
    assert.match(issues({ cert_file: good.cert, key_file: good.key, min_version: 'TLS1.3' }).join('\n'), /server\.tls\.min_version: must be one of "TLS1.2"/);
  });
});

describe('services.*.tls at load', () => {
  it('accepts https targets with a CA; refuses tls on a service without https targets and a half client pair', () => {
    assert.deepEqual(issues({ cert_file: good.cert, key_file: good.key }, { up: { targets: ['https://127.0.0.1:9443'], tls: { ca_file: pki.ca.cert, servername: 'api.test' } } }), []);
    const out = issues({ cert_file: good.cert, key_file: good.key }, {
      plain: { targets: ['http://127.0.0.1:9001'], tls: { ca_file: pki.ca.cert } },
      half: { targets: ['https://127.0.0.1:9443'], tls: { cert_file: good.cert } },
      badca: { targets: ['https://127.0.0.1:9444'], tls: { ca_file: join(pki.dir, 'missing-ca.pem') } },
    }).join('\n');
    assert.match(out, /services\.plain\.tls: applies to https:\/\/ targets, and this service has none/);
    assert.match(out, /services\.half\.tls\.key_file: a client certificate needs both cert_file and key_file/);
    assert.match(out, /services\.badca\.tls\.ca_file: .*missing-ca\.pem: cannot be read \(ENOENT\)/);
  });

  it('tells a wrong or missing passphrase of an upstream client key or an SNI key as one, naming the key it comes from', () => {
    const up = (tls: Record<string, unknown>) => issues({ cert_file: good.cert, key_file: good.key },
      { up: { targets: ['https://127.0.0.1:9443'], tls: { cert_file: encrypted.cert, key_file: encrypted.key, ...tls } } }).join('\n');
    assert.deepEqual(up({ passphrase: 'secret' }), '');
    assert.match(up({ passphrase: 'wrong' }), /services\.up\.tls\.key_file: .*enc\.key: the passphrase \(services\.up\.tls\.passphrase\) does not open it/);
    assert.match(up({}), /services\.up\.tls\.key_file: .*enc\.key: the key is encrypted: set services\.up\.tls\.passphrase/);
    const sni = issues({ cert_file: good.cert, key_file: good.key, passphrase: 'wrong',
      certificates: [{ server_names: ['localhost'], cert_file: encrypted.cert, key_file: encrypted.key }] }).join('\n');
    assert.match(sni, /server\.tls\.certificates\[0\]\.key_file: .*enc\.key: the passphrase \(server\.tls\.passphrase\) does not open it/);
  });
});

describe('server.tls ports', () => {
  it('refuses the plain port or the admin port as the HTTPS port', () => {
    const at = (config: Record<string, unknown>) => {
      try { compileConfig(config as never, FILE); return ''; } catch (err) { return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).join('\n'); }
    };
    assert.match(at({ server: { port: 8443, tls: { cert_file: good.cert, key_file: good.key } } }), /server\.tls\.port: 8443 is server\.port/);
    assert.equal(at({ server: { port: 8443, tls: { cert_file: good.cert, key_file: good.key, plain_http: 'off' } } }), '');
    assert.match(at({ server: { tls: { cert_file: good.cert, key_file: good.key } }, admin: { port: 8443 } }), /admin\.port: 8443 is the HTTPS data-plane port/);
  });
});

describe('config/examples/tls.yaml', () => {
  it('loads and passes lobby check with certificates made for it (so it never rots)', async () => {
    const { fileURLToPath } = await import('node:url');
    const { copyFileSync } = await import('node:fs');
    const { loadConfigFile } = await import('../../src/control/config-load.js');
    const { runCheck } = await import('../../src/control/check.js');
    const example = fileURLToPath(new URL('../../../config/examples/tls.yaml', import.meta.url));
    pki.leaf('default', { names: ['localhost'], passphrase: 'example-pass' });
    pki.leaf('api', { names: ['api.example.com'], passphrase: 'example-pass' });
    pki.leaf('shop', { names: ['*.shop.example.com'], passphrase: 'example-pass' });
    copyFileSync(pki.ca.cert, join(pki.dir, 'internal-ca.pem'));
    process.env.TLS_DIR = pki.dir;
    process.env.TLS_PASSPHRASE = 'example-pass';
    const config = await loadConfigFile(example);
    assert.equal(config.server.tls?.plainHttp, 'redirect');
    assert.equal(config.server.tls?.hsts, 'max-age=31536000; includeSubDomains');
    assert.equal(config.services[1].tls?.servername, 'billing.internal');
    const sink = { text: '', write(t: string) { this.text += t; return true; } };
    assert.equal(await runCheck(example, sink, sink), 0, sink.text);
  });
});
