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
//             promoted replica is found within a second of the cluster's failover.
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisEndpoint } from '../shared/redis-endpoint.js';

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
      return new Redis(endpoint.url, common);
    case 'sentinel':
      return new Redis({
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
      return new Cluster(endpoint.nodes, options);
    }
  }
}

/** An error event's text, also for the AggregateError a refused multi-address connect gives. */
export function errorText(error: Error): string {
  if (error.message) return error.message;
  const inner = (error as Error & { errors?: Error[] }).errors;
  return inner?.length ? inner.map((e) => e.message).join('; ') : String(error);
}
