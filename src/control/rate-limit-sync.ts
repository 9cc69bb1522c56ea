// The control plane's side of rate limiting: owns the instance's bucket table (created once,
// kept across config reloads), sweeps idle keys, and with `redis` keeps the instances'
// buckets in agreement in the background. Never on the request path: workers only read the
// state this writes into the table (docs/rate-limiting.md explains the scheme and its bound).
//
// Every `redis.rate_limit_sync_ms` (one round at a time):
//   1. collect: every local bucket of a synced limit used since the last round, with what it
//      admitted (`consumed`) and refused since then (the counters are reset: a delta);
//   2. push + pull, all commands sent at once: a Lua script registers this instance (sorted
//      set, for the instance count), then one EVALSHA per batch of keys applies each key's
//      delta to the key's global token bucket in Redis (refilled with Redis's clock, so
//      instances' clocks do not matter) and returns the global remaining tokens and the number
//      of instances that used the key in the last few rounds (its share). In Cluster mode a
//      batch holds the keys of one hash-tag group (one slot: src/shared/redis-endpoint.ts);
//   3. apply: each local bucket becomes remaining / share, minus what the instance admitted
//      since step 1, and refills at rate / share until the next round.
// Redis unreachable or slow (a round fails or outlasts its timeout): the table's Redis state
// goes DOWN and workers follow each limit's on_redis_error; ioredis reconnects by itself; the
// first round after recovery drops the deltas of the outage (they were not shared limits).
import { once } from 'node:events';
import { hostname } from 'node:os';
import type { CompiledConfig } from '../shared/compiled-config.js';
import { DEFAULT_RATE_LIMIT_KEYS, type CompiledRateLimit, type CompiledRateLimitRuntime } from '../shared/rate-limit-config.js';
import {
  BucketTable, createBucketTable, H, hashHex, MAIN_OWNER, REDIS_STATE, type PushRecord,
} from '../shared/bucket-table.js';
import { log } from '../shared/log.js';
import { endpointStatus, redisKeys, type RedisKeys } from '../shared/redis-endpoint.js';
import { createRedisClient, errorText, type RedisClient } from './redis-client.js';

/** Keys per EVALSHA: bounds the time one script blocks Redis (~2–4 µs per key). */
export const SYNC_BATCH = 256;
const SWEEP_INTERVAL_MS = 1_000;

