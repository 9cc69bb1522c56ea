// The shape of a run's result (written as JSON) and the summary both reports print: per target the
// median over rounds of every figure, and the Lobby/nginx ratio of each (and lobby/lobby-plain,
// lobby/lobby-ref when those ran).

import type { PhaseMeasurement } from './drivers.js';
import type { Scenario, TargetName } from './scenario.js';
import type { CpuPerRequest } from './stats.js';
import { median, ratio } from './stats.js';

/** Everything measured over one window (a measured phase) of one target. */
export interface WindowFigures extends PhaseMeasurement {
  requestsPerSec: number;
  /** Wall time between the two CPU readings (slightly longer than the driver's elapsedSec). */
  windowSec: number;
  cpu: {
    userUs: number;
    systemUs: number;
    perRequest: CpuPerRequest;
    /** CPU of the proxy over the window, in cores (1 = one core fully busy). */
    cores: number;
  };
  /** Busy share of the pinned cores over the window (null without pinning). */
  coreLoad: { driverCore: number; proxyCore: number; otherOnProxyCore: number } | null;
  rssBytesAfter: number;
  /** Scenarios with `redis: true`, Lobby targets: commands Redis processed during the window. */
  redis?: { commands: number; commandsPerSec: number; commandsPerRequest: number };
  warnings: string[];
}

export interface SoakCheckpoint {
  /** Requests the target had served (cumulative) when its RSS was read. */
  requests: number;
  rssBytes: number;
  figures: WindowFigures;
}

export interface SoakResult {
  checkpoints: SoakCheckpoint[];
  /** RSS at the last checkpoint / RSS at the first. */
  rssRatio: number;
  maxGrowth: number;
  pass: boolean;
}

export interface TargetRun {
  target: TargetName;
  round: number;
  /** Proxy process tree whose CPU was measured. */
  pids: number[];
  figures: WindowFigures;
  soak?: SoakResult;
}

export interface RunSettings {
  driver: 'autocannon' | 'wrk';
  upstream: 'nginx' | 'uws';
  pinned: boolean;
  driverCpu: number | null;
  proxyCpu: number | null;
  rounds: number;
  ports: { lobby: number; upstream: number; nginx: number };
  lobbyConfigFile: string | null;
  /** Target lobby-ref: which build it ran (--ref GITREF or --ref-dir DIR), null without one. */
  ref?: { source: string; sha: string | null; dir: string; build: 'now' | 'cached' | 'given' } | null;
}

export interface MachineInfo {
  cpuModel: string;
  logicalCpus: number;
  kernel: string;
  node: string;
  nginx: string | null;
  wrk: string | null;
  autocannon: string;
  clockTicksPerSecond: number;
}

export interface RunResult {
  format: 'lobby-loadtest/1';
  command: string;
  startedAt: string;
  finishedAt: string;
  scenario: Scenario;
  settings: RunSettings;
  machine: MachineInfo;
  runs: TargetRun[];
  skipped: Array<{ target: TargetName; reason: string }>;
  failures: Array<{ target: TargetName; round: number; error: string }>;
  summary: RunSummary;
}

export interface FigureRow {
  key: string;
  label: string;
  /** Median over rounds (sum for counters); null when the target did not run. */
  values: Partial<Record<TargetName, number | null>>;
  /** lobby / nginx, null when either is missing. */
  ratio: number | null;
  /** lobby / lobby-plain (the feature's cost over the plain proxy path), null when either is missing. */
  plainRatio?: number | null;
  /** lobby / lobby-ref (this checkout against the other commit), null when either is missing. */
  refRatio?: number | null;
  /** Printed with this many decimals. */
  decimals: number;
  headline?: boolean;
}

export interface RunSummary {
  targets: TargetName[];
  rows: FigureRow[];
}

interface FigureDefinition {
  key: string;
  label: string;
  decimals: number;
  /** Counters are summed over rounds, everything else takes the median. */
  aggregate: 'median' | 'sum';
  headline?: boolean;
  pick(figures: WindowFigures): number | undefined;
}

