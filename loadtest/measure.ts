// One target, one round: warm-up, then the measured window(s) with the proxy's CPU time read from /proc
// right before and right after each window. The proxy is idle before and after (the driver opens its
// connections at the start of a phase and closes them at the end), so the CPU delta is the cost of the
// window's requests and connection setup, nothing else.

import type { LoadDriver, Progress } from './drivers.js';
import type { Phase } from './driver-protocol.js';
import { coreBusyFraction, processTree, readCoreTicks, sumCpuMicros, sumRssBytes, type CoreTicks } from './proc-stat.js';
import { sleep } from './processes.js';
import { formatCount, type ProgressReporter } from './progress.js';
import type { ProxySecond, SoakCheckpoint, SoakResult, TargetRun, WindowFigures } from './results.js';
import type { Scenario, TargetName } from './scenario.js';
import { cpuPerRequest } from './stats.js';

export interface Pinning {
  driverCpu: number;
  proxyCpu: number;
}

export interface MeasureOptions {
  scenario: Scenario;
  driver: LoadDriver;
  progress: ProgressReporter;
  /** Shown before every progress line, e.g. "[round 1/3 · lobby]". */
  prefix: string;
  pinning: Pinning | null;
  /** Reads Redis's processed-command counter (scenarios with `redis: true`, Lobby targets). */
  redisCommands?: () => Promise<number>;
}

/** Other work on the proxy core above this share (before or during a window) makes the figures suspect. */
const QUIET_CORE_THRESHOLD = 0.1;
const QUIET_CORE_MAX_WAIT_MS = 20_000;
/** The driver core this busy means the driver, not the proxy, limits requests/s. */
const DRIVER_BOUND_THRESHOLD = 0.97;

export async function measureTarget(target: TargetName, rootPid: number, options: MeasureOptions): Promise<Omit<TargetRun, 'round'>> {
  const { scenario, driver, progress, prefix } = options;
  if (scenario.soak) return measureSoak(target, rootPid, options);

  if (scenario.warmupSec > 0) {
    await driver.runPhase({ label: 'warm-up', durationSec: scenario.warmupSec }, reportProgress(progress, prefix, 'warm-up', scenario.warmupSec, null));
  }
  const phase: Phase = { label: 'measure', durationSec: scenario.durationSec };
  const { figures, pids } = await measureWindow(rootPid, phase, options, reportProgress(progress, prefix, 'measure', scenario.durationSec, null));
  return { target, pids, figures };
}

async function measureSoak(target: TargetName, rootPid: number, options: MeasureOptions): Promise<Omit<TargetRun, 'round'>> {
  const soak = options.scenario.soak!;
  const checkpoints: SoakCheckpoint[] = [];
  let served = 0;
  let pids: number[] = [];
  for (const checkpoint of soak.checkpoints) {
    const requests = checkpoint - served;
    const label = `soak → ${formatCount(checkpoint)}`;
    const window = await measureWindow(rootPid, { label, requests }, options, reportProgress(options.progress, options.prefix, label, null, requests));
    pids = window.pids;
    served += window.figures.requests;
    checkpoints.push({ requests: served, rssBytes: window.figures.rssBytesAfter, figures: window.figures });
    options.progress.log(`${options.prefix} ${formatCount(served)} requests served: RSS ${(window.figures.rssBytesAfter / 1048576).toFixed(1)} MB`);
  }
  const first = checkpoints[0]!;
  const last = checkpoints[checkpoints.length - 1]!;
  const rssRatio = last.rssBytes / first.rssBytes;
  const result: SoakResult = { checkpoints, rssRatio, maxGrowth: soak.maxGrowth, pass: rssRatio <= 1 + soak.maxGrowth };
  return { target, pids, figures: last.figures, soak: result };
}

