// Several instances, one config: Redis stores the latest version, announces changes with
// pub/sub, and holds a heartbeat per instance. It is never on the request path: the data
// plane does not know Redis exists, and an instance whose Redis is down keeps serving its
// last config (changes are refused meanwhile, so instances never diverge).
//
// Keys (prefix = redis.key_prefix, default "lobby:"; in Cluster mode every key's prefix is the
// hash tag {<prefix>}, so all of them share one slot: src/shared/redis-endpoint.ts):
//   <prefix>config:latest       hash {version, hash, config (JSON of the shared config), instance, at}
//   <prefix>config:counter      last version number handed out
//   <prefix>config:changed      pub/sub channel, message "<version> <hash>"
//   <prefix>instance:<id>       JSON heartbeat of one instance, expires after 3 heartbeats
//   <prefix>instances           sorted set: instance id → last heartbeat (ms)
//
// Convergence: on every (re)connection, on every announcement and whenever a heartbeat sees
// a newer version, the store syncs (ConfigStore.syncFromCluster): newer stored config →
// apply it; Redis empty or behind (it restarted without its data, or a failover lost the last
// writes) → offer ours, numbered so that version numbers never go back.
//
// Pub/sub in Cluster mode is classic PUBLISH/SUBSCRIBE: Redis Cluster forwards it to every
// node, so the subscriber may sit on any node (src/control/redis-client.ts moves it to the
// next one when its node fails), also on a node other than the master that ran the script.
// Sharded pub/sub would tie the subscriber to the shard holding the config keys, the one whose
// failover it must survive; one message per change is nothing to save on. The heartbeat
// catches what a moving subscriber missed.
import { log } from '../shared/log.js';
import { describeEndpoint, endpointStatus, redisEndpointOf, redisKeys, type RedisEndpoint, type RedisKeys } from '../shared/redis-endpoint.js';
import { createRedisClient, createSubscriber, errorText, type RedisClient, type RedisSubscriber } from './redis-client.js';
import type { ClusterLink, ConfigStore, StoredVersion } from './config-store.js';
import type { SharedConfig } from './config-shared.js';
import type { RawConfig } from './config-schema.js';

type RedisSettings = NonNullable<RawConfig['redis']>;

// Stores a change made on one instance, unless a newer version than the one it was built
// on is stored already (compare-and-set). KEYS: counter, latest. ARGV: hash, config,
// instance, at, channel, base version. Returns the new version, or -latest on conflict.
const STORE_LUA = `
local cur = tonumber(redis.call('HGET', KEYS[2], 'version') or '0')
local base = tonumber(ARGV[6])
if cur > base then return -cur end
local counter = tonumber(redis.call('GET', KEYS[1]) or '0')
local v = math.max(counter, cur, base) + 1
redis.call('SET', KEYS[1], v)
redis.call('HSET', KEYS[2], 'version', v, 'hash', ARGV[1], 'config', ARGV[2], 'instance', ARGV[3], 'at', ARGV[4])
redis.call('PUBLISH', ARGV[5], v .. ' ' .. ARGV[1])
return v
`;

// Offers an instance's running version when Redis has none or an older one. Version 0 (an
// instance that never synced) seeds an empty Redis as the next number. KEYS: counter,
// latest. ARGV: version, hash, config, instance, at, channel. Returns {accepted, version}.
const OFFER_LUA = `
local cur = tonumber(redis.call('HGET', KEYS[2], 'version') or '0')
local mine = tonumber(ARGV[1])
if cur > 0 and cur >= mine then return {0, cur} end
local counter = tonumber(redis.call('GET', KEYS[1]) or '0')
local v = mine
if v == 0 then v = math.max(counter, cur) + 1 end
if counter < v then redis.call('SET', KEYS[1], v) end
redis.call('HSET', KEYS[2], 'version', v, 'hash', ARGV[2], 'config', ARGV[3], 'instance', ARGV[4], 'at', ARGV[5])
redis.call('PUBLISH', ARGV[6], v .. ' ' .. ARGV[2])
return {1, v}
`;

/** How soon a failed sync is tried again while connected (at most heartbeat_ms). */
const SYNC_RETRY_MS = 250;

interface Scripts {
  lobbyStore(counter: string, latest: string, hash: string, config: string, instance: string, at: string, channel: string, base: number): Promise<number>;
  lobbyOffer(counter: string, latest: string, version: number, hash: string, config: string, instance: string, at: string, channel: string): Promise<[number, number]>;
}

/** What an instance publishes about itself with each heartbeat (and GET /cluster lists). */
export interface InstanceInfo {
  id: string;
  pid: number;
  hostname: string;
  admin: string | null;
  data: string;
  version: number;
  hash: string;
  generation: number;
  applied_at: string;
  started_at: string;
  ready: boolean;
  workers: { configured: number; listening: number };
}

