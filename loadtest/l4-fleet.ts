// Several Lobby instances behind HAProxy in TCP mode, under keep-alive load, for the rolling
// restart and instance-failure runs (test/integration/rolling-restart.test.ts and
// loadtest/rolling-restart.ts; docs/operations.md#running-several-instances).
//
//   clients (node:http keep-alive) -> HAProxy (mode tcp, check GET /readyz on each admin port)
//     -> Lobby a | b | c (each its own data and admin port, one worker) -> its own upstream
//
// Each instance has its own upstream (in this process), which names it in `x-instance`, so every
// response says which instance served it and every client connection (pinned to one instance for
// its life: TCP mode) is tagged with the instance its last response came from. That is what lets
// a failure be attributed: after `kill -9` of an instance, a failed request must have been on a
// connection to it (or on one opened before the kill, not answered yet).
import { createServer, request as httpRequest, Agent, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LOBBY_ENTRY } from './lobby.js';
import { haproxyServerStatus, haproxyTcpConfig } from './haproxy.js';
import { sleep, type ManagedProcess, type ProcessGroup } from './processes.js';

export interface FleetInstanceSpec {
  name: string;
  /** Data port (server.port). */
  port: number;
  /** Admin port (admin.port): HAProxy's health check and readiness polls. */
  adminPort: number;
  /** Its upstream's port (an HTTP server in this process). */
  upstreamPort: number;
}

export interface FleetOptions {
  group: ProcessGroup;
  /** Config files, the HAProxy config and its stats socket go here. */
  workDir: string;
  haproxyBinary: string;
  /** Where clients connect (HAProxy's frontend). */
  frontPort: number;
  instances: FleetInstanceSpec[];
  drainDelayMs: number;
  drainTimeoutMs: number;
  /** HAProxy health check: period (ms), failures to take a server out, passes to put it back. */
  interMs: number;
  fall: number;
  rise: number;
  /** Data-plane workers per instance. */
  workers: number;
  /** Progress lines (the test prints them as diagnostics, the script on stdout). */
  log?: (line: string) => void;
}

const HOST = '127.0.0.1';
const TOKEN = 'rolling-restart-admin-token-0123456789';
const START_TIMEOUT_MS = 20_000;

/** One Lobby instance and its upstream. */
export class FleetInstance {
  proc: ManagedProcess | null = null;
  private upstream: Server | null = null;
  readonly configFile: string;

  constructor(readonly spec: FleetInstanceSpec, private readonly opts: FleetOptions) {
    this.configFile = join(opts.workDir, `lobby-${spec.name}.yaml`);
  }

  get name(): string { return this.spec.name; }

