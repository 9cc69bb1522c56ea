// Convergence of several Lobby instances sharing one Redis (issue 17, docs/admin-api.md#convergence):
//
//   npx tsc -p tsconfig.json
//   node dist/loadtest/convergence.js --topology single|sentinel|cluster
//        [--instances 3] [--changes 20] [--outage 10] [--heartbeat-ms 1000] [--json FILE]
//
// Starts real servers on free loopback ports (Debian's redis-server: one server; or a master,
// a replica and three sentinels; or a 3-master cluster), two echo upstreams and N Lobby
// instances (test/helpers: the same launchers as the tests), then measures:
//
//   1. change → routed: `--changes` admin PUTs, each on the next instance in turn, each moving
//      the route /conv to the other upstream. The time from the PUT's 200 to the moment every
//      instance answers /conv from the new upstream (each instance polled over its own
//      keep-alive connection, back to back, from the 200 on). Median and max, after one change
//      more that warms up (the first after start; printed apart).
//   2. outage → converged: every Redis process SIGKILLed for `--outage` seconds, then started
//      again (empty: no persistence; a cluster keeps its nodes.conf and forms again). The time
//      from the restart until every instance reports the same version through Redis: GET
//      /cluster answers with all N instances, `converged: true`, at the version they ran
//      before, and an admin change is accepted again. For the cluster also the time until
//      every node reports cluster_state:ok (Redis's own recovery, part of the figure).
//
// Everything runs on this machine; the figures include a loaded machine's scheduling. Ports are
// taken from freePort() (20000-32000); every process is stopped at the end, also on failure.
import { parseArgs } from 'node:util';
import { writeFile } from 'node:fs/promises';
import { Pool } from 'undici';
import { startUpstream, type Upstream } from '../test/helpers/upstream.js';
import { waitUntil } from '../test/helpers/admin.js';
import { startRedis, type RedisServer } from '../test/helpers/redis.js';
import { startRedisCluster, startRedisSentinel, type RedisClusterSetup, type RedisSentinelSetup } from '../test/helpers/redis-topology.js';
import { startLobbyInstances, stopLobbyInstances, type LobbyInstance } from '../test/helpers/lobby-instances.js';
import { median } from './stats.js';

type Topology = 'single' | 'sentinel' | 'cluster';