export interface RedisStatus {
  /** The topology and its address: `url` (one server), `sentinels` + `name`, or `cluster` (src/shared/redis-endpoint.ts endpointStatus). */
  [address: string]: unknown;
  /** Connected, and the last exchange with Redis succeeded (in Cluster mode a node can be gone while the others answer). */
  connected: boolean;
  /** When the connection was last established or lost (ISO time). */
  since: string;
  last_error: string | null;
  synchronized: boolean;
  sync_error: string | null;
}

export class RedisSync implements ClusterLink {
  private readonly endpoint: RedisEndpoint;
  private readonly cmd: RedisClient & Scripts;
  private readonly sub: RedisSubscriber;
  private readonly keys: RedisKeys;
  private readonly ttlMs: number;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private heartbeatSoon = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private loggedSyncError: string | null = null;
  private closed = false;
  private since = Date.now();
  private lastError: string | null = null;
  private lastExchangeOk = false;
  private wasConnected = false;
  private everConnected = false;

  constructor(
    private readonly settings: RedisSettings,
    private readonly configStore: ConfigStore,
    readonly instanceId: string,
    private readonly describe: () => InstanceInfo,
  ) {
    this.endpoint = redisEndpointOf(settings);
    this.keys = redisKeys(settings.key_prefix, this.endpoint.topology);
    this.ttlMs = settings.heartbeat_ms * 3;
    this.cmd = createRedisClient(this.endpoint, { connectionName: `lobby:${instanceId}`, commandTimeoutMs: 2_000 }) as RedisClient & Scripts;
    this.cmd.defineCommand('lobbyStore', { numberOfKeys: 2, lua: STORE_LUA });
    this.cmd.defineCommand('lobbyOffer', { numberOfKeys: 2, lua: OFFER_LUA });
    this.sub = createSubscriber(this.endpoint, `lobby:${instanceId}:sub`, this.cmd);

    this.cmd.on('ready', () => this.onReady());
    this.cmd.on('close', () => this.onClose());
    this.cmd.on('error', (error: Error) => { this.lastError = errorText(error); });
    this.cmd.on('node error', (error: Error) => { this.lastError = errorText(error); }); // Cluster: one node's connection
    this.sub.on('error', () => undefined); // the same outage; reported through cmd
    this.sub.on('message', (_channel: string, message: string) => this.onAnnouncement(message));
    this.sub.subscribe(this.keys.channel).catch((error: Error) => log.warn('redis subscribe failed (retried on reconnect)', { error: errorText(error) }));
  }

  get connected(): boolean {
    return this.cmd.status === 'ready';
  }

  status(): RedisStatus {
    return {
      ...endpointStatus(this.endpoint),
      connected: this.connected && this.lastExchangeOk,
      since: new Date(this.since).toISOString(),
      last_error: this.lastError,
      synchronized: this.configStore.synchronized,
      sync_error: this.configStore.syncError,
    };
  }