  async startUpstream(): Promise<void> {
    const body = Buffer.from(`{"instance":"${this.name}"}`);
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, 'x-instance': this.name });
        res.end(body);
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(this.spec.upstreamPort, HOST, () => resolve()); });
    this.upstream = server;
  }

  /** Starts the Lobby process and resolves once its /readyz answers 200. */
  async start(): Promise<void> {
    const o = this.opts;
    await writeFile(this.configFile, `server:
  host: ${HOST}
  port: ${this.spec.port}
  workers: ${o.workers}
  drain_delay_ms: ${o.drainDelayMs}
  drain_timeout_ms: ${o.drainTimeoutMs}
admin:
  host: ${HOST}
  port: ${this.spec.adminPort}
  token: \${LOBBY_ADMIN_TOKEN}
services:
  up: { targets: ["http://${HOST}:${this.spec.upstreamPort}"], connections: 16 }
routes:
  - { name: all, match: { prefix: / }, service: up }
`);
    this.proc = o.group.spawn(`lobby-${this.name}`, process.execPath, [LOBBY_ENTRY, 'start', '--config', this.configFile], {
      cpu: null, env: { ...process.env, LOBBY_ADMIN_TOKEN: TOKEN, LOBBY_LOG_LEVEL: 'info' },
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await this.ready())) {
      if (!this.proc.running) throw new Error(`lobby ${this.name} exited during start: ${this.proc.outputTail()}`);
      if (Date.now() > deadline) throw new Error(`lobby ${this.name} not ready in ${START_TIMEOUT_MS} ms: ${this.proc.outputTail()}`);
      await sleep(50);
    }
  }

  /** GET /readyz on the admin port answered 200. */
  ready(): Promise<boolean> {
    return new Promise((resolve) => {
      const req = httpRequest({ host: HOST, port: this.spec.adminPort, path: '/readyz', agent: false, timeout: 1000, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
      req.end();
    });
  }

  async closeUpstream(): Promise<void> {
    const server = this.upstream;
    if (server === null) return;
    this.upstream = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export class L4Fleet {
  readonly instances: FleetInstance[];
  haproxy: ManagedProcess | null = null;
  readonly statsSocket: string;

  private constructor(readonly opts: FleetOptions) {
    this.instances = opts.instances.map((spec) => new FleetInstance(spec, opts));
    this.statsSocket = join(opts.workDir, 'haproxy.sock');
  }

  /** Starts every upstream, every Lobby (in parallel) and HAProxy; resolves once HAProxy sees all UP. */
  static async start(opts: FleetOptions): Promise<L4Fleet> {
    const fleet = new L4Fleet(opts);
    try {
      await fleet.startAll();
    } catch (error) {
      await fleet.close(); // what did start: the caller has no fleet to close
      throw error;
    }
    return fleet;
  }

  private async startAll(): Promise<void> {
    const { opts } = this;
    const fleet = this;
    await Promise.all(fleet.instances.map((instance) => instance.startUpstream()));
    await Promise.all(fleet.instances.map((instance) => instance.start()));
    const configFile = join(opts.workDir, 'haproxy.cfg');
    await writeFile(configFile, haproxyTcpConfig({
      bind: `${HOST}:${opts.frontPort}`, statsSocket: fleet.statsSocket, interMs: opts.interMs, fall: opts.fall, rise: opts.rise,
      servers: opts.instances.map((s) => ({ name: s.name, host: HOST, port: s.port, adminPort: s.adminPort })),
    }));
    fleet.haproxy = opts.group.spawn('haproxy', opts.haproxyBinary, ['-db', '-f', configFile], {
      cpu: null, env: { ...process.env, LOBBY_ADMIN_TOKEN: TOKEN },
    });
    for (const instance of fleet.instances) await fleet.waitStatus(instance.name, 'UP', START_TIMEOUT_MS);
  }

  instance(name: string): FleetInstance {
    const found = this.instances.find((i) => i.name === name);
    if (!found) throw new Error(`no instance ${name}`);
    return found;
  }

  /** Polls HAProxy's stats socket until `name` has status `want` exactly; resolves with the wait in ms. */
  async waitStatus(name: string, want: 'UP' | 'DOWN', timeoutMs: number): Promise<number> {
    const started = Date.now();
    let last = '';
    for (;;) {
      if (this.haproxy !== null && !this.haproxy.running) throw new Error(`haproxy exited: ${this.haproxy.outputTail()}`);
      try {
        last = (await haproxyServerStatus(this.statsSocket)).get(name) ?? 'absent';
        if (last === want) return Date.now() - started;
      } catch (error) {
        last = String(error); // the socket is not there yet right after the start
      }
      if (Date.now() - started > timeoutMs) throw new Error(`haproxy did not see ${name} ${want} in ${timeoutMs} ms (last: ${last})`);
      await sleep(20);
    }
  }

  /** Stops HAProxy and every Lobby (SIGTERM, then SIGKILL), and the upstreams. */
  async close(): Promise<void> {
    await this.opts.group.stopAll();
    await Promise.all(this.instances.map((i) => i.closeUpstream()));
  }
}

// --- load ------------------------------------------------------------------------------

interface TaggedSocket extends Socket {
  /** The instance the last response on this connection came from (TCP mode pins it). */
  lobbyInstance?: string;
  openedAt?: number;
}

export interface Outcome {
  startedAt: number;
  endedAt: number;
  ok: boolean;
  /** Which instance answered (x-instance), when one did. */
  instance: string | null;
  /** The failure: a status other than 200, or a transport error code. */
  error: string | null;
  /** The instance the request's connection was pinned to when it was sent, known from an
   * earlier response on it; null on a fresh connection. */
  connection: string | null;
  /** When that connection was opened. */
  connectionOpenedAt: number;
}

interface Pending {
  startedAt: number;
  socket: TaggedSocket | null;
  connection: string | null;
  openedAt: number;
}

export interface LoadOptions {
  port: number;
  clients: number;
  /** Every n-th request of a client asks `Connection: close`, so connections are spread again over the instances in rotation. */
  reconnectEvery: number;
}

/** A closed loop of keep-alive clients through the balancer, recording every request's outcome. */
export class LoadLoop {
  readonly outcomes: Outcome[] = [];
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly agents: Agent[] = [];
  private readonly pending = new Set<Pending>();
  /** Open client connections (to tell how many were pinned to an instance at a moment). */
  private readonly sockets = new Set<TaggedSocket>();
  /** When each client connection was opened. */
  private readonly openedAt: number[] = [];

  constructor(private readonly opts: LoadOptions) {}

  get clients(): number { return this.opts.clients; }

  start(): void {
    this.running = true;
    for (let i = 0; i < this.opts.clients; i++) {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      this.agents.push(agent);
      this.loops.push(this.loop(agent));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const agent of this.agents) agent.destroy();
  }

  /** Requests sent and not answered now, by the instance their connection is pinned to ('fresh': a new connection). */
  inFlightByConnection(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const p of this.pending) {
      const key = p.connection ?? 'fresh';
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return counts;
  }

  /** Client connections opened in [from, to]. */
  connectionsOpened(from: number, to: number): number {
    return this.openedAt.filter((t) => t >= from && t <= to).length;
  }

  /** Open client connections pinned to `instance` now. */
  connectionsTo(instance: string): number {
    let n = 0;
    for (const s of this.sockets) if (s.lobbyInstance === instance) n++;
    return n;
  }

  /** Resolves once `count` requests answered by `instance` ended after `since`. */
  async waitServed(instance: string, since: number, count: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let n = 0;
      for (let i = this.outcomes.length - 1; i >= 0 && this.outcomes[i].endedAt >= since; i--) {
        if (this.outcomes[i].ok && this.outcomes[i].instance === instance) n++;
      }
      if (n >= count) return;
      if (Date.now() > deadline) throw new Error(`instance ${instance} served ${n} of ${count} requests in ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  private async loop(agent: Agent): Promise<void> {
    let sent = 0;
    while (this.running) {
      sent++;
      this.outcomes.push(await this.once(agent, sent % this.opts.reconnectEvery === 0));
    }
  }

  private once(agent: Agent, close: boolean): Promise<Outcome> {
    const entry: Pending = { startedAt: Date.now(), socket: null, connection: null, openedAt: 0 };
    this.pending.add(entry);
    return new Promise((resolve) => {
      let settled = false;
      const finish = (ok: boolean, instance: string | null, error: string | null): void => {
        if (settled) return;
        settled = true;
        this.pending.delete(entry);
        resolve({
          startedAt: entry.startedAt, endedAt: Date.now(), ok, instance, error,
          connection: entry.connection, connectionOpenedAt: entry.socket === null ? entry.startedAt : entry.openedAt,
        });
      };
      const req = httpRequest({
        host: HOST, port: this.opts.port, path: '/load', agent, timeout: 10_000,
        headers: close ? { connection: 'close' } : {},
      }, (res) => {
        const instance = typeof res.headers['x-instance'] === 'string' ? res.headers['x-instance'] : null;
        if (entry.socket !== null && instance !== null) entry.socket.lobbyInstance = instance;
        res.resume();
        res.on('end', () => finish(res.statusCode === 200, instance, res.statusCode === 200 ? null : `status ${res.statusCode}`));
        res.on('error', (err: NodeJS.ErrnoException) => finish(false, instance, err.code ?? err.message));
        res.on('close', () => finish(false, instance, 'closed before the end of the response')); // no-op after 'end'
      });
      req.on('socket', (socket: TaggedSocket) => {
        if (socket.openedAt === undefined) {
          socket.openedAt = Date.now();
          this.openedAt.push(socket.openedAt);
          this.sockets.add(socket);
          socket.once('close', () => this.sockets.delete(socket));
        }
        entry.socket = socket;
        entry.connection = socket.lobbyInstance ?? null;
        entry.openedAt = socket.openedAt;
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('no answer in 10 s'), { code: 'TIMEOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => finish(false, null, err.code ?? err.message));
      req.end();
    });
  }
}

// --- the run ---------------------------------------------------------------------------

export interface RestartResult {
  name: string;
  /** SIGTERM to HAProxy's DOWN (must be below drain_delay_ms). */
  downAfterMs: number;
  /** SIGTERM to the process's exit, and its exit code (0 after a drain). */
  exitAfterMs: number;
  exitCode: number | null;
  /** The new process's start to /readyz 200, then to HAProxy's UP, then to its first answers. */
  readyAfterMs: number;
  upAfterMs: number;
  servingAfterMs: number;
}

export interface KillResult {
  name: string;
  /** Requests not answered at the kill, by the instance of their connection ('fresh': a new one). */
  inFlightAtKill: Record<string, number>;
  /** Client connections pinned to the killed instance at the kill. */
  connectionsAtKill: number;
  /** SIGKILL to the process's end (its sockets closed), and the client connections opened
   * meanwhile: HAProxy may still have put those on the dying instance (the kernel completes
   * handshakes on its listen socket until it is closed, then resets them). */
  exitAfterMs: number;
  connectionsOpenedWhileDying: number;
  failures: Outcome[];
  /** Failures on a connection to another instance, or on one opened after the killed process
   * was gone: must be none. */
  unattributed: Outcome[];
  /** SIGKILL to HAProxy's DOWN. */
  downAfterMs: number;
  /** Answers after HAProxy saw it DOWN, by instance. */
  servedAfterDown: Record<string, number>;
  /** The last failure ended this long after the kill (-1: none). */
  lastFailureAfterMs: number;
}

export interface RunResult {
  restarts: RestartResult[];
  /** Requests from the start of the load to the kill (or the end), and the failed ones (must be none). */
  rollingRequests: number;
  rollingFailures: Outcome[];
  /** Answers per instance over the same span. */
  rollingServed: Record<string, number>;
  kill: KillResult | null;
  requests: number;
  durationMs: number;
}

export interface RunPlan {
  /** Instances to restart one after another (SIGTERM, exit, start, UP, serving). */
  restart: string[];
  /** The instance to kill -9 afterwards (null: none). */
  kill: string | null;
  /** Load kept on after HAProxy saw the killed instance DOWN. */
  afterKillMs: number;
}

/** Polls until check() holds or timeoutMs passed (then goes on: the result reports what happened). */
async function waitFor(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await sleep(5);
}

function countBy(outcomes: Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) if (o.ok && o.instance !== null) counts[o.instance] = (counts[o.instance] ?? 0) + 1;
  return counts;
}

/** Runs the plan under load and reports; every assertion is the caller's. */
export async function runUnderLoad(fleet: L4Fleet, load: LoadLoop, plan: RunPlan): Promise<RunResult> {
  const log = fleet.opts.log ?? (() => undefined);
  const { drainDelayMs, drainTimeoutMs } = fleet.opts;
  const started = Date.now();
  load.start();
  try {
    for (const instance of fleet.instances) await load.waitServed(instance.name, started, 5, 10_000);
    log(`load running: ${load.outcomes.length} requests so far, every instance serving`);
    const restarts: RestartResult[] = [];
    for (const name of plan.restart) {
      const instance = fleet.instance(name);
      const proc = instance.proc!;
      const signalledAt = Date.now();
      proc.child.kill('SIGTERM');
      const downAfterMs = await fleet.waitStatus(name, 'DOWN', drainDelayMs + 5_000);
      const exit = await Promise.race([proc.exited, sleep(drainDelayMs + drainTimeoutMs + 10_000).then(() => null)]);
      if (exit === null) throw new Error(`lobby ${name} did not exit after SIGTERM: ${proc.outputTail()}`);
      const exitAfterMs = Date.now() - signalledAt;
      const startedAt = Date.now();
      await instance.start();
      const readyAfterMs = Date.now() - startedAt;
      await fleet.waitStatus(name, 'UP', 10_000);
      const upAt = Date.now();
      await load.waitServed(name, upAt, 3, 10_000);
      const result = { name, downAfterMs, exitAfterMs, exitCode: exit.code, readyAfterMs, upAfterMs: upAt - startedAt, servingAfterMs: Date.now() - startedAt };
      restarts.push(result);
      log(`restarted ${name}: DOWN ${downAfterMs} ms after SIGTERM, exit ${exit.code} after ${exitAfterMs} ms; ` +
        `ready ${readyAfterMs} ms, UP ${result.upAfterMs} ms, serving ${result.servingAfterMs} ms after its start; ${load.outcomes.length} requests so far`);
    }
    const killAt = Date.now();
    let kill: KillResult | null = null;
    if (plan.kill !== null) {
      const instance = fleet.instance(plan.kill);
      // Connections move between instances as clients reconnect: kill when some are on it.
      await waitFor(() => load.connectionsTo(plan.kill!) >= Math.min(2, load.clients), 5_000);
      const inFlightAtKill = Object.fromEntries(load.inFlightByConnection());
      const connectionsAtKill = load.connectionsTo(plan.kill);
      instance.proc!.child.kill('SIGKILL');
      await instance.proc!.exited;
      const exitedAt = Date.now();
      await fleet.waitStatus(plan.kill, 'DOWN', 10_000);
      const downAt = Date.now();
      await sleep(plan.afterKillMs);
      const victim = plan.kill;
      const after = load.outcomes.filter((o) => o.endedAt >= killAt);
      const failures = after.filter((o) => !o.ok);
      const attributable = (o: Outcome): boolean => o.connection === victim || (o.connection === null && o.connectionOpenedAt <= exitedAt);
      kill = {
        name: victim, inFlightAtKill, connectionsAtKill, exitAfterMs: exitedAt - killAt, connectionsOpenedWhileDying: load.connectionsOpened(killAt, exitedAt),
        failures, unattributed: failures.filter((o) => !attributable(o)), downAfterMs: downAt - killAt,
        servedAfterDown: countBy(after.filter((o) => o.startedAt >= downAt)),
        lastFailureAfterMs: failures.length === 0 ? -1 : Math.max(...failures.map((o) => o.endedAt)) - killAt,
      };
      log(`killed ${victim} (kill -9): gone after ${kill.exitAfterMs} ms, DOWN after ${kill.downAfterMs} ms; in flight at the kill ${JSON.stringify(inFlightAtKill)}, ` +
        `${connectionsAtKill} connections to it, ${kill.connectionsOpenedWhileDying} opened while it died; ${failures.length} failed (${kill.unattributed.length} not on a connection to it)`);
    }
    await load.stop();
    const rolling = load.outcomes.filter((o) => o.endedAt < killAt);
    return {
      restarts, rollingRequests: rolling.length, rollingFailures: rolling.filter((o) => !o.ok), rollingServed: countBy(rolling), kill,
      requests: load.outcomes.length, durationMs: Date.now() - started,
    };
  } finally {
    await load.stop();
  }
}

/** A failure in one line (for reports). */
export function describeOutcome(o: Outcome, origin: number): string {
  return `${o.error} after ${o.endedAt - o.startedAt} ms (sent at +${o.startedAt - origin} ms on ${o.connection === null ? 'a new connection' : `a connection to ${o.connection}`})`;
}
