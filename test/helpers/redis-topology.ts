// Real Redis Sentinel and Redis Cluster setups for tests (and loadtest/convergence.ts), built
// from Debian's redis-server and redis-cli on loopback ports below the ephemeral range:
//   - startRedisSentinel(): one master, one replica, three sentinels (`redis-server --sentinel`)
//     that fail over fast (down-after-milliseconds 1000);
//   - startRedisCluster({ replicas }): three masters (and one replica each), created with
//     `redis-cli --cluster create`, cluster-node-timeout 1000 ms; the cluster bus gets its own
//     free port (cluster-port), not port + 10000 (which could land in the ephemeral range).
// No persistence; every process is SIGKILLed by stop(), which also removes the temp dir.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';
import { REDIS_SERVER } from './redis.js';
import { waitUntil } from './admin.js';

export const REDIS_CLI = process.env.LOBBY_TEST_REDIS_CLI ?? '/usr/bin/redis-cli';

/** Why Sentinel/Cluster tests cannot run here, or false (never skipped under CI, as REDIS_MISSING). */
export const REDIS_TOPOLOGY_MISSING: string | false = (existsSync(REDIS_SERVER) && existsSync(REDIS_CLI)) || process.env.CI
  ? false
  : `redis-server or redis-cli not found (apt-get install redis-server redis-tools, or set LOBBY_TEST_REDIS_SERVER / LOBBY_TEST_REDIS_CLI)`;

/** One redis-server process (a data node or a sentinel) that can be killed and started again. */
export interface RedisProcess {
  readonly port: number;
  readonly address: string;
  readonly running: boolean;
  /** SIGKILL; resolves when the process is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same arguments. */
  start(): Promise<void>;
  /** What it wrote so far (for failure messages). */
  log(): string;
}

function redisProcess(port: number, args: string[]): RedisProcess {
  let proc: ChildProcess | null = null;
  let output = '';
  const self: RedisProcess = {
    port,
    address: `127.0.0.1:${port}`,
    get running() { return proc !== null; },
    async start() {
      const p = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      proc = p;
      p.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
      p.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
      const exited = new Promise<never>((_, reject) => p.once('exit', (code) => reject(new Error(`redis-server on ${port} exited with ${code}:\n${output.slice(-2000)}`))));
      exited.catch(() => undefined);
      await Promise.race([waitUntil(`redis-server on ${port} answering PING`, () => redisCall(port, 'PING').then(() => true, () => false), 10_000), exited]);
    },
    async kill() {
      const p = proc;
      proc = null;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => p.once('exit', () => resolve()));
      p.kill('SIGKILL');
      await gone;
    },
    log: () => output,
  };
  return self;
}

// repl-diskless-sync-delay 0: a replica syncs at once (the default waits 5 s for more replicas).
const DATA_NODE_ARGS = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'notice', '--repl-diskless-sync-delay', '0'];

/** The password of the default user of a node (or sentinel) started with one, for redisCall. */
const PASSWORDS = new Map<number, string>();

/** One command on a short-lived connection (no retries: an answer or an error). */
export async function redisCall(port: number, ...args: (string | number)[]): Promise<unknown> {
  const client = new Redis({ host: '127.0.0.1', port, password: PASSWORDS.get(port), lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1_000, commandTimeout: 2_000, enableOfflineQueue: true });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await client.call(String(args[0]), ...args.slice(1).map(String));
  } finally {
    client.disconnect();
  }
}

/** `INFO`-style "key:value" lines as a map. */
export function infoFields(text: string): Map<string, string> {
  return new Map(text.split(/\r?\n/).filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
}

/** Client names connected to a node (CLIENT LIST), to see which node a connection is on. */
export async function clientNames(port: number): Promise<string[]> {
  const list = String(await redisCall(port, 'CLIENT', 'LIST'));
  return list.split('\n').map((line) => /(?:^| )name=(\S*)/.exec(line)?.[1] ?? '').filter((n) => n !== '');
}

async function tempDir(kind: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `lobby-${kind}-`));
}

// ---------------------------------------------------------------------------------------
// Sentinel