const { values: args } = parseArgs({
  options: {
    topology: { type: 'string', default: 'single' },
    instances: { type: 'string', default: '3' },
    changes: { type: 'string', default: '20' },
    outage: { type: 'string', default: '10' },
    'heartbeat-ms': { type: 'string', default: '1000' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  process.stdout.write('usage: node dist/loadtest/convergence.js --topology single|sentinel|cluster [--instances N] [--changes N] [--outage SECONDS] [--heartbeat-ms MS] [--json FILE]\n');
  process.exit(0);
}
const topology = args.topology as Topology;
if (!['single', 'sentinel', 'cluster'].includes(topology)) throw new Error(`--topology must be single, sentinel or cluster, got ${topology}`);
const INSTANCES = Number(args.instances);
const CHANGES = Number(args.changes);
const OUTAGE_S = Number(args.outage);
const HEARTBEAT_MS = Number(args['heartbeat-ms']);
const PREFIX = `conv${process.pid}:`;

interface Servers {
  /** The `redis:` section's address keys. */
  yaml: string;
  killAll(): Promise<void>;
  startAll(): Promise<void>;
  /** Resolves when Redis itself has recovered (cluster: every node reports cluster_state:ok). */
  healthy(): Promise<void>;
  stop(): Promise<void>;
}

async function startServers(): Promise<Servers> {
  switch (topology) {
    case 'single': {
      const redis: RedisServer = await startRedis();
      return { yaml: `url: "${redis.url}"`, killAll: () => redis.kill(), startAll: () => redis.start(), healthy: async () => undefined, stop: () => redis.stop() };
    }
    case 'sentinel': {
      const s: RedisSentinelSetup = await startRedisSentinel();
      return {
        yaml: `sentinels: [${s.sentinelAddresses.map((a) => `"${a}"`).join(', ')}]\n  name: ${s.name}`,
        // The data nodes go; the sentinels stay (they have no replica to promote meanwhile).
        killAll: async () => { await Promise.all([s.master.kill(), s.replica.kill()]); },
        startAll: async () => { await s.master.start(); await s.replica.start(); },
        healthy: async () => undefined,
        stop: () => s.stop(),
      };
    }
    case 'cluster': {
      const c: RedisClusterSetup = await startRedisCluster();
      return {
        yaml: `cluster: [${c.addresses.map((a) => `"${a}"`).join(', ')}]`,
        killAll: () => c.killAll(),
        startAll: () => c.startAll(),
        healthy: () => c.waitHealthy(30_000),
        stop: () => c.stop(),
      };
    }
  }
}

/** Polls `/conv` on one instance back to back until it answers from `upstream`; resolves with that moment. */
async function routedAt(pool: Pool, upstream: string, deadline: number): Promise<number> {
  for (;;) {
    const res = await pool.request({ path: '/conv', method: 'GET', headers: { host: 'localhost' } });
    const text = await res.body.text();
    const at = performance.now();
    if (res.statusCode === 200 && (JSON.parse(text) as { upstream: string }).upstream === upstream) return at;
    if (at > deadline) throw new Error(`/conv not routed to ${upstream} within 30 s`);
  }
}

const round1 = (ms: number) => Math.round(ms * 10) / 10;

async function main(): Promise<void> {
  const instances: LobbyInstance[] = [];
  const upstreams: Upstream[] = [];
  const pools: Pool[] = [];
  let servers: Servers | null = null;
  try {
    servers = await startServers();
    upstreams.push(await startUpstream('A'), await startUpstream('B'));
    const [upA, upB] = upstreams;
    const ids = Array.from({ length: INSTANCES }, (_, i) => `conv-${i + 1}`);
    await startLobbyInstances(ids, (id, adminPort) => `
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
admin: { host: 127.0.0.1, port: ${adminPort} }
redis:
  ${servers!.yaml}
  key_prefix: "${PREFIX}"
  instance_id: ${id}
  heartbeat_ms: ${HEARTBEAT_MS}
services:
  a: { targets: ["${upA.origin}"] }
  b: { targets: ["${upB.origin}"] }
routes:
  - { name: conv, match: { prefix: /conv }, service: a }
`, instances);
    const converged = async () => {
      const c = (await instances[0].admin.get('/cluster')).body;
      return c.converged === true && c.instances?.length === INSTANCES;
    };
    await waitUntil('the instances converged at start', converged, 15_000);
    for (const i of instances) pools.push(new Pool(i.gw.url, { connections: 1 }));

    // 1. change → routed on every instance. Change 0 warms up (each instance's first change from
    // Redis, the pollers' first connections): reported apart, not in the median and max.
    const changeMs: number[] = [];
    let firstChangeMs = 0;
    for (let n = 0; n <= CHANGES; n++) {
      const to = n % 2 === 0 ? 'b' : 'a';
      const origin = instances[n % INSTANCES];
      const put = await origin.admin.put('/routes/conv', { match: { prefix: '/conv' }, service: to });
      const answeredAt = performance.now();
      if (put.status !== 200) throw new Error(`PUT /routes/conv on ${origin.id} answered ${put.status}: ${JSON.stringify(put.body)}`);
      const deadline = answeredAt + 30_000;
      const at = await Promise.all(pools.map((pool) => routedAt(pool, to.toUpperCase(), deadline)));
      if (n === 0) firstChangeMs = Math.max(...at) - answeredAt;
      else changeMs.push(Math.max(...at) - answeredAt);
    }
    const sorted = [...changeMs].sort((a, b) => a - b);

    // 2. A Redis outage, then the time to converge again.
    await waitUntil('converged before the outage', converged, 10_000);
    const before = (await instances[0].admin.get('/config')).body as { version: number; hash: string };
    await servers.killAll();
    await waitUntil('every instance sees redis down', async () => {
      for (const i of instances) if ((await i.admin.get('/status')).body.redis.connected !== false) return false;
      return true;
    }, 15_000);
    await new Promise((r) => setTimeout(r, OUTAGE_S * 1000));
    const restartedAt = performance.now();
    await servers.startAll();
    const processesUpMs = performance.now() - restartedAt;
    await servers.healthy();
    const redisHealthyMs = performance.now() - restartedAt;
    await waitUntil('every instance reports the same version through redis', async () => {
      const c = await instances[0].admin.get('/cluster');
      return c.status === 200 && c.body.converged === true && c.body.instances.length === INSTANCES && c.body.latest.version === before.version && c.body.latest.hash === before.hash;
    }, 60_000);
    const convergedMs = performance.now() - restartedAt;
    await waitUntil('an admin change accepted again', async () => {
      const r = await instances[INSTANCES - 1].admin.put('/routes/conv', { match: { prefix: '/conv' }, service: 'b' });
      return r.status === 200;
    }, 60_000);
    const changeAcceptedMs = performance.now() - restartedAt;

    const result = {
      topology,
      instances: INSTANCES,
      heartbeat_ms: HEARTBEAT_MS,
      change_to_routed_ms: { count: changeMs.length, median: round1(median(changeMs)), max: round1(sorted[sorted.length - 1]), all: changeMs.map(round1), first_change: round1(firstChangeMs) },
      outage: {
        seconds: OUTAGE_S,
        redis_processes_up_ms: round1(processesUpMs),
        redis_healthy_ms: round1(redisHealthyMs),
        same_version_ms: round1(convergedMs),
        change_accepted_ms: round1(changeAcceptedMs),
        version: before.version,
      },
    };
    process.stdout.write(
      `convergence, ${topology}, ${INSTANCES} instances, heartbeat_ms ${HEARTBEAT_MS}\n` +
      `  change → every instance routes by it (${changeMs.length} changes): median ${result.change_to_routed_ms.median} ms, max ${result.change_to_routed_ms.max} ms ` +
      `(the first change after start, not counted: ${result.change_to_routed_ms.first_change} ms)\n` +
      `  after a ${OUTAGE_S} s outage, from the restart: redis processes up ${result.outage.redis_processes_up_ms} ms, ` +
      `${topology === 'cluster' ? `cluster_state ok ${result.outage.redis_healthy_ms} ms, ` : ''}` +
      `every instance at the same version ${result.outage.same_version_ms} ms, a change accepted ${result.outage.change_accepted_ms} ms\n`,
    );
    if (args.json) await writeFile(args.json, JSON.stringify(result, null, 2) + '\n');
  } finally {
    await Promise.all(pools.map((p) => p.close()));
    await stopLobbyInstances(instances);
    await Promise.all(upstreams.map((u) => u.close()));
    await servers?.stop();
  }
}

await main();
