// The supervisor: starts the data-plane worker threads, publishes config generations to
// them, replaces a worker that dies, and drains them all on shutdown.
//
// Publishing a generation (publish()):
//   1. encode the route table into a fresh SharedArrayBuffer (off the request path: this
//      runs on the main thread, workers keep serving);
//   2. send `prepare` to every worker; each builds its tables and answers `prepared`;
//   3. only when every worker is prepared, store the generation number in the control block
//      (Atomics.store): from the next request on, every worker uses it.
// In-flight requests keep the generation they started with.
import { createServer } from 'node:net';
import { Worker } from 'node:worker_threads';
import type { CompiledConfig } from '../shared/compiled-config.js';
import type { FromWorker, ToWorker, WorkerBoot } from '../shared/messages.js';
import { CONTROL_SLOTS, createControlBlock } from '../shared/control-block.js';
import { encodeRouteTable } from '../shared/route-table.js';
import { encodeRouteData } from '../shared/route-data.js';
import { log } from '../shared/log.js';
import { formatListen } from './check.js';
import { JwksManager } from './jwks.js';
import { IntrospectionManager } from './introspection.js';
import { RateLimitSync } from './rate-limit-sync.js';
import { MetricsStore } from './metrics-store.js';
import { WORKER_STATS } from '../shared/metrics-layout.js';
import { TlsManager } from './tls-manager.js';
import { HealthChecker } from './health-checker.js';
import { BreakerStore } from './breaker-store.js';
import type { TlsListenerConfig } from '../shared/tls-config.js';

const WORKER_ENTRY = new URL('../../workers/data-plane.js', import.meta.url);
/** Restart backoff after a worker crash: doubles per crash within a minute, capped. */
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 5_000;
const PREPARE_TIMEOUT_MS = 30_000;

interface Published {
  generation: number;
  table: SharedArrayBuffer;
  routeData: SharedArrayBuffer;
  config: CompiledConfig;
  /** What crosses to workers: routes travel in routeData, not through structured clone. */
  configWithoutRoutes: CompiledConfig;
  /** Each worker's metric counters for this generation (by worker index), or null when metrics are off. */
  metrics: SharedArrayBuffer[] | null;
}

/** Encodes a generation once (on this thread, off the request path) for every worker. */
function published(generation: number, compiled: CompiledConfig, metrics: MetricsStore, breakers: BreakerStore): Published {
  // The shared breaker/overload buffer and each breaker's slot (src/control/breaker-store.ts).
  const config = breakers.attach(compiled);
  return {
    generation,
    metrics: metrics.allocate(generation, config),
    table: encodeRouteTable(config.routes),
    routeData: encodeRouteData(config.routes),
    config,
    // Routes travel in routeData; the introspection endpoints and client secrets stay here
    // (only the control plane calls them, src/control/introspection.ts).
    configWithoutRoutes: { ...config, routes: [], introspection: undefined },
  };
}

class WorkerHandle {
  listening = false;
  private waiters: Array<{ match: (m: FromWorker) => boolean; resolve: (m: FromWorker) => void }> = [];

  constructor(readonly index: number, readonly thread: Worker) {
    thread.on('message', (msg: FromWorker) => {
      const i = this.waiters.findIndex((w) => w.match(msg));
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(msg);
    });
  }

  send(msg: ToWorker): void {
    this.thread.postMessage(msg);
  }

  /** Resolves with the first message that matches, or rejects after timeoutMs / on exit. */
  waitFor<T extends FromWorker>(match: (m: FromWorker) => m is T, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => { cleanup(); reject(new Error(`worker ${this.index}: no answer in ${timeoutMs} ms`)); }, timeoutMs);
      const onExit = () => { cleanup(); reject(new Error(`worker ${this.index} exited`)); };
      const waiter = { match, resolve: (m: FromWorker) => { cleanup(); resolve(m as T); } };
      const cleanup = () => {
        clearTimeout(timer);
        this.thread.off('exit', onExit);
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
      };
      this.thread.once('exit', onExit);
      this.waiters.push(waiter);
    });
  }
}

