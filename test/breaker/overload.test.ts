// Overload protection (docs/resilience.md#overload-protection) on real 2-worker gateways:
// server.max_connections caps the instance's open exchanges over both workers, and a heap
// beyond server.overload.heap_percent sheds new requests, both with 503 gateway_overloaded.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/admin.js';

let up: Upstream;
const held: ServerResponse[] = [];
const gateways: Gateway[] = [];

async function get(gw: Gateway, path: string): Promise<{ status: number; code: string; connection: unknown }> {
  const res = await request(gw.url + path, { reset: true });
  const text = await res.body.text();
  let code = '';
  try { code = JSON.parse(text).error?.code ?? ''; } catch { /* an upstream body */ }
  return { status: res.statusCode, code, connection: res.headers.connection };
}

before(async () => {
  up = await startUpstream('held', (req, res) => {
    if (req.url!.startsWith('/hold')) held.push(res);
    else res.end('ok');
  });
});

after(async () => {
  for (const r of held.splice(0)) r.end('released');
  await Promise.all(gateways.map((g) => g.stop()));
  await up?.close();
});

describe('overload protection', () => {
  it('server.max_connections: open exchanges beyond it, over both workers, get 503 gateway_overloaded', async () => {
    const gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2, drain_timeout_ms: 500, max_connections: 3, overload: { check_ms: 20 } }
services: { up: { targets: ["${up.origin}"] } }
routes: [ { name: all, match: { prefix: / }, service: up } ]
`);
    gateways.push(gw);
    assert.equal((await get(gw, '/ok')).status, 200);
    // Three requests held open upstream. One at a time: a count another worker published a
    // moment ago may still include a request that has ended, and shed one of these (retried).
    const holding: Promise<Awaited<ReturnType<typeof get>>>[] = [];
    for (let i = 1; i <= 3; i++) {
      await waitUntil(`held request ${i}`, async () => {
        const before = held.length;
        const r = get(gw, `/hold/${i}`);
        const shed = await Promise.race([r.then((a) => a.status === 503), waitUntil('held', () => held.length > before, 10_000).then(() => false, () => true)]);
        if (!shed) holding.push(r);
        return !shed;
      }, 20_000);
    }
    // The other worker learns this one's count at its next check (check_ms).
    let shed: Awaited<ReturnType<typeof get>> | null = null;
    await waitUntil('a shed request', async () => {
      const r = await get(gw, '/ok');
      if (r.status === 503) shed = r;
      return r.status === 503;
    }, 10_000);
    assert.equal(shed!.code, 'gateway_overloaded');
    // Once both workers published their counts, every new request is shed, on either worker.
    await waitUntil('six shed in a row', async () => {
      for (let i = 0; i < 6; i++) if ((await get(gw, '/ok')).status !== 503) return false;
      return true;
    }, 10_000);
    assert.equal(held.length, 3);
    for (const r of held.splice(0)) r.end('released');
    assert.deepEqual((await Promise.all(holding)).map((r) => r.status), [200, 200, 200]);
    await waitUntil('requests admitted again', async () => (await get(gw, '/ok')).status === 200, 10_000);
  });

  it('server.overload.heap_percent: beyond it every new request gets 503 gateway_overloaded', async () => {
    const gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2, drain_timeout_ms: 500, overload: { heap_percent: 0.01, check_ms: 50 } }
services: { up: { targets: ["${up.origin}"] } }
routes: [ { name: all, match: { prefix: / }, service: up } ]
`);
    gateways.push(gw);
    const before = up.received.length;
    for (let i = 0; i < 10; i++) {
      const r = await get(gw, '/ok');
      assert.equal(r.status, 503);
      assert.equal(r.code, 'gateway_overloaded');
    }
    assert.equal(up.received.length, before, 'nothing reached the upstream');
  });
});