const FIGURES: FigureDefinition[] = [
  { key: 'cpuUsPerRequest', label: 'CPU µs/request (user+sys)', decimals: 2, aggregate: 'median', headline: true, pick: (f) => f.cpu.perRequest.totalUs },
  { key: 'userUsPerRequest', label: '  user µs/request', decimals: 2, aggregate: 'median', pick: (f) => f.cpu.perRequest.userUs },
  { key: 'sysUsPerRequest', label: '  sys µs/request', decimals: 2, aggregate: 'median', pick: (f) => f.cpu.perRequest.systemUs },
  { key: 'requestsPerSec', label: 'requests/s', decimals: 0, aggregate: 'median', pick: (f) => f.requestsPerSec },
  { key: 'p50Ms', label: 'latency p50 ms', decimals: 3, aggregate: 'median', pick: (f) => f.latency.p50Ms },
  { key: 'p90Ms', label: 'latency p90 ms', decimals: 3, aggregate: 'median', pick: (f) => f.latency.p90Ms },
  { key: 'p99Ms', label: 'latency p99 ms', decimals: 3, aggregate: 'median', pick: (f) => f.latency.p99Ms },
  { key: 'p999Ms', label: 'latency p99.9 ms', decimals: 3, aggregate: 'median', pick: (f) => f.latency.p999Ms },
  { key: 'maxMs', label: 'latency max ms', decimals: 3, aggregate: 'median', pick: (f) => f.latency.maxMs },
  { key: 'serviceP99Ms', label: 'service time p99 ms (uncorrected)', decimals: 3, aggregate: 'median', pick: (f) => f.serviceTime?.p99Ms },
  { key: 'sendLagP99Ms', label: 'driver send lag p99 ms', decimals: 3, aggregate: 'median', pick: (f) => f.sendLag?.p99Ms },
  { key: 'proxyCores', label: 'proxy CPU, cores busy', decimals: 2, aggregate: 'median', pick: (f) => f.cpu.cores },
  { key: 'rssMb', label: 'proxy RSS after, MB', decimals: 1, aggregate: 'median', pick: (f) => f.rssBytesAfter / 1048576 },
  { key: 'redisCommandsPerSec', label: 'redis commands/s', decimals: 1, aggregate: 'median', pick: (f) => f.redis?.commandsPerSec },
  { key: 'redisCommandsPerRequest', label: 'redis commands/request', decimals: 6, aggregate: 'median', pick: (f) => f.redis?.commandsPerRequest },
  { key: 'requests', label: 'requests measured', decimals: 0, aggregate: 'sum', pick: (f) => f.requests },
  { key: 'errors', label: 'errors (socket/timeouts)', decimals: 0, aggregate: 'sum', pick: (f) => f.errors },
  { key: 'non2xx', label: 'non-2xx responses', decimals: 0, aggregate: 'sum', pick: (f) => f.non2xx },
];

export function summarizeRuns(targets: readonly TargetName[], runs: readonly TargetRun[]): RunSummary {
  const rows: FigureRow[] = [];
  for (const figure of FIGURES) {
    const values: Partial<Record<TargetName, number | null>> = {};
    let anyValue = false;
    for (const target of targets) {
      const picked = runs.filter((run) => run.target === target).map((run) => figure.pick(run.figures)).filter((value): value is number => value !== undefined && Number.isFinite(value));
      if (picked.length === 0) {
        values[target] = null;
        continue;
      }
      anyValue = true;
      values[target] = figure.aggregate === 'sum' ? picked.reduce((a, b) => a + b, 0) : median(picked);
    }
    if (!anyValue) continue; // e.g. open-model rows in a closed-loop run
    rows.push({
      key: figure.key,
      label: figure.label,
      values,
      ratio: ratio(values.lobby, values.nginx),
      ...(targets.includes('lobby-plain') ? { plainRatio: ratio(values.lobby, values['lobby-plain']) } : {}),
      ...(targets.includes('lobby-ref') ? { refRatio: ratio(values.lobby, values['lobby-ref']) } : {}),
      decimals: figure.decimals,
      ...(figure.headline ? { headline: true } : {}),
    });
  }
  return { targets: [...targets], rows };
}
