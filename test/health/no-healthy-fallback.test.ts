// A service with no healthy target serves its last-good answers (issue 14: "a service with no
// healthy target fails fast (503 no_healthy_upstream, flag UH) or serves the fallback"): a
// real gateway (one worker: the fallback cache is per worker) and a real upstream whose health
// checks start failing while its traffic would still answer, so a reply that reaches it is told
// apart from one served by the cache.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { adminClient, waitUntil, type AdminClient } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';
import { ControlledUpstream, upstreamRows } from './controlled-upstream.js';

const target = new ControlledUpstream('only');
let gw: Gateway;
let admin: AdminClient;

async function get(path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const res = await request(gw.url + path);
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

before(async () => {
  await target.start();
  const adminPort = await freePort();
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
admin: { host: 127.0.0.1, port: ${adminPort} }
services:
  svc:
    targets: ["${target.origin}"]
    health_check: { path: /healthz, interval_ms: 1000, timeout_ms: 1000, unhealthy_after: 1, healthy_after: 1 }
    fallback: { cache: { ttl_s: 300 } }
routes:
  - { name: svc, match: { prefix: /svc }, service: svc }
`);
  admin = adminClient(adminPort);
  await admin.waitReady();
});

after(async () => {
  await gw?.stop();
  await target.stop();
});

describe('no healthy target', () => {
  it('serves the cached answer (Cache-Status stale-if-error) and 503 no_healthy_upstream for the rest', async () => {
    const primed = await get('/svc/cached');
    assert.equal(primed.status, 200, primed.body);
    assert.equal(primed.headers['cache-status'], undefined, 'relayed, not from the cache');

    target.health = 503;
    await waitUntil('the target to be unhealthy', async () => (await upstreamRows(admin, 'svc'))[0].health === 'unhealthy', 15_000);
    const before = target.trafficCount;

    const hit = await get('/svc/cached');
    assert.equal(hit.status, 200, hit.body);
    assert.equal(hit.body, primed.body);
    assert.equal(hit.headers['cache-status'], 'lobby; hit; detail=stale-if-error');
    assert.match(String(hit.headers.age), /^\d+$/);

    const miss = await get('/svc/never-seen');
    assert.equal(miss.status, 503, miss.body);
    assert.equal(JSON.parse(miss.body).error.code, 'no_healthy_upstream');
    assert.equal(miss.headers['cache-status'], undefined);
    assert.equal(target.trafficCount, before, 'nothing was sent to the unhealthy target');
  });
});