/**
 * Fails when another process already listens on host:port. The workers bind with SO_REUSEPORT
 * (uWS always sets it), so a second gateway on the same port would silently share it; this
 * bind has no SO_REUSEPORT, so the kernel refuses it while any listener holds the port.
 */
export function probeListenPort(host: string, port: number): Promise<void> {
  const address = formatListen(host, port);
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => {
      reject(new Error(err.code === 'EADDRINUSE'
        ? `${address} is already in use by another process (another Lobby?). Stop that process or choose another ` +
          'server.port; to share the port on purpose (e.g. blue/green on one host), set server.reuse_port: true'
        : `cannot listen on ${address} (${err.code ?? err.message})`));
    });
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()));
  });
}

export interface SupervisorOptions {
  testHooks?: boolean;
}

export class Supervisor {
  private readonly control = createControlBlock();
  private readonly controlView = new Int32Array(this.control);
  private readonly workers: (WorkerHandle | null)[] = [];
  private published: Published | null = null;
  private nextGeneration = 1;
  private stopping = false;
  private crashTimes: number[] = [];
  /** Serializes publishes and restarts, so workers never see generations out of order. */
  private queue: Promise<unknown> = Promise.resolve();
  readonly startedAt = Date.now();
  restarts = 0;
  /** JWKS fetching for every worker (one fetch per URI per instance); key sets go out as `keys`. */
  readonly jwks = new JwksManager((msg) => { for (const w of this.workers) w?.send(msg); });
  /** Token introspection for every worker (one call per token per instance, shared cache). */
  readonly introspection = new IntrospectionManager();

  /** The rate-limit bucket table every worker shares, and its sweep and Redis sync. */
  readonly rateLimits: RateLimitSync;
  /** The data plane's metric counters, per generation and worker (src/control/metrics-store.ts). */
  readonly metrics = new MetricsStore();
  /** Circuit breakers' shared state, by service name across reloads (src/control/breaker-store.ts). */
  readonly breakers = new BreakerStore();
  /** Each worker's stats block (event-loop delay), kept for its replacement. */
  private readonly workerStats: SharedArrayBuffer[] = [];
  private nextRequestId = 1;
  /** The HTTPS listener's certificates and their rotation (null without server.tls). */
  tls: TlsManager | null = null;
  /** The health table, active health checks and the ejection sweeper (health-checker.ts). */
  readonly health = new HealthChecker();

  constructor(private config: CompiledConfig, private readonly opts: SupervisorOptions = {}) {
    this.rateLimits = new RateLimitSync(config.rateLimit?.tableKeys);
  }

  get generation(): number {
    return this.published?.generation ?? 0;
  }

  get workerCount(): number {
    return this.workers.filter((w) => w?.listening).length;
  }

  /** Starts every worker on the config and waits until all listen. Throws if one cannot. */
  async start(): Promise<void> {
    this.published = published(this.nextGeneration++, this.health.assign(this.config), this.metrics, this.breakers);
    this.metrics.activate(this.published.generation);
    this.health.activate(this.published.config);
    // Stored before any worker listens: each worker prepares it before it opens its socket.
    Atomics.store(this.controlView, CONTROL_SLOTS.PUBLISHED_GENERATION, this.published.generation);
    await this.jwks.configure(this.config);
    this.introspection.configure(this.config);
    await this.rateLimits.configure(this.config);
    const source = this.config.server.tlsSource;
    if (source !== null) {
      this.tls = new TlsManager(source, this.config.source, (tls) => this.sendTls(tls));
      this.tls.watch();
    }
    const n = this.config.server.workers;
    await Promise.all(Array.from({ length: n }, (_, i) => this.startWorker(i)));
  }

