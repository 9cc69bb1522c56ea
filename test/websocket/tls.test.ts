// WebSockets over TLS on both legs: wss:// clients on the HTTPS listener, wss:// upstreams for
// https:// targets (verified with the service's tls.ca_file, refused without it).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';
import { TestPki } from '../helpers/tls-certs.js';
import { opened, recordClient, startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.js';
import { waitUntil } from '../helpers/admin.js';

let pki: TestPki;
let up: WsUpstream;
let gw: Gateway;
let tlsPort: number;

before(async () => {
  pki = new TestPki();
  const upstreamCert = pki.leaf('upstream', { names: ['IP:127.0.0.1'] });
  const gatewayCert = pki.leaf('gateway', { names: ['localhost', 'IP:127.0.0.1'] });
  up = await startWsUpstream({ tls: upstreamCert });
  tlsPort = await freePort();
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1, tls: { port: ${tlsPort}, cert_file: ${gatewayCert.cert}, key_file: ${gatewayCert.key} } }
services:
  secure: { targets: ["${up.origin}"], tls: { ca_file: ${pki.ca.cert} } }
  unverified: { targets: ["${up.origin}"] }
routes:
  - { name: secure, match: { prefix: /secure }, service: secure, strip_prefix: /secure, websocket: true }
  - { name: unverified, match: { prefix: /unverified }, service: unverified, strip_prefix: /unverified, websocket: true }
`);
});

after(async () => {
  await gw?.stop();
  await up?.close();
  pki?.remove();
});

describe('websocket over TLS', () => {
  it('wss:// client on the HTTPS listener to a wss:// upstream: echoed, X-Forwarded-Proto https', async () => {
    const next = up.connection();
    const c = recordClient(new WebSocket(`wss://127.0.0.1:${tlsPort}/secure/echo`, { ca: readFileSync(pki.ca.cert) }));
    await opened(c.ws);
    const u = await next;
    assert.equal(u.request.headers['x-forwarded-proto'], 'https');
    c.ws.send('over tls');
    await waitUntil('the echo', () => c.messages.length === 1);
    assert.equal(c.messages[0].data.toString(), 'over tls');
    c.ws.close(4000, 'tls bye');
    assert.deepEqual(await u.whenClosed, { code: 4000, reason: 'tls bye' });
  });

  it('an upstream certificate the service does not trust: 502, no upgrade', async () => {
    const c = new WebSocket(`wss://127.0.0.1:${tlsPort}/unverified/echo`, { ca: readFileSync(pki.ca.cert) });
    await assert.rejects(opened(c), (err: { status?: number; body?: string }) => err.status === 502 && JSON.parse(err.body!).error.code === 'upstream_unavailable');
  });
});
