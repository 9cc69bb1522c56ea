// client-cert on its own: compiled from server.tls.client_auth, built, run against a fake
// context whose TLS peer is set the way the mTLS listener sets it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { NEXT, REPLY } from '../../src/data/chain.js';
import { clientCert } from '../../src/filters/client-cert/index.js';
import type { RawConfigInput } from '../../src/control/config-schema.js';
import { TestPki, type CertFiles } from '../helpers/tls-certs.js';
import { chainOf, compileError, compiledFilterConfig, fakeContext, testEnv } from './fake-exchange.js';

let pki: TestPki;
let server: CertFiles;
before(() => {
  pki = new TestPki();
  server = pki.leaf('server', { names: ['localhost'] });
});
after(() => pki?.remove());

const config = (clientAuth?: object, route: object = {}): RawConfigInput => ({
  server: { tls: { cert_file: server.cert, key_file: server.key, ...(clientAuth ? { client_auth: clientAuth } : {}) } } as never,
  services: { s: { targets: ['http://127.0.0.1:9'] } },
  routes: [{ name: 'r', match: { prefix: '/' }, service: 's', ...route }],
});

test('compile: on every route with client_auth, default header X-Client-Cert-Subject only; none without', () => {
  const raw = config({ mode: 'optional', ca_file: pki.ca.cert });
  assert.deepEqual(chainOf(raw, 'r'), ['client-cert']);
  assert.deepEqual(compiledFilterConfig(clientCert, raw, 'r'), { subject: 'x-client-cert-subject', san: null, fingerprint: null, require: false });
  assert.deepEqual(chainOf(config(), 'r'), []);
  assert.deepEqual(chainOf(config({ mode: 'required', ca_file: pki.ca.cert, headers: { subject: false } }), 'r'), [], 'no header, no filter');
});

test('onRequest strips client copies, then adds the peer\'s values; without a certificate only strips', () => {
  const cfg = compiledFilterConfig(clientCert, config({ mode: 'required', ca_file: pki.ca.cert, headers: { san: 'X-Cert-San', fingerprint: 'X-Cert-Sha256' } }), 'r');
  const filter = clientCert.build(cfg, testEnv);
  const spoofed = ['x-client-cert-subject', 'CN=root', 'accept', '*/*', 'x-cert-san', 'DNS:evil', 'x-cert-sha256', '00'];
  const { ctx } = fakeContext({ headers: spoofed });
  ctx.peer = { clientIp: '192.0.2.1', subject: 'CN=alice', san: 'DNS:alice.test', fingerprint: 'ab12' };
  assert.equal(filter.onRequest(ctx), NEXT);
  assert.deepEqual(ctx.headers, ['accept', '*/*', 'x-client-cert-subject', 'CN=alice', 'x-cert-san', 'DNS:alice.test', 'x-cert-sha256', 'ab12']);
  const anonymous = fakeContext({ headers: spoofed }).ctx;
  anonymous.peer = { clientIp: '192.0.2.1', subject: null, san: null, fingerprint: null };
  filter.onRequest(anonymous);
  assert.deepEqual(anonymous.headers, ['accept', '*/*']);
  const plain = fakeContext({ headers: spoofed }).ctx; // the plain listener: no peer
  filter.onRequest(plain);
  assert.deepEqual(plain.headers, ['accept', '*/*']);
});

test('client_cert: required refuses a request without a verified certificate (403 client_cert_required)', () => {
  const raw = config({ mode: 'optional', ca_file: pki.ca.cert, headers: { subject: false } }, { client_cert: 'required' });
  assert.deepEqual(chainOf(raw, 'r'), ['client-cert'], 'kept for the requirement, without headers');
  const filter = clientCert.build(compiledFilterConfig(clientCert, raw, 'r'), testEnv);
  const { ctx, replies } = fakeContext();
  assert.equal(filter.onRequest(ctx), REPLY);
  assert.equal(replies[0].spec.status, 403);
  assert.equal(replies[0].spec.code, 'client_cert_required');
  const withCert = fakeContext().ctx;
  withCert.peer = { clientIp: '192.0.2.1', subject: 'CN=alice', san: null, fingerprint: 'ab' };
  assert.equal(filter.onRequest(withCert), NEXT);
  assert.deepEqual(withCert.headers, [], 'no header configured');
});

test('client_cert without server.tls.client_auth is a config error naming the key', () => {
  assert.match(compileError(config(undefined, { client_cert: 'required' })), /routes\[0\]\.client_cert: needs server\.tls\.client_auth/);
});
