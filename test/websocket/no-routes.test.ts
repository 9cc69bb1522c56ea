// A config without any `websocket` route: an upgrade request is a plain GET, as before the
// feature existed (uWS's upgrade handler yields it to the HTTP handler; Upgrade is hop-by-hop).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { rawRequest } from '../helpers/raw-http.js';

let up: Upstream;
let gw: Gateway;

before(async () => {
  up = await startUpstream('plain');
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
services: { plain: { targets: ["${up.origin}"] } }
routes: [ { name: plain, match: { prefix: / }, service: plain } ]
`);
});

after(async () => {
  await gw?.stop();
  await up?.close();
});

describe('upgrade requests without websocket routes', () => {
  it('are forwarded as plain GETs without their upgrade headers, and answered as such', async () => {
    const r = await rawRequest(gw.port, 'GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Seen: yes\r\n\r\n', 1000);
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/chat');
    assert.equal(seen.headers['upgrade'], undefined);
    assert.equal(seen.headers['sec-websocket-key'], 'dGhlIHNhbXBsZSBub25jZQ==', 'an end-to-end header as any other');
    assert.equal(seen.headers['x-seen'], 'yes');
  });
});