  /** Publishes a new compiled config to every worker; resolves with its generation number. */
  publish(config: CompiledConfig): Promise<number> {
    const run = this.queue.then(() => this.publishNow(config));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async publishNow(config: CompiledConfig): Promise<number> {
    const next = published(this.nextGeneration++, this.health.assign(config), this.metrics, this.breakers);
    try {
      await this.jwks.configure(config);
      this.introspection.configure(config);
      await this.rateLimits.configure(config);
      const live = this.workers.filter((w): w is WorkerHandle => w !== null);
      await Promise.all(live.map((w) => this.prepare(w, next)));
    } catch (err) {
      this.metrics.discard(next.generation);
      throw err;
    }
    this.metrics.activate(next.generation);
    this.health.activate(next.config);
    this.published = next;
    this.config = config;
    Atomics.store(this.controlView, CONTROL_SLOTS.PUBLISHED_GENERATION, next.generation);
    return next.generation;
  }

  private async prepare(w: WorkerHandle, p: Published): Promise<void> {
    const answer = w.waitFor((m): m is Extract<FromWorker, { type: 'prepared' | 'prepare-failed' }> =>
      (m.type === 'prepared' || m.type === 'prepare-failed') && m.generation === p.generation, PREPARE_TIMEOUT_MS);
    const metrics = p.metrics?.[w.index];
    w.send({ type: 'prepare', generation: p.generation, table: p.table, routeData: p.routeData, config: p.configWithoutRoutes, ...(metrics ? { metrics } : {}) });
    const msg = await answer;
    if (msg.type === 'prepare-failed') throw new Error(`worker ${w.index} could not prepare generation ${p.generation}: ${msg.message}`);
  }

  private async startWorker(index: number): Promise<void> {
    const boot: WorkerBoot = {
      workerIndex: index, control: this.control, testHooks: this.opts.testHooks ?? false, rateLimitTable: this.rateLimits.sab,
      workerStats: this.workerStats[index] ??= new SharedArrayBuffer(WORKER_STATS.SIZE * 8),
      health: this.health.boot,
    };
    const thread = new Worker(WORKER_ENTRY, { workerData: boot, name: `lobby-data-${index}` });
    const handle = new WorkerHandle(index, thread);
    this.workers[index] = handle;
    thread.on('exit', (code) => this.onWorkerExit(handle, code));
    thread.on('message', (m: FromWorker) => {
      if (m.type === 'jwks-refetch') this.jwks.refetch(m.uri);
      else if (m.type === 'introspect') {
        void this.introspection.introspect(m.provider, m.token).then((outcome) => {
          if (this.workers[handle.index] === handle) handle.send({ type: 'introspected', id: m.id, ...outcome });
        });
      }
    });
    for (const keys of this.jwks.snapshot()) handle.send(keys);
    thread.on('error', (err) => log.error('data-plane worker error', { worker: index, error: String(err?.stack ?? err) }));
    await this.prepare(handle, this.published!);
    if (this.tls !== null) await this.sendTlsTo(handle, this.tls.current);
    const { host, port } = this.config.server;
    const listened = handle.waitFor((m): m is Extract<FromWorker, { type: 'listening' | 'listen-failed' }> =>
      m.type === 'listening' || m.type === 'listen-failed', PREPARE_TIMEOUT_MS);
    handle.send({ type: 'listen', host, port });
    const msg = await listened;
    if (msg.type === 'listen-failed') throw new Error(`cannot listen on ${host}:${port} (address in use or not permitted)`);
    handle.listening = true;
  }

  /** A new certificate set to every worker; rejects when one refuses it (its running set stays). */
  private async sendTls(tls: TlsListenerConfig): Promise<void> {
    const live = this.workers.filter((w): w is WorkerHandle => w !== null);
    await Promise.all(live.map((w) => this.sendTlsTo(w, tls)));
  }

  private async sendTlsTo(w: WorkerHandle, tls: TlsListenerConfig): Promise<void> {
    const answer = w.waitFor((m): m is Extract<FromWorker, { type: 'tls-applied' }> => m.type === 'tls-applied' && m.version === tls.version, PREPARE_TIMEOUT_MS);
    w.send({ type: 'tls', config: tls });
    const msg = await answer;
    if (msg.error !== null) throw new Error(`worker ${w.index} refused the tls certificates: ${msg.error}`);
  }

  private onWorkerExit(handle: WorkerHandle, code: number): void {
    if (this.workers[handle.index] !== handle) return;
    this.workers[handle.index] = null;
    this.rateLimits.releaseWorker(handle.index);
    if (this.stopping) return;
    log.error('data-plane worker exited; starting a replacement', { worker: handle.index, code });
    const now = Date.now();
    this.crashTimes = this.crashTimes.filter((t) => now - t < 60_000);
    this.crashTimes.push(now);
    const delay = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** (this.crashTimes.length - 1));
    setTimeout(() => {
      if (this.stopping) return;
      const run = this.queue.then(() => this.startWorker(handle.index));
      this.queue = run.catch((err) => log.error('worker restart failed', { worker: handle.index, error: String(err) }));
      run.then(() => { this.restarts++; log.warn('data-plane worker replaced', { worker: handle.index }); }, () => {
        if (this.workers[handle.index] === null) this.onWorkerExit(handle, -1);
      });
    }, delay);
  }

