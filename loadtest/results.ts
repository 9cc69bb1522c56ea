// The shape of a run's result (written as JSON) and the summary both reports print: per target the
// median over rounds of every figure, and the Lobby/nginx ratio of each (and lobby/lobby-plain,
// lobby/lobby-ref when those ran).

import type { PhaseMeasurement } from './drivers.js';
import type { Scenario, TargetName } from './scenario.js';
import type { CpuPerRequest } from './stats.js';
import { median, ratio } from './stats.js';

/** The proxy's CPU over about one second of a window (seconds from the window's start), in cores. */
export interface ProxySecond {
  tSec: number;
  durationSec: number;
  cores: number;
  userCores: number;
}

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
  /** Per-second CPU of the proxy over the window (absent in results written before issue 11). */
  proxyPerSecond?: ProxySecond[];
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
  driver: 'autocannon' | 'wrk' | 'websocket';
  upstream: 'nginx' | 'uws';
  pinned: boolean;
  driverCpu: number | null;
  proxyCpu: number | null;
  rounds: number;
  ports: { lobby: number; upstream: number; nginx: number; fastify?: number; haproxy?: number };
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
  /** Peers (issue 11); absent in older results. */
  haproxy?: string | null;
  fastify?: string | null;
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
  /** --assert-ratio: the verdict, null without the flag. */
  assertRatio?: RatioVerdict | null;
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

// --assert-ratio R: the regression check of the speed scenarios (issue 11). After the run, Lobby's
// headline (CPU µs/request, the median over rounds) divided by nginx's must be at most R. A run that
// cannot show the ratio (a target skipped or failed in every round) does not pass: a check that
// silently passes when nothing was compared would hide the regression it exists to catch.

/** Below this many cores busy a proxy was not saturated, and its CPU/request is not the headline figure. */
const SATURATED_CORES = 0.9;

export interface RatioVerdict {
  /** true: held; false: exceeded or could not be checked. */
  pass: boolean;
  limit: number;
  /** lobby / nginx CPU µs/request, null when either is missing. */
  ratio: number | null;
  /** One line for the summary and stderr. */
  message: string;
  /** Caveats that do not change the verdict (e.g. a proxy that was not saturated). */
  notes: string[];
}

export function assertRatioVerdict(summary: RunSummary, limit: number): RatioVerdict {
  const headline = summary.rows.find((row) => row.key === 'cpuUsPerRequest');
  const lobby = headline?.values.lobby ?? null;
  const nginx = headline?.values.nginx ?? null;
  const ratio = headline?.ratio ?? null;
  const notes: string[] = [];
  const cores = summary.rows.find((row) => row.key === 'proxyCores');
  for (const target of ['lobby', 'nginx'] as const) {
    const busy = cores?.values[target];
    if (busy != null && busy < SATURATED_CORES) {
      notes.push(`${target} used ${busy.toFixed(2)} cores: not saturated (driver-bound or a busy machine), so the ratio is not the saturated headline`);
    }
  }
  if (ratio === null || lobby == null || nginx == null) {
    const missing = [lobby == null ? 'lobby' : null, nginx == null ? 'nginx' : null].filter(Boolean).join(' and ');
    return { pass: false, limit, ratio: null, notes,
      message: `assert-ratio ${limit}: NOT CHECKED, no CPU µs/request for ${missing || 'lobby/nginx'} (skipped or failed): counts as a failure` };
  }
  const figures = `lobby ${lobby.toFixed(2)} / nginx ${nginx.toFixed(2)} CPU µs/request = ${ratio.toFixed(3)}`;
  return ratio <= limit
    ? { pass: true, limit, ratio, notes, message: `assert-ratio ${limit}: HELD, ${figures} <= ${limit}` }
    : { pass: false, limit, ratio, notes, message: `assert-ratio ${limit}: EXCEEDED, ${figures} > ${limit}` };
}
