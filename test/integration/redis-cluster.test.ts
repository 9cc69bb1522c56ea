// Three Lobby instances on a real 3-master Redis Cluster (Debian's redis-server, created with
// `redis-cli --cluster create`; Lobby logs in with username and password; the failover under
// load is redis-cluster-failover.test.ts):
//   - a change on any instance reaches the two others through pub/sub, with every subscriber
//     on another node than the master that ran the store script (heartbeats are 10 minutes
//     apart here, so nothing else could carry it); GET /cluster (an MGET) works;
//   - the rate-limit bound of docs/rate-limiting.md holds with 3 instances under autocannon;
//   - buckets of many keys spread over the masters, one sync script per slot group (a script
//     whose keys crossed slots would fail every round: Redis answers CROSSSLOT).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/admin.js';
import { REDIS_MISSING } from '../helpers/redis.js';
import { clientNames, keysMatching, redisCall, REDIS_TOPOLOGY_MISSING, startRedisCluster, subscribersOn, type RedisClusterSetup } from '../helpers/redis-topology.js';
import { fleetConfig, routedTo, startLobbyInstances, stopLobbyInstances, type LobbyInstance } from '../helpers/lobby-instances.js';
import { checkSharedLimitBound, load } from '../helpers/shared-limit.js';

const SKIP = REDIS_MISSING || REDIS_TOPOLOGY_MISSING;
const PREFIX = `t${process.pid}:`;
const CHANNEL = `${PREFIX}config:changed`;
const INTERVAL_MS = 100;
const R = 250;
// Lobby logs in as its own ACL user (the default user has another password).
const LOBBY_USER = { name: 'lobby', password: 'lobby-secret-4567' };
const B = 250;

let cluster: RedisClusterSetup;
let upA: Upstream;
let upB: Upstream;
const instances: LobbyInstance[] = [];

before(async () => {
  if (SKIP) return;
  [cluster, upA, upB] = await Promise.all([startRedisCluster({ password: 'admin-secret-0123', user: LOBBY_USER }), startUpstream('A'), startUpstream('B')]);
  const redis = {
    topology: [`cluster: [${cluster.addresses.map((a) => `"${a}"`).join(', ')}]`, `username: ${LOBBY_USER.name}`, `password: "${LOBBY_USER.password}"`],
    keyPrefix: PREFIX, heartbeatMs: 600_000, rateLimitSyncMs: INTERVAL_MS,
  };
  await startLobbyInstances(['c1', 'c2', 'c3'], (id, adminPort) => fleetConfig(id, adminPort, redis, `
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
  await cluster?.stop();
  await upA?.close();
  await upB?.close();
});

describe('redis cluster: three instances on three masters', { skip: SKIP }, () => {
  it('a change on any instance reaches the others through pub/sub from another node', async (t) => {
    const publisher = await cluster.masterOf(`{${PREFIX}}config:latest`);
    assert.equal(await redisCall(publisher.port, 'EXISTS', `{${PREFIX}}config:latest`), 1, 'the config keys live on the master of their tag');
    // Each instance's subscriber sits on one node; a killed subscriber connection moves to the
    // next node. Until none is on the publishing master, and all three are subscribed.
    const others = cluster.nodes.filter((n) => n !== publisher);
    await waitUntil('every subscriber on another node than the publishing master', async () => {
      for (const line of String(await redisCall(publisher.port, 'CLIENT', 'LIST')).split('\n')) {
        const id = /(?:^| )id=(\d+) /.exec(line)?.[1];
        if (id && /name=lobby:c\d:sub /.test(line)) await redisCall(publisher.port, 'CLIENT', 'KILL', 'ID', id);
      }
      const counts = await Promise.all(others.map((n) => subscribersOn(n.port, CHANNEL)));
      return (await subscribersOn(publisher.port, CHANNEL)) === 0 && counts.reduce((a, b) => a + b, 0) === 3;
    }, 15_000);
    const where = await Promise.all(others.map(async (n) => `${n.port}: ${(await clientNames(n.port)).filter((x) => x.endsWith(':sub')).join(', ')}`));
    t.diagnostic(`publishing master ${publisher.port} (of ${cluster.nodes.map((n) => n.port).join(', ')}); subscribers ${where.join('; ')}`);

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
    const view = await waitUntil('GET /cluster converged', async () => {
      const c = (await instances[2].admin.get('/cluster')).body;
      return c.converged === true && c.instances.length === 3;
    }, 3_000).then(async () => (await instances[0].admin.get('/cluster')).body);
    assert.deepEqual(view.instances.map((i: { id: string }) => i.id), ['c1', 'c2', 'c3']);
    for (const i of instances) {
      const s = (await i.admin.get('/status')).body.redis;
      assert.equal(s.topology, 'cluster');
      assert.deepEqual(s.cluster, cluster.addresses);
      assert.equal(s.connected, true);
    }
  });

  it('three instances under autocannon admit at most the limit plus the documented bound', async (t) => {
    for (const i of instances) await waitUntil('rate-limit sync up', async () => (await i.admin.get('/status')).body.rate_limits.redis.state === 'ok');
    const report = await checkSharedLimitBound(instances, '/acc', { rate: R, burst: B, intervalMs: INTERVAL_MS, headers: { 'x-k': `acc-${Date.now()}` } });
    t.diagnostic(report);
  });

  it('the buckets of many keys spread over the masters and sync in one script per slot group', async () => {
    const keys = Array.from({ length: 48 }, (_, k) => `spread-${process.pid}-${k}`);
    // Each key twice, through different instances: every instance pushes it.
    await Promise.all(keys.map((k, n) => load(instances[n % 3].gw, '/acc', { 'x-k': k }, 1, 1)));
    await Promise.all(keys.map((k, n) => load(instances[(n + 1) % 3].gw, '/acc', { 'x-k': k }, 1, 1)));
    const masters: typeof cluster.nodes = [];
    for (const n of cluster.nodes) {
      const role = await redisCall(n.port, 'ROLE') as [string];
      if (role[0] === 'master') masters.push(n);
    }
    assert.equal(masters.length, 3);
    let perMaster: number[] = [];
    await waitUntil('every key\'s bucket in redis', async () => {
      perMaster = await Promise.all(masters.map(async (m) => (await keysMatching(m.port, `{${PREFIX}rl:*}:global:*`)).length));
      // At least these keys' buckets (the bound test's key may be there too, or may have expired).
      return perMaster.reduce((a, b) => a + b, 0) >= keys.length;
    }, 15_000);
    assert.ok(perMaster.filter((n) => n > 0).length >= 2, `buckets on more than one master: ${perMaster.join('/')}`);
    for (const i of instances) {
      const rl = (await i.admin.get('/status')).body.rate_limits.redis;
      assert.equal(rl.state, 'ok', JSON.stringify(rl));
      assert.equal(rl.topology, 'cluster');
    }
  });

});
