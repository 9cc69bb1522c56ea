// The control plane's runtime parts around the supervisor: the config store (every change),
// the file reloader (SIGHUP, file watch), the admin API and, with `redis`, the cluster sync.
// src/main.ts starts it once the workers listen and closes it after they drained.
import { hostname } from 'node:os';
import type { CompiledConfig } from '../shared/compiled-config.js';
import { log } from '../shared/log.js';
import { AdminApi } from './admin-api.js';
import { formatListen } from './check.js';
import type { RawConfig } from './config-schema.js';
import { ChangeError, ConfigStore } from './config-store.js';
import { ConfigReloader } from './reload.js';
import { RedisSync, type InstanceInfo } from './redis-sync.js';
import type { Supervisor } from './supervisor.js';
import { Observability } from './observability.js';

export const LOBBY_VERSION = '0.1.0';

export interface ControlPlaneOptions {
  file: string;
  /** The config the supervisor started with, and the file text it came from. */
  initial: { raw: RawConfig; compiled: CompiledConfig; text: string };
  supervisor: Supervisor;
  /** Watch the config file (default true). */
  watch?: boolean;
}

export class ControlPlane {
  readonly store: ConfigStore;
  readonly reloader: ConfigReloader;
  readonly instanceId: string;
  private admin: AdminApi | null = null;
  private observability: Observability | null = null;
  private redis: RedisSync | null = null;
  private draining = false;
  private readonly supervisor: Supervisor;
  private readonly startedAt = Date.now();

  private constructor(private readonly opts: ControlPlaneOptions) {
    const { raw } = opts.initial;
    this.supervisor = opts.supervisor;
    this.instanceId = raw.redis?.instance_id ?? `${hostname()}-${process.pid}`;
    this.store = new ConfigStore({
      file: opts.file,
      initial: opts.initial,
      generation: opts.supervisor.generation,
      publisher: opts.supervisor,
      instance: this.instanceId,
      clustered: raw.redis !== undefined,
    });
    this.reloader = new ConfigReloader(this.store);
  }

  /** Starts the admin API (throws when it cannot listen), the file watch and the Redis sync. */
  static async start(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const cp = new ControlPlane(opts);
    const { raw } = opts.initial;
    if (raw.redis) {
      cp.redis = new RedisSync(raw.redis, cp.store, cp.instanceId, () => cp.describe());
      cp.store.attachCluster(cp.redis);
    }
    if (raw.admin) {
      cp.observability = new Observability(cp.supervisor, cp.store);
      cp.admin = new AdminApi(raw.admin, {
        observability: cp.observability,
        store: cp.store,
        status: () => cp.status(),
        readiness: () => cp.readiness(),
        cluster: () => cp.cluster(),
        tls: () => opts.supervisor.tls,
      });
      try {
        await cp.admin.listen();
      } catch (error) {
        await cp.close();
        throw error;
      }
      log.info('admin API listening', { address: formatListen(raw.admin.host, cp.admin.port), auth: raw.admin.token !== undefined ? 'bearer token' : 'none (loopback only)' });
    }
    if (opts.watch !== false) cp.reloader.watch();
    cp.redis?.start();
    return cp;
  }

  /** SIGHUP. */
  onSignal(): void {
    this.reloader.onSignal();
  }

  /** SIGTERM/SIGINT: /readyz answers 503 from now on; the admin API stays up until close(). */
  beginDrain(): void {
    this.draining = true;
    this.reloader.close();
    this.store.stop();
  }

  async close(): Promise<void> {
    this.reloader.close();
    this.observability?.close();
    await Promise.all([this.admin?.close(), this.redis?.close()]);
  }

  readiness(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    const live = this.store.current;
    if (this.draining) reasons.push('draining');
    if (this.supervisor.generation === 0 || live.generation !== this.supervisor.generation) reasons.push('the config is not applied yet');
    const configured = live.compiled.server.workers;
    const listening = this.supervisor.workerCount;
    if (listening < configured) reasons.push(`${listening} of ${configured} workers listening`);
    if (this.redis && !this.store.synchronized) {
      const why = this.store.syncError ?? this.redis.status().last_error;
      reasons.push(`the latest config stored in redis is not loaded yet${why ? ` (${why})` : ''}`);
    }
    return { ready: reasons.length === 0, reasons };
  }

  describe(): InstanceInfo {
    const live = this.store.current;
    const { raw } = this.opts.initial;
    return {
      id: this.instanceId,
      pid: process.pid,
      hostname: hostname(),
      admin: raw.admin && this.admin ? formatListen(raw.admin.host, this.admin.port) : null,
      data: formatListen(live.compiled.server.host, live.compiled.server.port),
      version: live.version,
      hash: live.hash,
      generation: live.generation,
      applied_at: new Date(live.appliedAt).toISOString(),
      started_at: new Date(this.startedAt).toISOString(),
      ready: this.readiness().ready,
      workers: { configured: live.compiled.server.workers, listening: this.supervisor.workerCount },
    };
  }

  status(): Record<string, unknown> {
    const live = this.store.current;
    const readiness = this.readiness();
    return {
      instance: this.instanceId,
      lobby: LOBBY_VERSION,
      pid: process.pid,
      started_at: new Date(this.startedAt).toISOString(),
      uptime_s: Math.round((Date.now() - this.startedAt) / 100) / 10,
      ready: readiness.ready,
      ...(readiness.ready ? {} : { not_ready: readiness.reasons }),
      draining: this.draining,
      generation: this.supervisor.generation,
      workers: { configured: live.compiled.server.workers, listening: this.supervisor.workerCount, restarts: this.supervisor.restarts },
      // Each circuit breaker's state and counts, shared by the workers (src/control/breaker-store.ts).
      circuit_breakers: this.supervisor.breakers.status(),
      config: {
        version: live.version,
        hash: live.hash,
        source: live.source,
        applied_at: new Date(live.appliedAt).toISOString(),
        routes: live.compiled.routes.length,
        services: live.compiled.services.length,
        file: this.store.file,
        persist: this.store.persist,
      },
      last_change: this.store.lastChange === null ? null : { ...this.store.lastChange, at: new Date(this.store.lastChange.at).toISOString() },
      redis: this.redis ? this.redis.status() : null,
      rate_limits: this.supervisor.rateLimits.status(),
      upstream_health: this.supervisor.health.status(),
    };
  }

  async cluster(): Promise<Record<string, unknown>> {
    if (!this.redis) return { clustered: false, instances: [{ ...this.describe(), self: true }] };
    if (!this.redis.connected) {
      throw new ChangeError(503, 'redis_unavailable', 'Redis is unreachable; the cluster view needs it (GET /status shows this instance)', { redis: this.redis.status() });
    }
    try {
      return { clustered: true, ...(await this.redis.cluster()) };
    } catch (error) {
      throw new ChangeError(503, 'redis_unavailable', `cannot read the cluster view from Redis: ${(error as Error).message}`);
    }
  }
}
