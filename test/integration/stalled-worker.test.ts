// A worker thread stalled past a request's deadline (descheduled on a loaded machine, or one
// long turn) must not charge the stall to the upstream: libuv runs due timers before a turn's
// I/O, so the deadline ticker, run first after the stall, would expire a request whose
// response arrived during the stall and waits in that turn's poll phase. src/data/deadlines.ts
// defers such stall-late expiries by one turn. The stall is the test hook
// `x-lobby-test-stall-ms` (LOBBY_TEST_HOOKS=1): the worker's request handler blocks its thread.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/admin.js';

let slow: Upstream;
let fast: Upstream;
let authz: Upstream;
let gw: Gateway;

before(async () => {
  slow = await startUpstream('slow', (_req, res) => { setTimeout(() => res.end('slow answer'), 150); });
  fast = await startUpstream('fast');
  // An authorization service that allows after 150 ms.
  authz = await startUpstream('authz', (_req, res) => { setTimeout(() => res.end(), 150); });
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
services:
  slow: { targets: ["${slow.origin}"], timeouts: { response_ms: 600 } }
  slow-short: { targets: ["${slow.origin}"], timeouts: { response_ms: 50 } }
  fast: { targets: ["${fast.origin}"] }
ext_authz:
  services:
    - { name: policy, url: "${authz.origin}", timeout_ms: 600 }
routes:
  - { name: checked, match: { prefix: /checked }, service: fast, ext_authz: { service: policy } }
  - { name: slow, match: { prefix: /slow }, service: slow }
  - { name: short, match: { prefix: /short }, service: slow-short }
  - { name: fast, match: { prefix: /fast }, service: fast }
`, { env: { LOBBY_TEST_HOOKS: '1' } });
});

after(async () => {
  await gw?.stop();
  await slow?.close();
  await fast?.close();
  await authz?.close();
});

async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const agent = new Agent({ pipelining: 0 });
  try {
    const res = await request(gw.url + path, { dispatcher: agent, headers, headersTimeout: 30_000, bodyTimeout: 30_000 });
    return { status: res.statusCode, text: await res.body.text() };
  } finally {
    await agent.close();
  }
}

describe('a stalled worker', () => {
  it('answers a request whose response arrived during the stall, though its deadline passed meanwhile', async () => {
    // A warm connection to the slow upstream, so the request below waits only for its answer.
    assert.equal((await get('/slow/warm')).status, 200);
    for (let round = 0; round < 2; round++) {
      const seen = slow.received.length;
      const pending = get(`/slow/${round}`);
      // Once the upstream has the request, the worker is stalled for 1.5 s: the answer (after
      // 150 ms) lands in the socket while the 600 ms deadline passes.
      await waitUntil('the slow upstream got the request', () => slow.received.length > seen, 10_000);
      const stall = get('/fast/stall', { 'x-lobby-test-stall-ms': '1500' });
      const [answer, stalled] = await Promise.all([pending, stall]);
      assert.equal(stalled.status, 200);
      assert.deepEqual(answer, { status: 200, text: 'slow answer' }, `round ${round}: the answer that arrived during the stall`);
    }
  });

  it('lets a request through whose authorization answer arrived during the stall (ext_authz timeout_ms)', async () => {
    const seen = authz.received.length;
    const pending = get('/checked/a');
    await waitUntil('the authorization service got the check', () => authz.received.length > seen, 10_000);
    const stalled = await get('/fast/stall', { 'x-lobby-test-stall-ms': '1500' });
    assert.equal(stalled.status, 200);
    const answer = await pending;
    assert.equal(answer.status, 200, `the allow that arrived during the stall, not a timeout: ${answer.text}`);
  });

  it('still expires a request whose upstream is really late', async () => {
    // No stall: a 50 ms deadline against a 150 ms upstream is a 504, deferred expiry or not.
    const res = await get('/short/late');
    assert.equal(res.status, 504);
  });
});
