// gRPC over TLS: a grpc-js server with a certificate from a test CA (made with openssl); the
// gateway verifies it against `grpc.tls.ca_file` and the name in `server_name`. Against the
// system's CAs (`tls: true`) the same server is refused: 503 UNAVAILABLE as Status JSON.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { TestPki } from '../helpers/tls-certs.js';
import { BOOKSTORE_PROTO, FIXTURE_DIR, startBookstore, type BookstoreServer } from './bookstore-server.js';

let pki: TestPki;
let store: BookstoreServer;
let gw: Gateway;

before(async () => {
  pki = new TestPki('Lobby gRPC Test CA');
  const leaf = pki.leaf('bookstore', { names: ['bookstore.internal'] });
  store = await startBookstore({
    credentials: grpc.ServerCredentials.createSsl(null, [{ cert_chain: readFileSync(leaf.cert), private_key: readFileSync(leaf.key) }]),
  });
  const descriptors = `descriptors: { protos: [${BOOKSTORE_PROTO}], include: ["${FIXTURE_DIR}"] }`;
  gw = await startGateway(`
server: { port: __PORT__, workers: 1 }
services:
  verified: { grpc: { targets: ["${store.address}"], tls: { ca_file: "${pki.ca.cert}", server_name: bookstore.internal } }, ${descriptors} }
  system-cas: { grpc: { targets: ["${store.address}"], tls: true }, ${descriptors}, timeouts: { response_ms: 3000 } }
routes:
  - { name: verified, match: { prefix: /v1, host: verified.example }, service: verified, transcode: { services: [bookstore.v1.Bookstore] } }
  - { name: system, match: { prefix: /v1, host: system.example }, service: system-cas, transcode: { services: [bookstore.v1.Bookstore] } }
`);
});

after(async () => {
  await gw?.stop();
  await store?.stop();
  pki?.remove();
});

describe('gRPC over TLS', () => {
  it('verifies the target against ca_file and server_name', async () => {
    const res = await request(`${gw.url}/v1/shelves/4`, { headers: { host: 'verified.example' } });
    const text = await res.body.text();
    assert.equal(res.statusCode, 200, text);
    assert.deepEqual(JSON.parse(text), { id: '4', theme: 'default' });
  });

  it('a certificate the CAs do not vouch for: 503 UNAVAILABLE, nothing reaches the method', async () => {
    const res = await request(`${gw.url}/v1/shelves/4`, { headers: { host: 'system.example' } });
    const text = await res.body.text();
    assert.equal(res.statusCode, 503, text);
    assert.equal(JSON.parse(text).code, 14);
    assert.equal(store.calls.GetShelf, 1, 'only the verified call arrived');
  });
});
