// The control plane's side of upstream health (docs/resilience.md#health-checks):
//   - owns the health table (src/shared/health-table.ts) and gives every target of a service
//     with `health_check` or `outlier` a slot, keyed by service and target, so a reload keeps
//     what is known (the supervisor calls assign() for each generation it publishes, and
//     activate() once one is live);
//   - runs the active checks: an HTTP/1.1 GET per target every interval_ms on a fresh
//     connection (TLS with the service's upstream settings for https:// targets), and flips
//     the target's UNHEALTHY bit after unhealthy_after failures / healthy_after successes;
//   - sweeps ejections (outlier.ts sets them in the workers): a target whose time is over
//     comes back, and its ejection multiplier decays while it stays in;
//   - logs every transition once, and answers /status, /upstreams and the metrics.
//
// New targets start healthy (Envoy instead holds a new host out of balancing until its first
// check passes): a freshly loaded config then serves at once, and the first check runs
// immediately, so a dead target is out after unhealthy_after checks.
import { request as httpRequest, type ClientRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { CompiledConfig, CompiledHealthCheck, CompiledService } from '../shared/compiled-config.js';
import type { CompiledUpstreamTls } from '../shared/tls-config.js';
import { DOWN, F, HealthTable, TICK_MS, ejectionCap, ejectionMs } from '../shared/health-table.js';
import { log } from '../shared/log.js';
import { upstreamTlsOptions } from '../data/upstream/pools.js';

const SWEEP_MS = 100;
const USER_AGENT = 'lobby-health-check';

/** Results of active checks, as counted in lobby_upstream_health_checks_total. */
export const CHECK_RESULTS = ['ok', 'bad_status', 'timeout', 'error'] as const;
export type CheckResult = (typeof CHECK_RESULTS)[number];

interface TargetState {
  readonly service: string;
  readonly origin: string;
  readonly slot: number;
  hostHeader: string;
  tls: CompiledUpstreamTls | null;
  check: CompiledHealthCheck | null;
  /** The check settings the timer runs with (a reload with other settings restarts it). */
  checkKey: string;
  timer: NodeJS.Timeout | null;
  inFlight: ClientRequest | null;
  consecutiveOk: number;
  consecutiveFailed: number;
  lastCheckAt: number;
  lastResult: string;
  results: Record<CheckResult, number>;
  /** EJECTIONS_TOTAL last seen by the sweeper (a new ejection is logged once). */
  ejectionsSeen: number;
}

interface ServiceState {
  readonly name: string;
  readonly serviceSlot: number;
  readonly targets: TargetState[];
  readonly service: CompiledService;
}

const keyOf = (service: string, origin: string) => `${service}\x00${origin}`;
const serviceKey = (service: string) => `${service}\x00`;

export class HealthChecker {
  readonly table = HealthTable.create();
  private readonly slots = new Map<string, number>();
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;
  private readonly targets = new Map<string, TargetState>();
  private services: ServiceState[] = [];
  private sweeper: NodeJS.Timeout | null = null;
  private stopped = false;

  /** Sent to every worker at boot (WorkerBoot.health). */
  get boot(): { table: SharedArrayBuffer; epoch: number } {
    return { table: this.table.sab, epoch: this.table.epoch };
  }

  /**
   * The config with each health-policed service's slots (CompiledService.health). A key seen
   * before keeps its slot and state; a new one gets a cleared slot. A service beyond the
   * table's capacity runs without health (logged).
   */
  assign(config: CompiledConfig): CompiledConfig {
    if (!config.services.some(hasPolicy)) return config;
    const services = config.services.map((svc): CompiledService => {
      if (!hasPolicy(svc)) return svc;
      const serviceSlot = this.slotFor(serviceKey(svc.name));
      const targetSlots = svc.targets.map((t) => this.slotFor(keyOf(svc.name, t.origin)));
      if (serviceSlot < 0 || targetSlots.some((s) => s < 0)) {
        log.error('health table full: service runs without health checks and outlier ejection', { service: svc.name, capacity: this.table.capacity });
        return { ...svc, health: null };
      }
      return { ...svc, health: { serviceSlot, targetSlots } };
    });
    return { ...config, services };
  }

  /** `config` (as assign() returned it) is live: checks follow it, unused slots are freed. */
  activate(config: CompiledConfig): void {
    if (this.stopped) return;
    const live = new Set<string>();
    const services: ServiceState[] = [];
    for (const svc of config.services) {
      if (!svc.health) continue;
      live.add(serviceKey(svc.name));
      const targets = svc.targets.map((t, i) => {
        const key = keyOf(svc.name, t.origin);
        live.add(key);
        return this.follow(key, svc, t.origin, t.hostHeader, svc.health!.targetSlots[i]);
      });
      const state: ServiceState = { name: svc.name, serviceSlot: svc.health.serviceSlot, targets, service: svc };
      this.settle(state);
      services.push(state);
    }
    this.services = services;
    for (const [key, slot] of this.slots) {
      if (live.has(key)) continue;
      const t = this.targets.get(key);
      if (t !== undefined) { this.stopChecks(t); this.targets.delete(key); }
      this.slots.delete(key);
      this.freeSlots.push(slot);
    }
    const sweep = services.some((s) => s.service.outlier);
    if (sweep && this.sweeper === null) this.sweeper = setInterval(() => this.sweep(), SWEEP_MS).unref();
    else if (!sweep && this.sweeper !== null) { clearInterval(this.sweeper); this.sweeper = null; }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.targets.values()) this.stopChecks(t);
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  private slotFor(key: string): number {
    const known = this.slots.get(key);
    if (known !== undefined) return known;
    const slot = this.freeSlots.pop() ?? (this.nextSlot < this.table.capacity ? this.nextSlot++ : -1);
    if (slot < 0) return -1;
    this.table.reset(slot);
    this.slots.set(key, slot);
    return slot;
  }

  private follow(key: string, svc: CompiledService, origin: string, hostHeader: string, slot: number): TargetState {
    let t = this.targets.get(key);
    if (t === undefined) {
      t = {
        service: svc.name, origin, slot, hostHeader, tls: svc.tls, check: null, checkKey: '', timer: null, inFlight: null,
        consecutiveOk: 0, consecutiveFailed: 0, lastCheckAt: 0, lastResult: '',
        results: { ok: 0, bad_status: 0, timeout: 0, error: 0 }, ejectionsSeen: this.table.field(slot, F.EJECTIONS_TOTAL),
      };
      this.targets.set(key, t);
    }
    t.hostHeader = hostHeader;
    t.tls = svc.tls;
    const check = svc.healthCheck ?? null;
    const checkKey = check === null ? '' : JSON.stringify([check, svc.tls?.fingerprint ?? '', hostHeader]);
    if (checkKey !== t.checkKey) {
      this.stopChecks(t);
      t.check = check;
      t.checkKey = checkKey;
      if (check !== null) this.runCheck(t);
    }
    return t;
  }

  /** A policy removed by a reload leaves nothing behind: no stale UNHEALTHY or EJECTED bit. */
  private settle(s: ServiceState): void {
    for (const t of s.targets) {
      if (t.check === null && this.table.clearDown(t.slot, DOWN.UNHEALTHY) & DOWN.UNHEALTHY) {
        log.info('upstream target healthy (health_check removed)', { service: t.service, target: t.origin });
      }
      if (!s.service.outlier && this.table.isDown(t.slot, DOWN.EJECTED)) this.bringBack(s, t, 'outlier removed');
    }
  }

  private stopChecks(t: TargetState): void {
    if (t.timer !== null) clearTimeout(t.timer);
    t.timer = null;
    t.inFlight?.destroy();
    t.inFlight = null;
  }

  // --- active checks ---------------------------------------------------------------------

  private runCheck(t: TargetState): void {
    const check = t.check!;
    const started = Date.now();
    const url = new URL(t.origin);
    const secure = url.protocol === 'https:';
    const options: RequestOptions = {
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
      method: 'GET',
      path: check.path,
      headers: { host: check.host ?? t.hostHeader, 'user-agent': USER_AGENT, connection: 'close' },
      agent: false,
      ...(secure ? upstreamTlsOptions(t.tls) : {}),
    };
    let done = false;
    const finish = (result: CheckResult, detail: string) => {
      if (done) return;
      done = true;
      clearTimeout(timeout);
      req.destroy();
      if (t.inFlight === req) t.inFlight = null;
      if (t.check !== check || this.stopped) return; // settings changed meanwhile: the new timer runs
      this.record(t, result, detail);
      t.timer = setTimeout(() => { t.timer = null; this.runCheck(t); }, Math.max(0, check.intervalMs - (Date.now() - started))).unref();
    };
    const req = (secure ? httpsRequest : httpRequest)(options, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      finish(check.expectStatus.includes(status) ? 'ok' : 'bad_status', `status ${status}`);
    });
    req.on('error', (err: NodeJS.ErrnoException) => finish('error', err.code ?? err.message));
    const timeout = setTimeout(() => finish('timeout', `no answer in ${check.timeoutMs} ms`), check.timeoutMs);
    t.inFlight = req;
    req.end();
  }

  private record(t: TargetState, result: CheckResult, detail: string): void {
    const check = t.check!;
    t.results[result]++;
    t.lastCheckAt = Date.now();
    t.lastResult = result === 'ok' ? 'ok' : `${result}: ${detail}`;
    const unhealthy = this.table.isDown(t.slot, DOWN.UNHEALTHY);
    if (result === 'ok') {
      t.consecutiveFailed = 0;
      t.consecutiveOk++;
      if (unhealthy && t.consecutiveOk >= check.healthyAfter) {
        this.table.clearDown(t.slot, DOWN.UNHEALTHY);
        log.info('upstream target healthy', { service: t.service, target: t.origin, checks_passed: t.consecutiveOk });
      }
    } else {
      t.consecutiveOk = 0;
      t.consecutiveFailed++;
      if (!unhealthy && t.consecutiveFailed >= check.unhealthyAfter) {
        this.table.setDown(t.slot, DOWN.UNHEALTHY);
        log.warn('upstream target unhealthy', { service: t.service, target: t.origin, checks_failed: t.consecutiveFailed, last: t.lastResult });
      }
    }
  }

  // --- ejections -------------------------------------------------------------------------

  private sweep(): void {
    const table = this.table;
    const now = table.ticks();
    for (const s of this.services) {
      const outlier = s.service.outlier;
      if (!outlier) continue;
      for (const t of s.targets) {
        const total = table.field(t.slot, F.EJECTIONS_TOTAL);
        if (total !== t.ejectionsSeen) {
          t.ejectionsSeen = total;
          const times = table.field(t.slot, F.TIMES_EJECTED);
          log.warn('upstream target ejected', {
            service: t.service, target: t.origin, times, for_s: ejectionMs(times, outlier.ejectS, outlier.maxEjectS) / 1000,
            by_worker: table.field(t.slot, F.EJECTED_BY) - 1,
          });
        }
        if (table.isDown(t.slot, DOWN.EJECTED)) {
          const until = table.field(t.slot, F.EJECTED_UNTIL);
          if (until !== 0 && now >= until) this.bringBack(s, t, 'ejection time over');
        } else if (table.field(t.slot, F.TIMES_EJECTED) > 0 && now - table.field(t.slot, F.LAST_CHANGE) >= (outlier.ejectS * 1000) / TICK_MS) {
          // Envoy's decay: each eject_s spent in rotation takes one off the multiplier.
          table.addField(t.slot, F.TIMES_EJECTED, -1);
          table.setField(t.slot, F.LAST_CHANGE, now);
        }
      }
    }
  }

  private bringBack(s: ServiceState, t: TargetState, why: string): void {
    const table = this.table;
    table.setField(t.slot, F.CONSECUTIVE_5XX, 0);
    table.setField(t.slot, F.CONSECUTIVE_CONNECT, 0);
    table.setField(t.slot, F.EJECTED_UNTIL, 0);
    table.setField(t.slot, F.LAST_CHANGE, table.ticks());
    if (table.clearDown(t.slot, DOWN.EJECTED) & DOWN.EJECTED) {
      table.releaseEjection(s.serviceSlot);
      log.info('upstream target returned', { service: t.service, target: t.origin, reason: why });
    }
  }

  // --- views -----------------------------------------------------------------------------

  /** A target's health for GET /upstreams; null when its service has no health policy. */
  target(service: string, origin: string): Record<string, unknown> | null {
    const t = this.targets.get(keyOf(service, origin));
    if (t === undefined || !this.services.some((s) => s.name === service)) return null;
    const table = this.table;
    const down = table.down[t.slot];
    const until = table.field(t.slot, F.EJECTED_UNTIL);
    return {
      health: down === 0 ? 'healthy' : (down & DOWN.UNHEALTHY) !== 0 ? 'unhealthy' : 'ejected',
      active_check: t.check === null ? null : {
        healthy: (down & DOWN.UNHEALTHY) === 0,
        consecutive_ok: t.consecutiveOk,
        consecutive_failed: t.consecutiveFailed,
        last_check_at: t.lastCheckAt === 0 ? null : new Date(t.lastCheckAt).toISOString(),
        last_result: t.lastResult === '' ? null : t.lastResult,
      },
      ejected: (down & DOWN.EJECTED) !== 0,
      ejected_until: (down & DOWN.EJECTED) !== 0 && until !== 0 ? new Date(table.epoch + until * TICK_MS).toISOString() : null,
      times_ejected: table.field(t.slot, F.TIMES_EJECTED),
      ejections_total: table.field(t.slot, F.EJECTIONS_TOTAL),
      consecutive_5xx: table.field(t.slot, F.CONSECUTIVE_5XX),
      consecutive_connect_failures: table.field(t.slot, F.CONSECUTIVE_CONNECT),
    };
  }

  /** GET /status: per service, how many targets may take requests. */
  status(): { services: { name: string; targets: number; healthy: number; unhealthy: number; ejected: number; max_ejected: number | null }[] } {
    return {
      services: this.services.map((s) => {
        let healthy = 0, unhealthy = 0, ejected = 0;
        for (const t of s.targets) {
          const down = this.table.down[t.slot];
          if (down === 0) healthy++;
          if (down & DOWN.UNHEALTHY) unhealthy++;
          if (down & DOWN.EJECTED) ejected++;
        }
        const outlier = s.service.outlier;
        return { name: s.name, targets: s.targets.length, healthy, unhealthy, ejected, max_ejected: outlier ? ejectionCap(s.targets.length, outlier.maxEjectPercent) : null };
      }),
    };
  }

  /** Metric values: lobby_upstream_healthy, lobby_upstream_ejections_total, lobby_upstream_health_checks_total. */
  metricValues(): {
    healthy: { labels: Record<string, string>; value: number }[];
    ejections: { labels: Record<string, string>; value: number }[];
    checks: { labels: Record<string, string>; value: number }[];
  } {
    const healthy = [], ejections = [], checks = [];
    for (const s of this.services) {
      for (const t of s.targets) {
        const labels = { service: s.name, target: t.origin };
        healthy.push({ labels, value: this.table.down[t.slot] === 0 ? 1 : 0 });
        if (s.service.outlier) ejections.push({ labels, value: this.table.field(t.slot, F.EJECTIONS_TOTAL) });
        if (t.check !== null) for (const result of CHECK_RESULTS) checks.push({ labels: { ...labels, result }, value: t.results[result] });
      }
    }
    return { healthy, ejections, checks };
  }
}

function hasPolicy(svc: CompiledService): boolean {
  return (svc.healthCheck ?? null) !== null || (svc.outlier ?? null) !== null;
}
