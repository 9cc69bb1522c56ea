// Three Lobby instances on Redis Sentinel (Debian's redis-server: one master, one replica, three
// sentinels, each with a password; the failover under load is redis-sentinel-failover.test.ts):
// the instances find the master through the sentinels (password, sentinel_password), a change
// on any of them reaches the others, GET /cluster sees all three, and the rate-limit bound of
// docs/rate-limiting.md holds under autocannon.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/admin.js';
import { REDIS_MISSING } from '../helpers/redis.js';
import { clientNames, REDIS_TOPOLOGY_MISSING, startRedisSentinel, type RedisSentinelSetup } from '../helpers/redis-topology.js';
import { fleetConfig, routedTo, startLobbyInstances, stopLobbyInstances, type LobbyInstance } from '../helpers/lobby-instances.js';
import { checkSharedLimitBound } from '../helpers/shared-limit.js';

const SKIP = REDIS_MISSING || REDIS_TOPOLOGY_MISSING;
const PREFIX = `t${process.pid}:`;
const INTERVAL_MS = 100;
const R = 250;
// The data nodes and the sentinels each require their own password.
const DATA_PASSWORD = 'data-secret-0123';
const SENTINEL_PASSWORD = 'sentinel-secret-4567';
const B = 250;

let sentinel: RedisSentinelSetup;
let upA: Upstream;
let upB: Upstream;
const instances: LobbyInstance[] = [];

before(async () => {
  if (SKIP) return;
  [sentinel, upA, upB] = await Promise.all([startRedisSentinel({ password: DATA_PASSWORD, sentinelPassword: SENTINEL_PASSWORD }), startUpstream('A'), startUpstream('B')]);
  const redis = {
    topology: [`sentinels: [${sentinel.sentinelAddresses.map((a) => `"${a}"`).join(', ')}]`, `name: ${sentinel.name}`,
      `password: "${DATA_PASSWORD}"`, `sentinel_password: "${SENTINEL_PASSWORD}"`],
    keyPrefix: PREFIX, heartbeatMs: 600_000, rateLimitSyncMs: INTERVAL_MS,
  };
  await startLobbyInstances(['s1', 's2', 's3'], (id, adminPort) => fleetConfig(id, adminPort, redis, `
services:
  a: { targets: ["${upA.origin}"], connections: 32 }
  b: { targets: ["${upB.origin}"] }
rate_limits:
  global: { key: "header:x-k", rate: ${R}, per: 1s, burst: ${B} }
routes:
  - { name: ra, match: { prefix: /a }, service: a }
  - { name: acc, match: { prefix: /acc }, service: a, rate_limit: [global] }
`), instances);
});

after(async () => {
  await stopLobbyInstances(instances);
  await sentinel?.stop();
  await upA?.close();
  await upB?.close();
});

describe('redis sentinel: three instances', { skip: SKIP }, () => {
  it('connect to the master the sentinels name, and a change on any instance reaches the others', async (t) => {
    // Heartbeats are 10 minutes apart: only the announcement can carry a change.
    const onMaster = await clientNames(sentinel.master.port);
    const onReplica = await clientNames(sentinel.replica.port);
    for (const id of ['s1', 's2', 's3']) {
      for (const name of [`lobby:${id}`, `lobby:${id}:sub`, `lobby:${id}:ratelimit`]) {
        assert.ok(onMaster.includes(name), `${name} on the master (${onMaster.join(', ')})`);
        assert.ok(!onReplica.includes(name), `${name} not on the replica`);
      }
    }
    for (const [index, origin] of instances.entries()) {
      const route = `r${index}`;
      const put = await origin.admin.put(`/routes/${route}`, { match: { prefix: `/${route}` }, service: 'b' });
      assert.equal(put.status, 201, JSON.stringify(put.body));
      const ms = await waitUntil(`${route} routed by every instance`, async () => {
        for (const i of instances) if (await routedTo(i.gw, `/${route}`) !== 'B') return false;
        return true;
      }, 3_000);
      t.diagnostic(`version ${put.body.version} stored through ${origin.id}: every instance routes by it ${ms} ms after the 200`);
    }
    await waitUntil('GET /cluster converged', async () => {
      const c = (await instances[1].admin.get('/cluster')).body;
      return c.converged === true && c.instances.length === 3;
    }, 3_000);
    const s = (await instances[0].admin.get('/status')).body;
    assert.deepEqual([s.redis.topology, s.redis.name, s.redis.sentinels], ['sentinel', sentinel.name, sentinel.sentinelAddresses]);
    assert.deepEqual([s.rate_limits.redis.topology, s.rate_limits.redis.name], ['sentinel', sentinel.name]);
    const shown = (await instances[0].admin.get('/config')).body.config.redis;
    assert.deepEqual([shown.password, shown.sentinel_password], ['<redacted>', '<redacted>']);
    assert.ok(!JSON.stringify(s).includes(DATA_PASSWORD) && !JSON.stringify(s).includes(SENTINEL_PASSWORD), 'no password in /status');
  });

  it('three instances under autocannon admit at most the limit plus the documented bound', async (t) => {
    for (const i of instances) await waitUntil('rate-limit sync up', async () => (await i.admin.get('/status')).body.rate_limits.redis.state === 'ok');
    const report = await checkSharedLimitBound(instances, '/acc', { rate: R, burst: B, intervalMs: INTERVAL_MS, headers: { 'x-k': `acc-${Date.now()}` } });
    t.diagnostic(report);
  });
});