  /** Each worker's event-loop delay of the last second (seconds), by worker index. */
  workerLag(): { worker: number; mean: number; p99: number; max: number }[] {
    return this.workerStats.map((sab, worker) => {
      const v = new Float64Array(sab);
      return { worker, mean: v[WORKER_STATS.LAG_MEAN], p99: v[WORKER_STATS.LAG_P99], max: v[WORKER_STATS.LAG_MAX] };
    });
  }

  /**
   * Asks every live worker (`latency-request`, `upstreams-request`) and resolves with the
   * answers that came within timeoutMs (a worker being replaced is left out).
   */
  async ask<T extends 'latency' | 'upstreams'>(type: T, timeoutMs = 2_000): Promise<Extract<FromWorker, { type: T }>[]> {
    const id = this.nextRequestId++;
    const live = this.workers.filter((w): w is WorkerHandle => w !== null && w.listening);
    const answers = await Promise.allSettled(live.map((w) => {
      const answer = w.waitFor((m): m is Extract<FromWorker, { type: T }> => m.type === type && (m as { id: number }).id === id, timeoutMs);
      w.send({ type: type === 'latency' ? 'latency-request' : 'upstreams-request', id });
      return answer;
    }));
    return answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
  }

  /**
   * Graceful stop: every worker stops accepting, finishes in-flight requests (up to the
   * drain deadline), closes its connections and exits. Resolves with the number of
   * requests that were still unfinished at the deadline.
   */
  /** SIGUSR1 (logrotate): every worker reopens its access-log files. */
  reopenLogs(): void {
    for (const w of this.workers) w?.send({ type: 'reopen-logs' });
  }

  /** SIGTERM/SIGINT: from now on every response closes its connection (src/data/closing.ts). */
  closeConnections(): void {
    Atomics.store(this.controlView, CONTROL_SLOTS.CLOSE_CONNECTIONS, 1);
  }

  async drain(): Promise<number> {
    this.stopping = true;
    this.jwks.stop();
    this.introspection.stop();
    this.tls?.close();
    this.health.stop();
    const deadlineMs = this.config.server.drainTimeoutMs;
    const live = this.workers.filter((w): w is WorkerHandle => w !== null);
    const results = await Promise.all(live.map(async (w) => {
      const exited = new Promise<void>((r) => w.thread.once('exit', () => r()));
      const drained = w.waitFor((m): m is Extract<FromWorker, { type: 'drained' }> => m.type === 'drained', deadlineMs + 5_000)
        .then((m) => m.unfinished, () => 0);
      w.send({ type: 'drain', deadlineMs });
      const unfinished = await drained;
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2_000))]);
      return unfinished;
    }));
    await this.rateLimits.close();
    return results.reduce((a, b) => a + b, 0);
  }
}