  /** Starts the heartbeat. The first sync runs as soon as Redis is reachable. */
  start(): void {
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.settings.heartbeat_ms);
    this.heartbeatTimer.unref();
  }

  private onReady(): void {
    this.since = Date.now();
    this.lastExchangeOk = true;
    if (this.everConnected) log.info('redis connection restored; loading the latest config', { redis: describeEndpoint(this.endpoint) });
    this.wasConnected = true;
    this.everConnected = true;
    this.sync();
  }

  private onClose(): void {
    if (this.closed || !this.wasConnected) return; // reconnect attempts close too
    this.lastError = 'connection closed'; // refined by the reconnect attempts' errors
    log.warn('redis connection lost; serving the current config, changes refused until it is back', { redis: describeEndpoint(this.endpoint) });
    this.since = Date.now();
    this.lastExchangeOk = false;
    this.wasConnected = false;
  }

  private onAnnouncement(message: string): void {
    const [version, hash] = message.split(' ');
    const live = this.configStore.current;
    if (Number(version) !== live.version || hash !== live.hash) this.sync();
  }

  private sync(): void {
    if (this.closed) return;
    this.configStore.syncFromCluster().then(
      () => {
        this.loggedSyncError = null;
        this.applied();
      },
      (error: Error) => {
        // Logged once per kind of failure, not at every retry of an outage.
        const text = errorText(error);
        if (text !== this.loggedSyncError) log.error('config sync with redis failed (retried shortly while connected, and on reconnect)', { error: text });
        this.loggedSyncError = text;
        this.retrySyncSoon();
      },
    );
  }

  // Connected but refused (a Cluster that answers CLUSTERDOWN while it forms again, a server
  // still LOADING): try again soon rather than at the next heartbeat. Not connected: the
  // reconnect syncs (onReady).
  private retrySyncSoon(): void {
    if (this.retryTimer !== null || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.connected) this.sync();
    }, Math.min(SYNC_RETRY_MS, this.settings.heartbeat_ms));
    this.retryTimer.unref();
  }

  // -------------------------------------------------------------------------------------
  // ClusterLink

  async fetchLatest(): Promise<StoredVersion | null> {
    const h = await this.exchange(() => this.cmd.hgetall(this.keys.latest));
    if (!h.version) return null;
    return { version: Number(h.version), hash: h.hash, shared: JSON.parse(h.config) as SharedConfig, instance: h.instance, at: h.at };
  }

  async store(hash: string, shared: SharedConfig, base: number): Promise<number | null> {
    const k = this.keys;
    const v = await this.exchange(() => this.cmd.lobbyStore(k.counter, k.latest, hash, JSON.stringify(shared), this.instanceId, new Date().toISOString(), k.channel, base));
    return v > 0 ? v : null;
  }

  async offer(version: number, hash: string, shared: SharedConfig): Promise<{ accepted: boolean; version: number }> {
    const k = this.keys;
    const [accepted, v] = await this.exchange(() => this.cmd.lobbyOffer(k.counter, k.latest, version, hash, JSON.stringify(shared), this.instanceId, new Date().toISOString(), k.channel));
    if (accepted === 1) log.info('offered this instance\'s config to redis (it had none or an older one)', { version: v, hash });
    return { accepted: accepted === 1, version: v };
  }

  /** A new version is applied here: tell the others now rather than at the next tick. */
  applied(): void {
    if (this.heartbeatSoon || this.closed) return;
    this.heartbeatSoon = true;
    setImmediate(() => {
      this.heartbeatSoon = false;
      void this.heartbeat();
    });
  }

  // -------------------------------------------------------------------------------------
  // Heartbeats and the cluster view.

  private async heartbeat(): Promise<void> {
    if (!this.connected || this.closed) return;
    const now = Date.now();
    const info = { ...this.describe(), heartbeat_at: new Date(now).toISOString() };
    let latest: number;
    try {
      latest = await this.exchange(async () => {
        const results = await this.cmd
          .pipeline()
          .set(this.keys.instance(this.instanceId), JSON.stringify(info), 'PX', this.ttlMs)
          .zadd(this.keys.instances, now, this.instanceId)
          .zremrangebyscore(this.keys.instances, '-inf', now - 10 * this.ttlMs)
          .hget(this.keys.latest, 'version')
          .exec();
        const failed = results?.find(([error]) => error !== null)?.[0];
        if (failed) throw failed;
        return Number(results?.[3]?.[1] ?? 0);
      });
    } catch {
      return; // recorded by exchange(); the next heartbeat tries again
    }
    // A missed announcement, or a sync that failed: catch up here.
    if (!this.configStore.synchronized || this.configStore.syncError !== null || latest !== this.configStore.current.version) this.sync();
  }

  /** One exchange with Redis: its outcome is what /status reports as `connected` (with the connection's state). */
  private async exchange<T>(run: () => Promise<T>): Promise<T> {
    try {
      const result = await run();
      this.lastExchangeOk = true;
      return result;
    } catch (error) {
      this.lastExchangeOk = false;
      this.lastError = errorText(error as Error);
      throw error;
    }
  }

  /** GET /cluster: every instance with a live heartbeat, and the latest stored version. */
  async cluster(): Promise<Record<string, unknown>> {
    const { values, latest } = await this.exchange(async () => {
      const ids = await this.cmd.zrange(this.keys.instances, 0, -1);
      return {
        values: ids.length > 0 ? await this.cmd.mget(ids.map((id) => this.keys.instance(id))) : [],
        latest: await this.cmd.hmget(this.keys.latest, 'version', 'hash', 'instance', 'at'),
      };
    });
    const now = Date.now();
    const instances = values.flatMap((value) => {
      if (value === null) return []; // heartbeat expired: the instance is gone
      const info = JSON.parse(value) as InstanceInfo & { heartbeat_at: string };
      return [{ ...info, heartbeat_age_ms: now - Date.parse(info.heartbeat_at), self: info.id === this.instanceId }];
    });
    instances.sort((a, b) => a.id.localeCompare(b.id));
    const latestVersion = latest[0] === null ? null : { version: Number(latest[0]), hash: latest[1], stored_by: latest[2], at: latest[3] };
    return {
      latest: latestVersion,
      converged: latestVersion !== null && instances.every((i) => i.version === latestVersion.version && i.hash === latestVersion.hash),
      instances,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.connected) {
      await Promise.race([
        this.cmd.pipeline().del(this.keys.instance(this.instanceId)).zrem(this.keys.instances, this.instanceId).exec().catch(() => undefined),
        new Promise((resolve) => setTimeout(resolve, 500)),
      ]);
    }
    this.cmd.disconnect();
    this.sub.disconnect();
  }
}
