// Where an instance's Redis is: one server (`redis.url`), a master group behind Sentinel
// (`redis.sentinels` + `redis.name`) or a Redis Cluster (`redis.cluster`). Plain data, built
// once from the validated `redis` section and carried by the compiled config to both users,
// the config sync (src/control/redis-sync.ts) and the rate-limit sync
// (src/control/rate-limit-sync.ts), which open their connections with
// src/control/redis-client.ts. Also the key names both write, since Cluster mode changes them.

export interface HostPort {
  host: string;
  port: number;
}

export type RedisEndpoint =
  | { topology: 'single'; url: string }
  | {
      topology: 'sentinel';
      sentinels: HostPort[];
      /** The master group the sentinels monitor. */
      name: string;
      username?: string;
      password?: string;
      sentinelUsername?: string;
      sentinelPassword?: string;
    }
  | { topology: 'cluster'; nodes: HostPort[]; username?: string; password?: string };

/** The `redis` keys this module reads (the validated section: exactly one of url, sentinels, cluster). */
export interface RedisSectionInput {
  url?: string;
  sentinels?: string[];
  name?: string;
  cluster?: string[];
  username?: string;
  password?: string;
  sentinel_username?: string;
  sentinel_password?: string;
}

/** `host:port`, `[v6]:port`; null when it is not one (the schema reports why). */
export function parseHostPort(text: string): HostPort | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]/]+)):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1] ?? m[2], port };
}

function hostPorts(list: string[]): HostPort[] {
  return list.map((text) => {
    const parsed = parseHostPort(text);
    if (!parsed) throw new Error(`internal: the schema let an invalid host:port through: ${text}`);
    return parsed;
  });
}

const defined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

export function redisEndpointOf(redis: RedisSectionInput): RedisEndpoint {
  if (redis.sentinels !== undefined) {
    return defined({
      topology: 'sentinel' as const,
      sentinels: hostPorts(redis.sentinels),
      name: redis.name ?? '',
      username: redis.username,
      password: redis.password,
      sentinelUsername: redis.sentinel_username,
      sentinelPassword: redis.sentinel_password,
    });
  }
  if (redis.cluster !== undefined) {
    return defined({ topology: 'cluster' as const, nodes: hostPorts(redis.cluster), username: redis.username, password: redis.password });
  }
  if (redis.url === undefined) throw new Error('internal: the schema let a redis section without url, sentinels or cluster through');
  return { topology: 'single', url: redis.url };
}

const formatHostPort = ({ host, port }: HostPort) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** The password of a URL replaced by `***`. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

/** What GET /status shows of the endpoint: never a password. */
export function endpointStatus(endpoint: RedisEndpoint): Record<string, unknown> {
  switch (endpoint.topology) {
    case 'single': return { topology: 'single', url: redactUrl(endpoint.url) };
    case 'sentinel': return { topology: 'sentinel', sentinels: endpoint.sentinels.map(formatHostPort), name: endpoint.name };
    case 'cluster': return { topology: 'cluster', cluster: endpoint.nodes.map(formatHostPort) };
  }
}

/** One line for logs. */
export function describeEndpoint(endpoint: RedisEndpoint): string {
  switch (endpoint.topology) {
    case 'single': return redactUrl(endpoint.url);
    case 'sentinel': return `sentinel ${endpoint.sentinels.map(formatHostPort).join(',')} master ${endpoint.name}`;
    case 'cluster': return `cluster ${endpoint.nodes.map(formatHostPort).join(',')}`;
  }
}

// ---------------------------------------------------------------------------------------
// Key names. With one server or Sentinel they are as they always were. A Redis Cluster runs
// a script, a MULTI or a multi-key command only when all its keys hash to one slot, so there
// the keys carry hash tags (the part in {}: only it is hashed):
//   - config sync: every key shares the tag `{<prefix>}` (its scripts and its heartbeat
//     pipeline touch several keys at once; it is a handful of small keys);
//   - rate-limit buckets: `{<prefix>rl:<s>}:<limit>:<hash>`, s = the key hash mod
//     RL_CLUSTER_SHARDS, so the buckets spread over that many slots (and so over the masters)
//     and one sync script takes the keys of one slot;
//   - the pub/sub channel is no key: classic PUBLISH reaches subscribers on every node.

/** Slots the rate-limit buckets spread over in Cluster mode. */
export const RL_CLUSTER_SHARDS = 16;

export interface RedisKeys {
  /** Config sync: version counter, latest stored version, change channel, heartbeats. */
  counter: string;
  latest: string;
  channel: string;
  instances: string;
  instance(id: string): string;
  /** Rate-limit sync: the instances of the last rounds (one key, alone in its command). */
  rlInstances: string;
  /** Group of a bucket key (Cluster: its shard's tag; else one group): keys of one group may share a script. */
  rlGroup(lo: number): string;
  /** A bucket's key: limit name and the key's 64-bit hash as 16 hex digits. */
  rlBucket(group: string, limit: string, hashHex: string): string;
}

export function redisKeys(prefix: string, topology: RedisEndpoint['topology']): RedisKeys {
  const cluster = topology === 'cluster';
  const config = cluster ? `{${prefix}}` : prefix;
  return {
    counter: `${config}config:counter`,
    latest: `${config}config:latest`,
    channel: `${prefix}config:changed`,
    instances: `${config}instances`,
    instance: (id) => `${config}instance:${id}`,
    rlInstances: `${prefix}rl:instances`,
    rlGroup: cluster ? (lo) => `{${prefix}rl:${(lo >>> 0) % RL_CLUSTER_SHARDS}}:` : () => `${prefix}rl:`,
    rlBucket: (group, limit, hash) => `${group}${limit}:${hash}`,
  };
}
