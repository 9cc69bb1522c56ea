// A Redis Sentinel failover under load: three Lobby instances on one master, one replica and
// three sentinels (down-after-milliseconds 1000). The master is SIGKILLed while every instance
// is under load; the sentinels promote the replica and the instances follow. No data-plane
// request fails, admin changes are refused with 503 until the promoted master answers and
// accepted after, and the limits are shared again (test/helpers/failover-under-load.ts).
import { after, before, describe, it } from 'node:test';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { REDIS_MISSING } from '../helpers/redis.js';
import { redisCall, REDIS_TOPOLOGY_MISSING, startRedisSentinel, type RedisSentinelSetup } from '../helpers/redis-topology.js';
import { fleetConfig, startLobbyInstances, stopLobbyInstances, type LobbyInstance } from '../helpers/lobby-instances.js';
import { bucketKey, FAILOVER_CONFIG, failoverUnderLoad } from '../helpers/failover-under-load.js';

const SKIP = REDIS_MISSING || REDIS_TOPOLOGY_MISSING;
const PREFIX = `t${process.pid}:`;
const INTERVAL_MS = 100;

let sentinel: RedisSentinelSetup;
let up: Upstream;
const instances: LobbyInstance[] = [];

before(async () => {
  if (SKIP) return;
  [sentinel, up] = await Promise.all([startRedisSentinel(), startUpstream('A')]);
  const redis = {
    topology: [`sentinels: [${sentinel.sentinelAddresses.map((a) => `"${a}"`).join(', ')}]`, `name: ${sentinel.name}`],
    keyPrefix: PREFIX, heartbeatMs: 200, rateLimitSyncMs: INTERVAL_MS,
  };
  await startLobbyInstances(['f1', 'f2', 'f3'], (id, adminPort) => fleetConfig(id, adminPort, redis, `
services:
  a: { targets: ["${up.origin}"], connections: 32 }
${FAILOVER_CONFIG}`), instances);
});

after(async () => {
  await stopLobbyInstances(instances);
  await sentinel?.stop();
  await up?.close();
});

describe('redis sentinel failover under load', { skip: SKIP }, () => {
  it('kill -9 of the master: no failed request, 503 then 200 for changes, limits shared again', async (t) => {
    const loadKey = `big-${process.pid}`;
    const figures = await failoverUnderLoad({
      instances,
      loadKey,
      smallKey: `small-${process.pid}`,
      bucketStored: async () => (await redisCall(sentinel.master.port, 'EXISTS', bucketKey(PREFIX, 'single', 'big', loadKey))) === 1,
      killMaster: () => sentinel.master.kill(),
      promoted: async () => (await sentinel.currentMasterPort()) === sentinel.replica.port,
      intervalMs: INTERVAL_MS,
      diagnostic: (m) => t.diagnostic(m),
    });
    t.diagnostic(JSON.stringify(figures));
  });
});