async function measureWindow(rootPid: number, phase: Phase, options: MeasureOptions, onProgress: (progress: Progress) => void): Promise<{ figures: WindowFigures; pids: number[] }> {
  const { pinning, driver, progress } = options;
  const warnings: string[] = [];
  if (pinning) {
    const busyWarning = await waitForQuietCore(pinning.proxyCpu, progress, options.prefix);
    if (busyWarning) warnings.push(busyWarning);
  }
  const pids = processTree(rootPid);
  const redisBefore = options.redisCommands ? await options.redisCommands() : null;
  const cpuBefore = sumCpuMicros(pids);
  const coresBefore = readCoreTicks();
  const startedAt = performance.now();
  // The proxy's CPU once a second, for the report's time series (a few /proc reads on the driver's core).
  const proxyPerSecond: ProxySecond[] = [];
  let previous = { at: startedAt, cpu: cpuBefore };
  const sampler = setInterval(() => {
    try {
      const now = { at: performance.now(), cpu: sumCpuMicros(pids) };
      const durationUs = (now.at - previous.at) * 1000;
      proxyPerSecond.push({
        tSec: (now.at - startedAt) / 1000, durationSec: durationUs / 1e6,
        cores: (now.cpu.userUs + now.cpu.systemUs - previous.cpu.userUs - previous.cpu.systemUs) / durationUs,
        userCores: (now.cpu.userUs - previous.cpu.userUs) / durationUs,
      });
      previous = now;
    } catch {
      // the proxy exited: runTarget reports that
    }
  }, 1000);

  const measured = await driver.runPhase(phase, onProgress).finally(() => clearInterval(sampler));

  const cpuAfter = sumCpuMicros(pids);
  const coresAfter = readCoreTicks();
  const windowSec = (performance.now() - startedAt) / 1000;
  const rssBytesAfter = sumRssBytes(pids);
  const redisAfter = options.redisCommands ? await options.redisCommands() : null;
  progress.clearStatus();

  const userUs = cpuAfter.userUs - cpuBefore.userUs;
  const systemUs = cpuAfter.systemUs - cpuBefore.systemUs;
  const proxyCores = (userUs + systemUs) / (windowSec * 1e6);
  const coreLoad = pinning ? pinnedCoreLoad(pinning, coresBefore, coresAfter, proxyCores) : null;
  if (coreLoad) {
    if (coreLoad.otherOnProxyCore > QUIET_CORE_THRESHOLD / 2) {
      warnings.push(`other work used ${(coreLoad.otherOnProxyCore * 100).toFixed(0)}% of the proxy's core ${pinning!.proxyCpu} during the window: CPU figures may be disturbed`);
    }
    if (coreLoad.driverCore > DRIVER_BOUND_THRESHOLD && proxyCores < 0.9) {
      warnings.push(`driver core ${pinning!.driverCpu} was ${(coreLoad.driverCore * 100).toFixed(0)}% busy while the proxy used ${(proxyCores * 100).toFixed(0)}% of its core: requests/s is limited by the driver core (compare CPU/request${driver.name === 'autocannon' ? ', or use --driver wrk' : ''})`);
    }
  }
  warnings.push(...(measured.driverNotes ?? []));
  if (measured.errors > 0 || measured.non2xx > 0) {
    warnings.push(`${measured.errors} errors and ${measured.non2xx} non-2xx responses during the window`);
  }
  const figures: WindowFigures = {
    ...measured,
    requestsPerSec: measured.elapsedSec > 0 ? measured.requests / measured.elapsedSec : 0,
    windowSec,
    cpu: { userUs, systemUs, perRequest: cpuPerRequest(userUs, systemUs, measured.requests), cores: proxyCores },
    coreLoad,
    rssBytesAfter,
    proxyPerSecond,
    ...(redisBefore !== null && redisAfter !== null ? {
      redis: {
        commands: redisAfter - redisBefore - 1, // minus the INFO that read the first figure
        commandsPerSec: (redisAfter - redisBefore - 1) / windowSec,
        commandsPerRequest: measured.requests > 0 ? (redisAfter - redisBefore - 1) / measured.requests : 0,
      },
    } : {}),
    warnings,
  };
  return { figures, pids };
}

function pinnedCoreLoad(pinning: Pinning, before: CoreTicks[], after: CoreTicks[], proxyCores: number): WindowFigures['coreLoad'] {
  const busy = (cpu: number): number => {
    const start = before[cpu];
    const end = after[cpu];
    return start && end ? coreBusyFraction(start, end) : 0;
  };
  const proxyCore = busy(pinning.proxyCpu);
  // Kernel work done for the proxy outside its process context (softirqs of its sockets) also lands here,
  // so a few percent of "other" load is normal.
  return { driverCore: busy(pinning.driverCpu), proxyCore, otherOnProxyCore: Math.max(0, proxyCore - proxyCores) };
}

/** Waits until nothing else is using the proxy core; returns a warning when it never got quiet. */
async function waitForQuietCore(cpu: number, progress: ProgressReporter, prefix: string): Promise<string | null> {
  const deadline = Date.now() + QUIET_CORE_MAX_WAIT_MS;
  for (;;) {
    const before = readCoreTicks()[cpu];
    await sleep(300);
    const after = readCoreTicks()[cpu];
    const busy = before && after ? coreBusyFraction(before, after) : 0;
    if (busy < QUIET_CORE_THRESHOLD) return null;
    if (Date.now() > deadline) return `core ${cpu} stayed ${(busy * 100).toFixed(0)}% busy with other work before the window`;
    progress.status(`${prefix} waiting for core ${cpu} to go idle (${(busy * 100).toFixed(0)}% busy with other processes)`);
  }
}

function reportProgress(progress: ProgressReporter, prefix: string, label: string, durationSec: number | null, requestGoal: number | null): (update: Progress) => void {
  let previous: { requests: number; elapsedSec: number } | null = null;
  return (update) => {
    const parts = [`${prefix} ${label}`];
    if (durationSec !== null) parts.push(`${Math.min(update.elapsedSec, durationSec).toFixed(0)}/${durationSec} s`);
    else parts.push(`${update.elapsedSec.toFixed(0)} s`);
    if (update.requests !== null) {
      if (requestGoal !== null) parts.push(`${formatCount(update.requests)}/${formatCount(requestGoal)} requests`);
      // autocannon emits a last tick right after the final one-second tick: too short an interval for a rate.
      if (previous && update.elapsedSec - previous.elapsedSec > 0.5) {
        parts.push(`${formatCount((update.requests - previous.requests) / (update.elapsedSec - previous.elapsedSec))} req/s`);
      }
      previous = { requests: update.requests, elapsedSec: update.elapsedSec };
    }
    progress.status(parts.join(' · '));
  };
}
