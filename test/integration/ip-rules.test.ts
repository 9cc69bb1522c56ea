// Issue 13, IP rules through a real gateway: the gateway's peer is this test (127.0.0.1), a
// trusted proxy, so the client address is the one X-Forwarded-For names (the rate limit's
// reading of server.trusted_proxies); denied clients get 403 ip_denied and reach no upstream.
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

let upstream: Upstream;
let gw: Gateway;

before(async () => {
  upstream = await startUpstream('app');
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1, trusted_proxies: [127.0.0.0/8, "::1"] }
services: { app: { targets: ["${upstream.origin}"] } }
ip_deny: [198.51.100.0/24]
routes:
  - { name: admin, match: { prefix: /admin }, service: app, ip_allow: [203.0.113.0/24, "2001:db8::/32"] }
  - { name: public, match: { prefix: / }, service: app }
`);
});

after(async () => {
  await gw?.stop();
  await upstream?.close();
});

async function get(path: string, forwardedFor?: string): Promise<{ status: number; body: string }> {
  const res = await request(`${gw.url}${path}`, { headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor } });
  return { status: res.statusCode, body: await res.body.text() };
}

it('X-Forwarded-For through a trusted proxy decides; deny is global, a route\'s allow list adds to it; 403 JSON ip_denied', async () => {
  const cases: [path: string, xff: string | undefined, status: number][] = [
    ['/x', '198.51.100.7', 403], // globally denied
    ['/x', '198.51.100.7, 127.0.0.9', 403], // trusted hops are skipped from the right
    ['/x', '192.0.2.1', 200],
    ['/x', undefined, 200], // the peer itself (127.0.0.1)
    ['/admin/a', '203.0.113.4', 200],
    ['/admin/a', '2001:db8::5', 200],
    ['/admin/a', '[2001:db8::5]:4711', 200],
    ['/admin/a', '192.0.2.1', 403],
    ['/admin/a', undefined, 403],
    ['/admin/a', '203.0.113.4, 198.51.100.7', 403], // the last untrusted hop is the client
  ];
  for (const [path, xff, status] of cases) {
    const before = upstream.received.length;
    const got = await get(path, xff);
    assert.equal(got.status, status, `${path} ${xff}: ${got.body}`);
    if (status === 403) {
      const { error } = JSON.parse(got.body) as { error: { status: number; code: string; correlation_id: string } };
      assert.equal(error.status, 403);
      assert.equal(error.code, 'ip_denied');
      assert.match(error.correlation_id, /^[0-9a-f-]{36}$/);
      assert.equal(upstream.received.length, before, 'a denied request reaches no upstream');
    }
  }
});
