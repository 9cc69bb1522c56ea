// A Redis Cluster failover under load: three Lobby instances on a real cluster of 3 masters and
// 3 replicas (cluster-node-timeout 1000 ms). The master holding the config keys (and, by the
// choice of the load's keys, their rate-limit buckets) is SIGKILLed while every instance is
// under load; its replica takes over. No data-plane request fails, admin changes are refused
// with 503 until the new master answers and accepted after, and the limits are shared again
// (test/helpers/failover-under-load.ts has the whole check).
import { after, before, describe, it } from 'node:test';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { REDIS_MISSING } from '../helpers/redis.js';
import { redisCall, REDIS_TOPOLOGY_MISSING, startRedisCluster, type RedisClusterSetup, type RedisProcess } from '../helpers/redis-topology.js';
import { startLobbyInstances, stopLobbyInstances, type LobbyInstance } from '../helpers/lobby-instances.js';
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
  await startLobbyInstances(['f1', 'f2', 'f3'], (id, adminPort) => `
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
admin: { host: 127.0.0.1, port: ${adminPort} }
redis:
  cluster: [${cluster.addresses.map((a) => `"${a}"`).join(', ')}]
  key_prefix: "${PREFIX}"
  instance_id: ${id}
  heartbeat_ms: 200
  rate_limit_sync_ms: ${INTERVAL_MS}
services:
  a: { targets: ["${up.origin}"], connections: 32 }
${FAILOVER_CONFIG}`, instances);
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
});
