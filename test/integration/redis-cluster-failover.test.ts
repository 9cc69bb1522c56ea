// A Redis Cluster failover under load: three Lobby instances on a real cluster of 3 masters and
// 3 replicas (cluster-node-timeout 1000 ms). The master holding the config keys (and, by the
// choice of the load's keys, their rate-limit buckets) is SIGKILLed while every instance is
// under load; its replica takes over. No data-plane request fails, admin changes are refused
// with 503 until the new master answers and accepted after, and the limits are shared again
// (test/helpers/failover-under-load.ts has the whole check). Then every node is killed: the
// instances serve on without a busy reconnect loop, refuse changes, and converge again on the
// restarted (empty) cluster.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { REDIS_MISSING } from '../helpers/redis.js';
import { redisCall, REDIS_TOPOLOGY_MISSING, startRedisCluster, type RedisClusterSetup, type RedisProcess } from '../helpers/redis-topology.js';
import { fleetConfig, routedTo, startLobbyInstances, stopLobbyInstances, type LobbyInstance } from '../helpers/lobby-instances.js';
import { waitUntil } from '../helpers/admin.js';
import { sumCpuMicros } from '../../loadtest/proc-stat.js';
import { bucketKey, FAILOVER_CONFIG, failoverUnderLoad } from '../helpers/failover-under-load.js';

const SKIP = REDIS_MISSING || REDIS_TOPOLOGY_MISSING;
const PREFIX = `t${process.pid}:`;
const INTERVAL_MS = 100;

let cluster: RedisClusterSetup;
let up: Upstream;
const instances: LobbyInstance[] = [];

before(async () => {
  if (SKIP) return;
  [cluster, up] = await Promise.all([startRedisCluster({ replicas: 1 }), startUpstream('A')]);
  const redis = { topology: [`cluster: [${cluster.addresses.map((a) => `"${a}"`).join(', ')}]`], keyPrefix: PREFIX, heartbeatMs: 200, rateLimitSyncMs: INTERVAL_MS };
  await startLobbyInstances(['f1', 'f2', 'f3'], (id, adminPort) => fleetConfig(id, adminPort, redis, `
services:
  a: { targets: ["${up.origin}"], connections: 32 }
${FAILOVER_CONFIG}`), instances);
});

after(async () => {
  await stopLobbyInstances(instances);
  await cluster?.stop();
  await up?.close();
});

/** A header value whose bucket of `limit` lives on `master` (Lobby's own key naming, asked of the cluster). */
async function keyOn(master: RedisProcess, limit: string): Promise<string> {
  for (let n = 0; n < 200; n++) {
    const value = `${limit}-${process.pid}-${n}`;
    if (await cluster.masterOf(bucketKey(PREFIX, 'cluster', limit, value)) === master) return value;
  }
  throw new Error(`no key of ${limit} found on ${master.address}`);
}

describe('redis cluster failover under load', { skip: SKIP }, () => {
  it('kill -9 of the master with the config keys: no failed request, 503 then 200 for changes, limits shared again', async (t) => {
    const master = await cluster.masterOf(`{${PREFIX}}config:latest`);
    const loadKey = await keyOn(master, 'big');
    const smallKey = await keyOn(master, 'small');
    const figures = await failoverUnderLoad({
      instances,
      loadKey,
      smallKey,
      bucketStored: async () => (await redisCall(master.port, 'EXISTS', bucketKey(PREFIX, 'cluster', 'big', loadKey))) === 1,
      killMaster: () => master.kill(),
      promoted: async () => (await cluster.masterOf(`{${PREFIX}}config:latest`)) !== master,
      intervalMs: INTERVAL_MS,
      diagnostic: (m) => t.diagnostic(m),
    });
    t.diagnostic(JSON.stringify(figures));
  });

  it('a whole-cluster outage: no busy loop, the instances serve on and refuse changes, and converge after', async (t) => {
    const before = (await instances[0].admin.get('/config')).body as { version: number; hash: string };
    await cluster.killAll();
    for (const i of instances) {
      await waitUntil('redis reported down', async () => (await i.admin.get('/status')).body.redis.connected === false, 5_000);
    }
    // Reconnecting is paced: while no node answers, the control plane idles (a reconnect loop
    // without backoff burns what CPU it gets: ioredis's Cluster subscriber took 950 ms a second
    // alone, 215-295 with three instances on a loaded 2-core machine; paced, 30-60).
    const cpu = () => instances.map((i) => { const c = sumCpuMicros([i.gw.proc.pid!]); return c.userUs + c.systemUs; });
    const cpuBefore = cpu();
    const startedAt = performance.now();
    await new Promise((r) => setTimeout(r, 2_000)); // a measurement window, not a wait for an event
    const seconds = (performance.now() - startedAt) / 1000;
    const busy = cpu().map((us, k) => (us - cpuBefore[k]) / 1000 / seconds);
    t.diagnostic(`CPU during the outage: ${busy.map((ms) => ms.toFixed(0)).join('/')} ms per second per instance`);
    for (const ms of busy) assert.ok(ms < 150, `CPU ${ms.toFixed(0)} ms/s during the outage`);
    for (const i of instances) assert.equal(await routedTo(i.gw, '/a'), 'A');
    const refused = await instances[0].admin.put('/routes/during-outage', { match: { prefix: '/during-outage' }, service: 'a' });
    assert.deepEqual([refused.status, refused.body.error.code], [503, 'redis_unavailable']);

    const restartedAt = performance.now();
    await cluster.startAll();
    await cluster.waitHealthy();
    const healthyMs = performance.now() - restartedAt;
    await waitUntil('every instance at the same version through the restarted cluster', async () => {
      const c = await instances[1].admin.get('/cluster');
      return c.status === 200 && c.body.converged === true && c.body.instances.length === 3 && c.body.latest.version === before.version && c.body.latest.hash === before.hash;
    }, 10_000);
    t.diagnostic(`restarted empty: cluster_state ok after ${healthyMs.toFixed(0)} ms, every instance at version ${before.version} after ${(performance.now() - restartedAt).toFixed(0)} ms`);
    const accepted = await instances[2].admin.put('/routes/after-outage', { match: { prefix: '/after-outage' }, service: 'a' });
    assert.equal(accepted.status, 201, JSON.stringify(accepted.body));
    assert.equal(accepted.body.version, before.version + 1, 'numbered after the versions before the outage');
  });
});
