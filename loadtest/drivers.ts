// The load drivers behind one interface: autocannon (child process, per-request HDR recording,
// open-model pacing), wrk (fastest closed-loop driver, Debian package), and for WebSocket
// scenarios an echo loop over `ws` (child process, driver-websocket.ts). All are pinned to the
// driver core, and all report the same PhaseMeasurement.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DriverMessage, LoadSpec, ParentMessage, Phase, PhaseCounters, PhaseResult } from './driver-protocol.js';
import { parseWrkOutput, wrkArguments, wrkPerSecond, wrkScript, type ReadBytesReading } from './driver-wrk.js';
import { readIoReadChars } from './proc-stat.js';
import { describeExit, indent, type ManagedProcess, type ProcessGroup } from './processes.js';
import type { Scenario } from './scenario.js';
import { decodeHistogram, histogramDistribution, percentileToX, summarizeHistogram, type DistributionPoint, type LatencySummary } from './stats.js';

export type DriverName = 'autocannon' | 'wrk' | 'websocket';

export interface PhaseMeasurement extends PhaseCounters {
  /** Closed loop: send → response. Open model: intended send → response. */
  latency: LatencySummary;
  distribution: DistributionPoint[];
  /** Open model only: actual send → response (uncorrected). */
  serviceTime?: LatencySummary;
  serviceTimeDistribution?: DistributionPoint[];
  /** Open model only: lateness of sends against the schedule. */
  sendLag?: LatencySummary;
  /** Caveats the driver knows about its own figures (shown with the warnings). */
  driverNotes?: string[];
}

export interface Progress {
  requests: number | null;
  elapsedSec: number;
}

export interface LoadDriver {
  readonly name: DriverName;
  start(): Promise<void>;
  runPhase(phase: Phase, onProgress: (progress: Progress) => void): Promise<PhaseMeasurement>;
  close(): Promise<void>;
}

const WRK_RATE_PROBLEM = '--rate needs --driver autocannon: wrk is closed-loop only (wrk2 is not packaged here)';

/** Why `driver` cannot run this scenario here (a message for the user), or null when it can. */
export function driverProblem(driver: DriverName, scenario: Pick<Scenario, 'rate' | 'soak' | 'websocket'>, wrkBinary: string | null): string | null {
  if (scenario.websocket !== null && driver !== 'autocannon') return 'a websocket scenario runs its own driver (loadtest/driver-websocket.ts): leave --driver at its default';
  if (driver !== 'wrk') return null;
  if (!wrkBinary) return '--driver wrk: wrk is not installed (apt-get install wrk)';
  if (scenario.rate !== null) return WRK_RATE_PROBLEM;
  if (scenario.soak) return 'the soak scenario counts requests exactly and needs --driver autocannon';
  return null;
}

/** The driver `name` for one target's load; nothing starts until its start(). */
export function createDriver(name: DriverName, group: ProcessGroup, spec: LoadSpec, cpu: number | null, wrkBinary: string | null, workDir: string): LoadDriver {
  if (spec.websocket) return new AutocannonDriver(group, spec, cpu, 'websocket');
  if (name === 'autocannon') return new AutocannonDriver(group, spec, cpu);
  if (!wrkBinary) throw new Error('--driver wrk: wrk is not installed (apt-get install wrk)');
  return new WrkDriver(group, spec, cpu, wrkBinary, workDir);
}

const CHILD_ENTRIES = {
  autocannon: fileURLToPath(new URL('./driver-autocannon.js', import.meta.url)),
  websocket: fileURLToPath(new URL('./driver-websocket.js', import.meta.url)),
};

/** A driver in a child process speaking driver-protocol.ts: autocannon's, or the WebSocket echo loop. */
export class AutocannonDriver implements LoadDriver {
  private child: ManagedProcess | null = null;
  private listener: ((message: DriverMessage) => void) | null = null;

  constructor(private readonly group: ProcessGroup, private readonly spec: LoadSpec, private readonly cpu: number | null,
    readonly name: 'autocannon' | 'websocket' = 'autocannon') {}

  async start(): Promise<void> {
    const child = this.group.spawn(`${this.name} driver`, process.execPath, [CHILD_ENTRIES[this.name], JSON.stringify(this.spec)], { cpu: this.cpu, ipc: true });
    this.child = child;
    child.child.on('message', (message: DriverMessage) => this.listener?.(message));
    await new Promise<void>((resolve, reject) => {
      this.listener = (message) => {
        if (message.type === 'ready') resolve();
      };
      void child.exited.then((status) => reject(new Error(`${this.name} driver exited at start (${describeExit(status)})\n${indent(child.outputTail())}`)));
    });
  }

  runPhase(phase: Phase, onProgress: (progress: Progress) => void): Promise<PhaseMeasurement> {
    const child = this.child;
    if (!child) throw new Error('driver not started');
    const startedAt = performance.now();
    return new Promise((resolve, reject) => {
      this.listener = (message) => {
        if (message.type === 'tick') onProgress({ requests: message.requests, elapsedSec: (performance.now() - startedAt) / 1000 });
        else if (message.type === 'done') resolve(fromPhaseResult(message.result));
        else if (message.type === 'failed') reject(new Error(`${this.name} failed: ${message.message}`));
      };
      void child.exited.then((status) => reject(new Error(`${this.name} driver exited during ${phase.label} (${describeExit(status)})\n${indent(child.outputTail())}`)));
      child.child.send({ type: 'run', phase } satisfies ParentMessage);
    });
  }

  async close(): Promise<void> {
    if (!this.child) return;
    if (this.child.running && this.child.child.connected) this.child.child.send({ type: 'exit' } satisfies ParentMessage);
    await this.child.stop(2000);
    this.child = null;
  }
}

