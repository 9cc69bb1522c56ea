// Opens a connection to the instance's Redis, whichever its topology (src/shared/redis-endpoint.ts),
// with the one policy both syncs need: fail fast while no master is reachable (a change is
// refused, a rate-limit round fails, rather than either queueing behind an outage) and
// reconnect forever, quickly (after an outage or a failover the instances converge again).
//
//   single    ioredis `Redis` on the URL;
//   sentinel  ioredis `Redis` that asks the sentinels for the master of the group; it reconnects
//             on the master's loss (asking them again, so it finds the promoted replica) and on
//             READONLY (a master demoted by a switchover);
//   cluster   ioredis `Cluster`: one connection per node, commands routed by slot. A command for
//             a slot whose master is gone fails at once (retryDelayOnFailover 0, as the offline
//             queue is off for one server); the slot map is refreshed every second, so a
//             promoted replica is found within a second of the cluster's failover. Its
//             subscriber is ClusterChannelSubscriber (below).
import { EventEmitter } from 'node:events';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { lazily } from '../shared/lazy-require.js';

// Loaded when a config first names a Redis: an instance without one does not carry ioredis
// (about 10 MB of RSS on Node 20).
const ioredis = lazily<typeof import('ioredis')>('ioredis');
import type { HostPort, RedisEndpoint } from '../shared/redis-endpoint.js';

export type RedisClient = Redis | Cluster;

export interface RedisClientOptions {
  /** CLIENT SETNAME of every connection (Cluster: of each node connection). */
  connectionName: string;
  /** ioredis commandTimeout; none for a subscriber. */
  commandTimeoutMs?: number;
  /** Queue commands while (re)connecting: only for the subscriber, whose SUBSCRIBE must survive a reconnect. */
  offlineQueue?: boolean;
}

const RECONNECT = (times: number) => Math.min(100 * times, 1_000);
/** How often a Cluster client re-reads the slot map (bounds how late it learns of a failover). */
export const CLUSTER_SLOTS_REFRESH_MS = 1_000;

export function createRedisClient(endpoint: RedisEndpoint, opts: RedisClientOptions): RedisClient {
  const common: RedisOptions = {
    enableOfflineQueue: opts.offlineQueue ?? false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: opts.commandTimeoutMs,
    retryStrategy: RECONNECT,
    connectionName: opts.connectionName,
  };
  switch (endpoint.topology) {
    case 'single':
      return new (ioredis().Redis)(endpoint.url, common);
    case 'sentinel':
      return new (ioredis().Redis)({
        ...common,
        sentinels: endpoint.sentinels,
        name: endpoint.name,
        username: endpoint.username,
        password: endpoint.password,
        sentinelUsername: endpoint.sentinelUsername,
        sentinelPassword: endpoint.sentinelPassword,
        sentinelRetryStrategy: RECONNECT,
        sentinelCommandTimeout: 1_000,
        // A master demoted to a replica while we were connected (a switchover: SENTINEL
        // FAILOVER) answers writes with READONLY: reconnect, asking the sentinels again. (Not
        // ioredis's failoverDetector: its disconnect on +switch-master can hit a connection
        // that is just being made to the new master, which then stayed closed in tests.)
        reconnectOnError: (error) => error.message.startsWith('READONLY'),
      });
    case 'cluster': {
      const options: ClusterOptions = {
        enableOfflineQueue: opts.offlineQueue ?? false,
        clusterRetryStrategy: RECONNECT,
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 0,
        slotsRefreshInterval: CLUSTER_SLOTS_REFRESH_MS,
        slotsRefreshTimeout: 1_000,
        // Per node (ioredis sets their reconnect and offline queue itself: it re-reads the slot map instead).
        redisOptions: {
          maxRetriesPerRequest: common.maxRetriesPerRequest,
          connectTimeout: common.connectTimeout,
          commandTimeout: common.commandTimeout,
          connectionName: common.connectionName,
          username: endpoint.username,
          password: endpoint.password,
        },
      };
      return new (ioredis().Cluster)(endpoint.nodes, options);
    }
  }
}

/** What the config sync needs of a subscriber connection. */
export interface RedisSubscriber {
  subscribe(channel: string): Promise<unknown>;
  on(event: 'message', listener: (channel: string, message: string) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  disconnect(): void;
}

/**
 * A connection for classic SUBSCRIBE. One server and Sentinel: a client like the others (its
 * offline queue on, so that SUBSCRIBE survives a reconnect; ioredis resubscribes). Cluster:
 * ClusterChannelSubscriber over the nodes `companion` (the command client) has found, and the
 * configured ones.
 */
export function createSubscriber(endpoint: RedisEndpoint, connectionName: string, companion: RedisClient): RedisSubscriber {
  if (endpoint.topology !== 'cluster') return createRedisClient(endpoint, { connectionName, offlineQueue: true }) as Redis;
  const discovered = () => (companion instanceof ioredis().Cluster
    ? companion.nodes('all').map((n) => ({ host: n.options.host ?? '127.0.0.1', port: n.options.port ?? 6379 }))
    : []);
  return new ClusterChannelSubscriber(endpoint, connectionName, discovered);
}

/**
 * Classic pub/sub on a Redis Cluster, which forwards every PUBLISH to every node: one connection
 * to any node, moved to the next node when it drops, after a backoff (100 ms, growing to 1 s
 * while no node answers). Not ioredis's Cluster subscriber: it reselects a node at once on
 * every drop, so while no node answers it spins (a whole core in tests) and piles listeners on
 * the dead socket.
 */
export class ClusterChannelSubscriber extends EventEmitter implements RedisSubscriber {
  private client: Redis | null = null;
  private readonly channels = new Set<string>();
  private attempts = 0;
  private next = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly endpoint: Extract<RedisEndpoint, { topology: 'cluster' }>,
    private readonly connectionName: string,
    private readonly discovered: () => HostPort[],
  ) {
    super();
    this.connect();
  }

  async subscribe(channel: string): Promise<unknown> {
    this.channels.add(channel);
    const client = this.client;
    return client?.status === 'ready' ? client.subscribe(channel) : undefined; // else on 'ready'
  }

  disconnect(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.client?.disconnect();
    this.client = null;
  }

  private candidates(): HostPort[] {
    const seen = new Set<string>();
    return [...this.discovered(), ...this.endpoint.nodes].filter(({ host, port }) => {
      const key = `${host}:${port}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  }

  private connect(): void {
    const nodes = this.candidates();
    const node = nodes[this.next++ % nodes.length];
    const client = new (ioredis().Redis)({
      host: node.host,
      port: node.port,
      username: this.endpoint.username,
      password: this.endpoint.password,
      connectionName: this.connectionName,
      connectTimeout: 2_000,
      retryStrategy: () => null, // a drop moves to the next node, here
    });
    this.client = client;
    client.on('error', (error: Error) => this.emit('error', error));
    client.on('message', (channel: string, message: string) => this.emit('message', channel, message));
    client.once('ready', () => {
      this.attempts = 0;
      if (this.channels.size > 0) client.subscribe(...this.channels).catch((error: Error) => this.emit('error', error));
    });
    client.once('end', () => {
      if (this.closed || this.client !== client) return;
      this.client = null;
      this.timer = setTimeout(() => { this.timer = null; this.connect(); }, RECONNECT(++this.attempts));
      this.timer.unref();
    });
  }
}

/** An error event's text, also for the AggregateError a refused multi-address connect gives. */
export function errorText(error: Error): string {
  if (error.message) return error.message;
  const inner = (error as Error & { errors?: Error[] }).errors;
  return inner?.length ? inner.map((e) => e.message).join('; ') : String(error);
}