// One key's global bucket: hash {t = tokens (may be negative: debt, at most max(burst, rate ×
// window) deep, so a mistake can never lock a key out for long), ts = last refill ms,
// i:<instance> = last round that instance used the key}. KEYS: the bucket keys. ARGV: instance,
// active window ms, then per key: consumed, ratePerMs, burst. Returns per key: tokens (string,
// Lua numbers become integers in replies), share.
export const SYNC_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me = 'i:' .. ARGV[1]
local window = tonumber(ARGV[2])
local out = {}
for k = 1, #KEYS do
  local key = KEYS[k]
  local a = 3 + (k - 1) * 3
  local consumed = tonumber(ARGV[a])
  local rate = tonumber(ARGV[a + 1])
  local burst = tonumber(ARGV[a + 2])
  local all = redis.call('HGETALL', key)
  local tokens = burst
  local ts = now
  local share = 1
  for f = 1, #all, 2 do
    local field = all[f]
    if field == 't' then tokens = tonumber(all[f + 1])
    elseif field == 'ts' then ts = tonumber(all[f + 1])
    elseif field ~= me and string.sub(field, 1, 2) == 'i:' then
      if now - tonumber(all[f + 1]) <= window then share = share + 1 else redis.call('HDEL', key, field) end
    end
  end
  if now > ts then tokens = tokens + (now - ts) * rate end
  if tokens > burst then tokens = burst end
  tokens = tokens - consumed
  local floor = math.max(burst, rate * window)
  if tokens < -floor then tokens = -floor end
  redis.call('HSET', key, 't', tostring(tokens), 'ts', now, me, now)
  redis.call('PEXPIRE', key, math.ceil(burst / rate) + window + 1000)
  out[#out + 1] = tostring(tokens)
  out[#out + 1] = share
end
return out
`;

// This instance is alive: KEYS[1] sorted set instance → last round (Redis time). ARGV: instance,
// window ms. Returns the number of instances seen within the window.
export const INSTANCES_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
return redis.call('ZCARD', KEYS[1])
`;

interface SyncCommands {
  lobbyRlSync(...args: (string | number)[]): Promise<(string | number)[]>;
  lobbyRlInstances(key: string, instance: string, windowMs: number): Promise<number>;
}

type SyncSettings = NonNullable<CompiledRateLimitRuntime['sync']>;

interface Batch { group: string; records: PushRecord[]; limits: CompiledRateLimit[] }

export class RateLimitSync {
  readonly sab: SharedArrayBuffer;
  readonly table: BucketTable;
  private limits = new Map<number, CompiledRateLimit>();
  private settings: SyncSettings | null = null;
  private instanceId = '';
  private redis: (RedisClient & SyncCommands) | null = null;
  private keys: RedisKeys | null = null;
  private roundTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private configured = false;
  private down = false;
  private forgiveDeltas = true;
  // Figures for /status.
  private lastError: string | null = null;
  private lastRoundAt = 0;
  private lastRoundMs = 0;
  private maxRoundMs = 0;
  private lastKeys = 0;
  private rounds = 0;
  private failedRounds = 0;
  private commands = 0;
  private downSince = 0;

  constructor(tableKeys = DEFAULT_RATE_LIMIT_KEYS) {
    this.sab = createBucketTable(tableKeys);
    this.table = new BucketTable(this.sab, MAIN_OWNER);
  }

  get redisConfigured(): boolean {
    return this.settings !== null;
  }

  /**
   * Takes the limits of a config about to be published. The table's size and the Redis settings
   * are instance settings read at the first call (start); later changes apply at restart.
   */
  async configure(config: CompiledConfig): Promise<void> {
    const runtime = config.rateLimit;
    this.limits = new Map((runtime?.limits ?? []).map((l) => [l.id, l]));
    if (this.configured) {
      if (runtime && runtime.tableKeys > this.table.capacity) {
        log.warn('server.rate_limit_keys changed: the bucket table keeps its size until restart', { keys: this.table.capacity });
      }
      return;
    }
    this.configured = true;
    if (!this.sweepTimer) {
      this.sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
      this.sweepTimer.unref();
    }
    const sync = runtime?.sync ?? null;
    if (sync === null) return;
    this.settings = sync;
    this.instanceId = sync.instanceId ?? `${hostname()}-${process.pid}`;
    this.startRedis(sync);
    // One round before the workers start, so new keys start with the right share (bounded: a
    // Redis that does not answer leaves the state DOWN and the rounds go on in the background).
    const redis = this.redis!;
    await Promise.race([
      (async () => {
        if (redis.status !== 'ready') await once(redis, 'ready');
        await this.round();
      })(),
      new Promise((r) => setTimeout(r, 2_000).unref()),
    ]).catch(() => undefined);
    if (this.lastRoundAt === 0 || this.table.redisState !== REDIS_STATE.OK) this.markDown(this.lastError ?? 'no answer from redis at start');
    this.schedule();
  }

  private commandTimeoutMs(): number {
    return Math.max(500, 3 * (this.settings?.intervalMs ?? 100));
  }

  private startRedis(sync: SyncSettings): void {
    this.keys = redisKeys(sync.keyPrefix, sync.endpoint.topology);
    const redis = createRedisClient(sync.endpoint, {
      connectionName: `lobby:${this.instanceId}:ratelimit`,
      commandTimeoutMs: this.commandTimeoutMs(),
    }) as RedisClient & SyncCommands;
    redis.defineCommand('lobbyRlSync', { lua: SYNC_LUA });
    redis.defineCommand('lobbyRlInstances', { numberOfKeys: 1, lua: INSTANCES_LUA });
    redis.on('error', (err: Error) => { this.lastError = errorText(err); });
    redis.on('node error', (err: Error) => { this.lastError = errorText(err); }); // Cluster: one node's connection
    redis.on('close', () => this.markDown(this.lastError ?? 'connection closed'));
    this.redis = redis;
  }

  private schedule(): void {
    if (this.stopped || !this.settings) return;
    const interval = this.settings.intervalMs;
    const wait = Math.max(0, interval - (Date.now() - this.lastRoundAt));
    this.roundTimer = setTimeout(() => {
      void this.round().finally(() => this.schedule());
    }, this.lastRoundAt === 0 ? interval : wait);
    this.roundTimer.unref();
  }

  private markDown(reason: string): void {
    if (this.stopped || !this.settings) return;
    this.lastError = reason;
    this.forgiveDeltas = true;
    if (this.down) return;
    this.down = true;
    this.downSince = Date.now();
    this.table.setRedisState(REDIS_STATE.DOWN);
    const modes = [...this.limits.values()].filter((l) => l.synced).map((l) => `${l.name}: ${l.onRedisError}`);
    log.warn('rate-limit sync: redis unreachable; limits follow on_redis_error', { error: reason, limits: modes.join(', ') });
  }

  private markUp(): void {
    this.table.setRedisState(REDIS_STATE.OK);
    if (!this.down) return;
    this.down = false;
    if (this.rounds > 0) log.info('rate-limit sync: redis reachable again; limits are shared again', { down_ms: Date.now() - this.downSince });
  }

  /** One sync round (see the file comment). Never throws. */
  async round(): Promise<void> {
    const redis = this.redis;
    const settings = this.settings;
    if (!redis || !settings || this.stopped) return;
    const started = Date.now();
    this.lastRoundAt = started;
    if (redis.status !== 'ready') {
      this.markDown(this.lastError ?? `redis ${redis.status}`);
      this.failedRounds++;
      return;
    }
    if (this.forgiveDeltas) {
      // What was admitted while Redis was out (or before the first round) was not a shared budget.
      this.table.resetDeltas();
      this.forgiveDeltas = false;
    }
    const records = this.table.collect((id) => this.limits.get(id)?.synced === true);
    const keys = this.keys!;
    const window = Math.max(3 * settings.intervalMs, 300);
    // Batches of at most SYNC_BATCH keys, each within one key group (one slot in Cluster mode).
    const open = new Map<string, Batch>();
    const batches: Batch[] = [];
    for (const rec of records) {
      const limit = this.limits.get(rec.limitId);
      if (!limit) continue;
      const group = keys.rlGroup(rec.lo);
      let batch = open.get(group);
      if (!batch) {
        batch = { group, records: [], limits: [] };
        open.set(group, batch);
        batches.push(batch);
      }
      batch.records.push(rec);
      batch.limits.push(limit);
      if (batch.records.length === SYNC_BATCH) open.delete(group);
    }
    this.commands += 1 + batches.length;
    // Sent together: ioredis writes each at once (to its slot's node in Cluster mode), so a
    // round costs one round trip per node, and the round as a whole is bounded by its timeout.
    const sends: Promise<unknown>[] = [
      redis.lobbyRlInstances(keys.rlInstances, this.instanceId, Math.max(window, 1_000)),
      ...batches.map((b) => redis.lobbyRlSync(b.records.length, ...this.buildArgs(b, window))),
    ];
    const timeoutMs = this.commandTimeoutMs();
    let timer: NodeJS.Timeout | undefined;
    let results: PromiseSettledResult<unknown>[];
    try {
      results = await Promise.race([
        Promise.allSettled(sends),
        new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`sync round took longer than ${timeoutMs} ms`)), timeoutMs); }),
      ]);
    } catch (error) {
      this.failedRounds++;
      this.markDown((error as Error).message);
      return;
    } finally {
      clearTimeout(timer);
    }
    const [instances, ...replies] = results;
    if (instances.status === 'rejected') {
      this.failedRounds++;
      this.markDown(errorText(instances.reason as Error));
      return;
    }
    this.table.setInstances(Number(instances.value));
    const now = Date.now();
    let failed: string | null = null;
    batches.forEach((b, i) => {
      const reply = replies[i];
      if (reply.status === 'rejected' || !Array.isArray(reply.value)) {
        failed ??= reply.status === 'rejected' ? errorText(reply.reason as Error) : 'bad sync reply';
        return;
      }
      const values = reply.value as (string | number)[];
      b.records.forEach((rec, k) => {
        this.table.applyGlobal(rec, Number(values[2 * k]), Number(values[2 * k + 1]), rec.burst, now);
      });
    });
    if (failed !== null) {
      this.failedRounds++;
      this.markDown(failed);
      return;
    }
    this.rounds++;
    this.lastKeys = records.length;
    this.lastRoundMs = Date.now() - started;
    if (this.lastRoundMs > this.maxRoundMs) this.maxRoundMs = this.lastRoundMs;
    this.lastError = null;
    this.markUp();
  }

  /** KEYS then ARGV of SYNC_LUA for one batch. */
  private buildArgs(batch: Batch, window: number): (string | number)[] {
    const args: (string | number)[] = [];
    for (let k = 0; k < batch.records.length; k++) {
      const rec = batch.records[k];
      args.push(this.keys!.rlBucket(batch.group, batch.limits[k].name, hashHex(rec.hi, rec.lo)));
    }
    args.push(this.instanceId, window);
    // Each bucket's own rate and burst (a consumer's own rate_limit replaces the limit's).
    for (let k = 0; k < batch.records.length; k++) {
      const rec = batch.records[k];
      args.push(rec.consumed, rec.ratePerMs, rec.burst);
    }
    return args;
  }

  private sweep(): void {
    if (this.table.live === 0) return; // nothing to scan (no limits used yet)
    try {
      this.table.sweep(Date.now(), (id) => this.limits.has(id));
    } catch (error) {
      log.error('rate-limit sweep failed', { error: String((error as Error)?.stack ?? error) });
    }
  }

  /** A worker thread died: release the bucket locks it may have held. */
  releaseWorker(workerIndex: number): void {
    const released = this.table.releaseOwner(workerIndex + 1);
    if (released > 0) log.warn('rate-limit table: released locks of a dead worker', { worker: workerIndex, locks: released });
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.roundTimer) clearTimeout(this.roundTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    const redis = this.redis;
    this.redis = null;
    if (redis) {
      redis.removeAllListeners('close');
      await Promise.race([redis.quit().catch(() => undefined), new Promise((r) => setTimeout(r, 500))]);
      redis.disconnect();
    }
  }

  /** For GET /status (`rate_limits`). */
  status(): Record<string, unknown> {
    const t = this.table;
    const perLimit = t.countByLimit();
    const state = t.redisState;
    return {
      table: {
        capacity: t.capacity,
        keys: t.live,
        inserts: t.counter(H.INSERTS),
        evictions: t.counter(H.EVICTIONS),
        evicted_active: t.counter(H.EVICTED_ACTIVE),
        refused_full: t.counter(H.FULL),
      },
      redis: this.settings === null ? null : {
        ...endpointStatus(this.settings.endpoint),
        state: state === REDIS_STATE.OK ? 'ok' : 'down',
        ...(state === REDIS_STATE.OK ? {} : { down_since: this.downSince ? new Date(this.downSince).toISOString() : null }),
        instance: this.instanceId,
        instances: t.instances,
        interval_ms: this.settings.intervalMs,
        rounds: this.rounds,
        failed_rounds: this.failedRounds,
        commands: this.commands,
        last_round_at: this.lastRoundAt ? new Date(this.lastRoundAt).toISOString() : null,
        last_round_ms: this.lastRoundMs,
        max_round_ms: this.maxRoundMs,
        last_round_keys: this.lastKeys,
        last_error: this.lastError,
      },
      limits: [...this.limits.values()].map((l) => ({
        name: l.name,
        key: l.key.kind === 'ip' || l.key.kind === 'consumer' ? l.key.kind : `${l.key.kind}:${l.key.kind === 'claim' ? l.key.claim : l.key.header}`,
        rate: l.rate,
        per_ms: l.perMs,
        burst: l.burst,
        mode: l.mode,
        on_redis_error: l.onRedisError,
        synced: l.synced,
        keys: perLimit.get(l.id) ?? 0,
        ...t.stats(l.id),
      })),
    };
  }
}