export interface RedisSentinelSetup {
  /** The master group name (redis.name). */
  readonly name: string;
  readonly master: RedisProcess;
  readonly replica: RedisProcess;
  readonly sentinels: RedisProcess[];
  /** "host:port" of each sentinel (redis.sentinels). */
  readonly sentinelAddresses: string[];
  /** The master's port as the sentinels report it (asks the first one that answers). */
  currentMasterPort(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * `password`: the data nodes' requirepass (and masterauth); `sentinelPassword`: the sentinels'
 * own requirepass (they are told the data nodes' password with `sentinel auth-pass`).
 */
export async function startRedisSentinel(opts: { name?: string; downAfterMs?: number; password?: string; sentinelPassword?: string } = {}): Promise<RedisSentinelSetup> {
  const name = opts.name ?? 'lobbymaster';
  const dir = await tempDir('sentinel');
  const started: RedisProcess[] = [];
  const auth = opts.password === undefined ? [] : ['--requirepass', opts.password, '--masterauth', opts.password];
  try {
    const masterPort = await freePort();
    if (opts.password !== undefined) PASSWORDS.set(masterPort, opts.password);
    const master = redisProcess(masterPort, ['--port', String(masterPort), ...DATA_NODE_ARGS, ...auth, '--dir', dir]);
    await master.start();
    started.push(master);
    const replicaPort = await freePort();
    if (opts.password !== undefined) PASSWORDS.set(replicaPort, opts.password);
    const replica = redisProcess(replicaPort, ['--port', String(replicaPort), ...DATA_NODE_ARGS, ...auth, '--dir', dir, '--replicaof', '127.0.0.1', String(masterPort)]);
    await replica.start();
    started.push(replica);
    await waitUntil('the replica in sync with the master', async () => infoFields(String(await redisCall(replicaPort, 'INFO', 'replication'))).get('master_link_status') === 'up', 10_000);
    // Each sentinel is told its id, the replica and the other sentinels up front: discovered
    // by hello messages (every 2 s) they would take seconds to know each other.
    const ports = [await freePort(), await freePort(), await freePort()];
    const ids = ports.map(() => randomBytes(20).toString('hex'));
    const sentinels: RedisProcess[] = [];
    for (const [i, port] of ports.entries()) {
      const file = join(dir, `sentinel-${port}.conf`);
      await writeFile(file, [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel myid ${ids[i]}`,
        `sentinel monitor ${name} 127.0.0.1 ${masterPort} 2`,
        ...(opts.password === undefined ? [] : [`sentinel auth-pass ${name} ${opts.password}`]),
        ...(opts.sentinelPassword === undefined ? [] : [`requirepass ${opts.sentinelPassword}`]),
        `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 1000}`,
        `sentinel failover-timeout ${name} 5000`,
        `sentinel parallel-syncs ${name} 1`,
        `sentinel known-replica ${name} 127.0.0.1 ${replicaPort}`,
        ...ports.flatMap((other, j) => (j === i ? [] : [`sentinel known-sentinel ${name} 127.0.0.1 ${other} ${ids[j]}`])),
        '',
      ].join('\n'));
      if (opts.sentinelPassword !== undefined) PASSWORDS.set(port, opts.sentinelPassword);
      const sentinel = redisProcess(port, [file, '--sentinel']);
      started.push(sentinel);
      sentinels.push(sentinel);
    }
    await Promise.all(sentinels.map((s) => s.start()));
    // Ready when every sentinel knows the replica and the two other sentinels: only then does
    // a kill of the master lead to a failover.
    await waitUntil('sentinels know the replica and each other', async () => {
      for (const s of sentinels) {
        const fields = await redisCall(s.port, 'SENTINEL', 'MASTER', name) as string[];
        const m = new Map<string, string>();
        for (let i = 0; i < fields.length; i += 2) m.set(fields[i], fields[i + 1]);
        if (m.get('num-slaves') !== '1' || m.get('num-other-sentinels') !== '2') return false;
      }
      return true;
    }, 15_000);
    return {
      name, master, replica, sentinels,
      sentinelAddresses: sentinels.map((s) => s.address),
      async currentMasterPort() {
        for (const s of sentinels) {
          if (!s.running) continue;
          try {
            const [, port] = await redisCall(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name) as [string, string];
            return Number(port);
          } catch { /* the next one */ }
        }
        throw new Error('no sentinel answered');
      },
      async stop() {
        await Promise.all(started.map((p) => p.kill()));
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await Promise.all(started.map((p) => p.kill()));
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

// ---------------------------------------------------------------------------------------
// Cluster

export interface RedisClusterSetup {
  readonly nodes: RedisProcess[];
  /** "host:port" of every node (redis.cluster). */
  readonly addresses: string[];
  /** The node that serves `key`'s slot as master now (asks a running node). */
  masterOf(key: string): Promise<RedisProcess>;
  /** Resolves once every running node reports cluster_state:ok and all slots are served. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Kills every node (keeping their nodes.conf) — an outage; start() brings the same cluster back, empty. */
  killAll(): Promise<void>;
  startAll(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `password`: the default user's requirepass (and masterauth); `user`: an ACL user with every
 * right, `{ name, password }` (what Lobby logs in as in the tests that set it).
 */
export async function startRedisCluster(opts: { replicas?: 0 | 1; nodeTimeoutMs?: number; password?: string; user?: { name: string; password: string } } = {}): Promise<RedisClusterSetup> {
  const replicas = opts.replicas ?? 0;
  const auth = [
    ...(opts.password === undefined ? [] : ['--requirepass', opts.password, '--masterauth', opts.password]),
    ...(opts.user === undefined ? [] : ['--user', opts.user.name, 'on', `>${opts.user.password}`, '~*', '&*', '+@all']),
  ];
  const count = 3 * (1 + replicas);
  const dir = await tempDir('cluster');
  const nodes: RedisProcess[] = [];
  const stopAll = async () => { await Promise.all(nodes.map((n) => n.kill())); };
  try {
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      let busPort = await freePort();
      while (busPort === port) busPort = await freePort();
      if (opts.password !== undefined) PASSWORDS.set(port, opts.password);
      nodes.push(redisProcess(port, [
        '--port', String(port), '--cluster-port', String(busPort), ...DATA_NODE_ARGS, ...auth, '--dir', dir,
        '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`,
        '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 1000),
        // A replica whose link just broke may always take over (the default refuses when its
        // data is older than node-timeout × 10, which a loaded test machine can reach).
        '--cluster-replica-validity-factor', '0',
      ]));
    }
    await Promise.all(nodes.map((n) => n.start()));
    const create = spawnSync(REDIS_CLI, ['--cluster', 'create', ...nodes.map((n) => n.address), '--cluster-replicas', String(replicas), '--cluster-yes'], {
      encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...(opts.password === undefined ? {} : { REDISCLI_AUTH: opts.password }) },
    });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed (${create.status}):\n${create.stdout}\n${create.stderr}`);
    const setup: RedisClusterSetup = {
      nodes,
      addresses: nodes.map((n) => n.address),
      async masterOf(key) {
        for (const n of nodes) {
          if (!n.running) continue;
          try {
            const slot = Number(await redisCall(n.port, 'CLUSTER', 'KEYSLOT', key));
            const shards = await redisCall(n.port, 'CLUSTER', 'SLOTS') as [number, number, [string, number, string]][];
            const range = shards.find(([from, to]) => slot >= from && slot <= to);
            const port = range?.[2][1];
            const node = nodes.find((x) => x.port === port);
            if (node) return node;
          } catch { /* ask the next one */ }
        }
        throw new Error(`no node knows the master of ${key}`);
      },
      async waitHealthy(timeoutMs = 15_000) {
        await waitUntil('every cluster node reports cluster_state:ok', async () => {
          for (const n of nodes) {
            if (!n.running) continue;
            try {
              const info = infoFields(String(await redisCall(n.port, 'CLUSTER', 'INFO')));
              if (info.get('cluster_state') !== 'ok' || info.get('cluster_slots_ok') !== '16384') return false;
            } catch {
              return false;
            }
          }
          return true;
        }, timeoutMs);
        if (replicas > 0) {
          await waitUntil('every replica linked to its master', async () => {
            let linked = 0;
            for (const n of nodes) {
              if (!n.running) continue;
              const info = infoFields(String(await redisCall(n.port, 'INFO', 'replication')));
              if (info.get('role') === 'slave' && info.get('master_link_status') === 'up') linked++;
            }
            return linked === 3;
          }, timeoutMs);
        }
      },
      killAll: stopAll,
      async startAll() {
        await Promise.all(nodes.filter((n) => !n.running).map((n) => n.start()));
      },
      async stop() {
        await stopAll();
        await rm(dir, { recursive: true, force: true });
      },
    };
    await setup.waitHealthy();
    return setup;
  } catch (error) {
    await stopAll();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** Keys on one node matching `pattern` (SCAN, every page). */
export async function keysMatching(port: number, pattern: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redisCall(port, 'SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000) as [string, string[]];
    out.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return out;
}

/** Subscribers of a classic pub/sub channel on one node (PUBSUB NUMSUB counts the node's own). */
export async function subscribersOn(port: number, channel: string): Promise<number> {
  const [, count] = await redisCall(port, 'PUBSUB', 'NUMSUB', channel) as [string, number];
  return Number(count);
}