function fromPhaseResult(result: PhaseResult): PhaseMeasurement {
  const latencyHistogram = decodeHistogram(result.latencyHistogram);
  const measurement: PhaseMeasurement = {
    label: result.label,
    requests: result.requests,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCounts: result.statusCounts,
    bytes: result.bytes,
    elapsedSec: result.elapsedSec,
    ...(result.perSecond ? { perSecond: result.perSecond, perSecondSource: result.perSecondSource ?? 'driver' } : {}),
    latency: summarizeHistogram(latencyHistogram),
    distribution: histogramDistribution(latencyHistogram),
  };
  if (result.serviceTimeHistogram) {
    const serviceHistogram = decodeHistogram(result.serviceTimeHistogram);
    measurement.serviceTime = summarizeHistogram(serviceHistogram);
    measurement.serviceTimeDistribution = histogramDistribution(serviceHistogram);
  }
  if (result.sendLagHistogram) measurement.sendLag = summarizeHistogram(decodeHistogram(result.sendLagHistogram));
  return measurement;
}

export class WrkDriver implements LoadDriver {
  readonly name = 'wrk' as const;
  private readonly scriptFile: string;

  constructor(private readonly group: ProcessGroup, private readonly spec: LoadSpec, private readonly cpu: number | null,
    private readonly wrkBinary: string, workDir: string) {
    if (spec.rate !== null) throw new Error(WRK_RATE_PROBLEM);
    if (spec.clientCert) throw new Error('--driver wrk cannot present a client certificate: mTLS scenarios (clientCert: true) run with autocannon');
    this.scriptFile = join(workDir, 'wrk-driver.lua');
  }

  async start(): Promise<void> {
    writeFileSync(this.scriptFile, wrkScript(this.spec));
  }

  async runPhase(phase: Phase, onProgress: (progress: Progress) => void): Promise<PhaseMeasurement> {
    if (phase.durationSec === undefined) throw new Error('wrk runs for a duration only; use --driver autocannon for request-count phases (soak)');
    const wrk = this.group.spawn('wrk', this.wrkBinary, wrkArguments(this.spec, this.scriptFile, phase.durationSec), { cpu: this.cpu, keepStdout: true });
    const startedAt = performance.now();
    // wrk prints nothing until it is done: progress shows elapsed time only, and the per-second series
    // comes from wrk's bytes read (wrkPerSecond), read once a second like the proxy's CPU.
    const readings: ReadBytesReading[] = [];
    const readBytes = (): void => {
      try {
        readings.push({ tSec: (performance.now() - startedAt) / 1000, bytes: readIoReadChars(wrk.pid) });
      } catch {
        // wrk has exited (or /proc/PID/io is not readable here): no further samples
      }
    };
    readBytes();
    const ticker = setInterval(() => {
      readBytes();
      onProgress({ requests: null, elapsedSec: (performance.now() - startedAt) / 1000 });
    }, 1000);
    const status = await wrk.exited.finally(() => clearInterval(ticker));
    if (status.code !== 0) throw new Error(`wrk failed (${describeExit(status)})\n${indent(wrk.outputTail() || wrk.stdout())}`);
    const result = parseWrkOutput(wrk.stdout());
    const requests = result.requests;
    const perSecond = wrkPerSecond(readings, requests, result.bytes);
    const toMs = (us: number): number => us / 1000;
    const at = (percentile: number): number => {
      // The Lua script samples every SUMMARY_PERCENTILES value exactly.
      const point = result.percentilesUs.find(([p]) => Math.abs(p - percentile) < 1e-6);
      return toMs(point ? point[1] : result.latencyUs.max);
    };
    const distribution = result.percentilesUs
      .filter(([p]) => percentileToX(p, requests) <= requests)
      .map(([percentile, us]) => ({ percentile, latencyMs: toMs(us) }));
    distribution.push({ percentile: 100, latencyMs: toMs(result.latencyUs.max) });
    let latency: LatencySummary = {
      count: requests,
      meanMs: toMs(result.latencyUs.mean),
      p50Ms: at(50),
      p90Ms: at(90),
      p99Ms: at(99),
      p999Ms: at(99.9),
      maxMs: toMs(result.latencyUs.max),
    };
    const driverNotes: string[] = [];
    if (this.spec.pipelining > 1) {
      // wrk times a whole batch per sample, then its closed-loop adjustment (stats_correct, using the
      // mean interval per *response*) adds samples below the histogram's recorded minimum, which its
      // percentile walk never reaches: percentiles come out 0 and the mean too low.
      latency = { count: requests, meanMs: Number.NaN, p50Ms: Number.NaN, p90Ms: Number.NaN, p99Ms: Number.NaN, p999Ms: Number.NaN, maxMs: Number.NaN };
      distribution.length = 0;
      driverNotes.push('latency not reported: wrk\'s latency statistics are wrong with pipelining (use --driver autocannon for latency)');
    }
    return {
      label: phase.label,
      requests,
      errors: result.errors.connect + result.errors.read + result.errors.write + result.errors.timeout,
      timeouts: result.errors.timeout,
      // wrk only counts statuses >= 400 (as errors.status); 1xx/3xx go unnoticed.
      non2xx: result.errors.status,
      statusCounts: {},
      bytes: result.bytes,
      elapsedSec: result.durationUs / 1e6,
      latency,
      distribution,
      ...(perSecond.length > 0 ? { perSecond, perSecondSource: 'wrk-read-bytes' as const } : {}),
      ...(driverNotes.length > 0 ? { driverNotes } : {}),
    };
  }

  async close(): Promise<void> {}
}
