// Two Lobby instances sharing one redis-server (Debian's, started here on a loopback port):
// a change on one is applied by the other within a second, an instance started later loads
// the latest config before it reports ready, and when redis-server is killed both keep
// serving (changes refused, /status says so) and converge again once it is back, although
// it restarts empty.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { adminClient, waitUntil, type AdminClient } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisServer, REDIS_MISSING } from '../helpers/redis.js';
import { routedTo } from '../helpers/lobby-instances.js';

const TOKEN = 'cluster-test-token-0123456789';

let redis: RedisServer;
let upA: Upstream;
let upB: Upstream;
const gateways: Gateway[] = [];

async function startInstance(id: string, redisUrl = redis.url, waitReady = true): Promise<{ gw: Gateway; admin: AdminClient }> {
  const adminPort = await freePort();
  const gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1, drain_timeout_ms: 2000 }
admin:
  port: ${adminPort}
  token: \${LOBBY_ADMIN_TOKEN}
redis: { url: "${redisUrl}", key_prefix: "test:", instance_id: ${id}, heartbeat_ms: 200 }
services:
  a: { targets: ["${upA.origin}"] }
  b: { targets: ["${upB.origin}"] }
routes:
  - { name: ra, match: { prefix: /a }, service: a }
`, { env: { LOBBY_ADMIN_TOKEN: TOKEN } });
  gateways.push(gw);
  const admin = adminClient(adminPort, TOKEN);
  if (waitReady) await admin.waitReady();
  return { gw, admin };
}


before(async () => {
  if (REDIS_MISSING) return;
  redis = await startRedis();
  upA = await startUpstream('A');
  upB = await startUpstream('B');
});

after(async () => {
  await Promise.all(gateways.map((g) => g.stop()));
  await redis?.stop();
  await upA?.close();
  await upB?.close();
});

describe('cluster through redis', { skip: REDIS_MISSING }, () => {
  it('converges: B started after a change loads it, changes propagate both ways within 1 s, and after a redis outage', async (t) => {
    const a = await startInstance('lobby-a');
    const seeded = (await a.admin.get('/config')).body;
    assert.equal(seeded.version, 1, 'the first instance seeds an empty redis with its config as version 1');

    // A change on A before B exists.
    const c1 = await a.admin.put('/routes/rb', { match: { prefix: '/b' }, service: 'b' });
    assert.equal(c1.status, 201, JSON.stringify(c1.body));
    assert.equal(c1.body.version, 2);

    // B starts on a file without /b, and is ready only once it loaded version 2 from redis.
    const b = await startInstance('lobby-b');
    const bConfig = (await b.admin.get('/config')).body;
    assert.deepEqual([bConfig.version, bConfig.hash, bConfig.source], [2, c1.body.hash, 'cluster']);
    assert.equal(await routedTo(b.gw, '/b'), 'B');
    assert.equal(bConfig.config.server.port, b.gw.port, 'B keeps its own listen port');

    // A change on A is applied by B within a second, and one on B by A.
    for (const [from, to, route, service] of [[a, b, 'rc', 'a'], [b, a, 'rd', 'b']] as const) {
      const r = await from.admin.put(`/routes/${route}`, { match: { prefix: `/${route}` }, service });
      assert.equal(r.status, 201);
      const ms = await waitUntil(`${route} applied by the other instance`, async () => (await to.admin.get('/config')).body.hash === r.body.hash, 1000);
      t.diagnostic(`change ${r.body.version} made on one instance applied by the other after ≤${ms} ms`);
      assert.equal(await routedTo(to.gw, `/${route}`), service.toUpperCase());
    }
    const latestVersion = (await a.admin.get('/config')).body.version as number;
    assert.equal(latestVersion, 4);

    // /cluster on either instance: both, their applied version, their heartbeat.
    await waitUntil('both heartbeats at version 4', async () => {
      const c = (await b.admin.get('/cluster')).body;
      return c.converged && c.instances.length === 2;
    }, 2000);
    const view = (await a.admin.get('/cluster')).body;
    assert.deepEqual(view.instances.map((i: { id: string; version: number }) => [i.id, i.version]), [['lobby-a', 4], ['lobby-b', 4]]);
    assert.equal(view.latest.version, 4);
    for (const i of view.instances) assert.ok(i.heartbeat_age_ms < 1000, JSON.stringify(i));

    // redis-server dies: both keep serving their config, say so, and refuse changes.
    await redis.kill();
    for (const x of [a, b]) {
      await waitUntil('redis reported down', async () => (await x.admin.get('/status')).body.redis.connected === false, 3000);
      const s = (await x.admin.get('/status')).body;
      assert.equal(s.redis.last_error !== null, true);
      assert.equal(s.ready, true, 'still ready: serving the last config');
      assert.equal(await routedTo(x.gw, '/rc'), 'A');
      assert.equal(await routedTo(x.gw, '/rd'), 'B');
    }
    const refused = await a.admin.put('/routes/re', { match: { prefix: '/re' }, service: 'a' });
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, 'redis_unavailable');
    assert.equal((await a.admin.get('/cluster')).status, 503);

    // It comes back empty (no persistence): the instances offer their version and converge on it.
    await redis.start();
    for (const x of [a, b]) {
      await waitUntil('redis reconnected and synchronized', async () => {
        const s = (await x.admin.get('/status')).body;
        return s.redis.connected && s.redis.synchronized;
      }, 5000);
    }
    await waitUntil('converged after the outage', async () => {
      const c = (await a.admin.get('/cluster')).body;
      return c.converged && c.instances.length === 2 && c.latest.version === latestVersion;
    }, 3000);

    // And changes flow again, numbered after the versions before the outage.
    const after = await b.admin.put('/routes/re', { match: { prefix: '/re' }, service: 'a' });
    assert.equal(after.status, 201, JSON.stringify(after.body));
    assert.equal(after.body.version, latestVersion + 1);
    await waitUntil('the post-outage change applied on A', async () => (await a.admin.get('/config')).body.hash === after.body.hash, 1000);
    assert.equal(await routedTo(a.gw, '/re'), 'A');
  });

  it('an instance that cannot reach redis at start serves its file config but is not ready', async () => {
    const c = await startInstance('lobby-c', `redis://127.0.0.1:${await freePort()}`, false);
    assert.equal(await routedTo(c.gw, '/a'), 'A');
    const ready = await c.admin.get('/readyz');
    assert.equal(ready.status, 503);
    assert.match(ready.body.reasons.join(' '), /latest config stored in redis is not loaded yet/);
    const s = (await c.admin.get('/status')).body;
    assert.equal(s.redis.connected, false);
    assert.equal(s.config.version, 0);
    assert.equal((await c.admin.put('/routes/x', { match: { prefix: '/x' }, service: 'a' })).status, 503);
  });
});
