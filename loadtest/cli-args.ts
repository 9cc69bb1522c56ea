// Command-line flags of `node dist/loadtest/run.js` (npm run loadtest -- ...). Flags override the
// scenario file's values for this run only.

import { parseArgs } from 'node:util';
import type { RefSource } from './lobby-ref.js';
import { parseSeconds, TARGET_NAMES, type Scenario, type TargetName } from './scenario.js';

export const HELP_TEXT = `Lobby load test: measures Lobby, nginx and peers side by side on the same upstream, driver and pinning.

Usage: node dist/loadtest/run.js [--scenario NAME|FILE] [flags]
       npm run loadtest -- --scenario proxy [flags]

  --scenario NAME|FILE   scenario from loadtest/scenarios/ (proxy, post-16k, download-1m, soak, ...)
                         or a path to a .yaml/.json scenario file              [default: proxy]
  --targets LIST         comma-separated: lobby,nginx,lobby-plain (lobby without the scenario's
                         lobby overlay: the plain proxy path),lobby-ref (needs --ref or --ref-dir),
                         fastify (@fastify/http-proxy),haproxy (skipped when not installed)
                                                                [default: the scenario's targets]
  --ref GITREF           also measure Lobby built from GITREF (target lobby-ref, same config,
                         interleaved with lobby): exported with git archive to a temp dir, built
                         with tsc once per commit, removed afterwards unless --keep-temp
  --ref-dir DIR          the same with a checkout already built in DIR (DIR/dist/src/main.js)
  --duration SECONDS     measured window per target, e.g. 10 or 10s           [default: scenario]
  --warmup SECONDS       unmeasured load before each window                   [default: scenario]
  --connections N        client connections                                   [default: scenario]
  --pipelining N         requests in flight per connection                    [default: scenario]
  --rate N               open model: N requests/s spread over the connections, latency measured
                         from each request's intended send time (autocannon driver only)
  --driver NAME          autocannon | wrk                                     [default: autocannon]
  --rounds N             repeat the measurement N times, alternating the target order; the summary
                         shows medians                                        [default: 1]
  --out DIR              where the JSON and HTML results go                   [default: loadtest/results]
  --lobby-config FILE    start Lobby with this config instead of the generated one (it must route to
                         the upstream at 127.0.0.1:<port-base+1>; its server.port is where load goes)
  --upstream KIND        auto | nginx | uws: the static upstream              [default: auto = nginx if installed]
  --assert-ratio R       after the run, exit 1 unless lobby/nginx CPU µs/request (the headline,
                         medians) is at most R, e.g. 1.3; needs targets lobby and nginx
  --port-base N          Lobby on N, upstream N+1, nginx N+2, redis N+3, fastify N+4, haproxy N+5
                                                                              [default: 18080]
  --no-pin               do not pin with taskset (the figures are then much noisier)
  --keep-temp            keep the temp dir with the generated configs (and the --ref build)
  -h, --help             this text

Pinning (default): the proxy under test runs alone on CPU 1; the driver, the upstream and this
harness share CPU 0. Headline figure: CPU µs per request of the proxy process (utime+stime from
/proc/PID/stat over the measured window / requests). Results: text on stdout, progress on stderr,
<out>/<scenario>-<timestamp>.json and .html. See docs/loadtest.md.
`;

export interface CliOptions {
  help: boolean;
  scenario: string;
  targets: TargetName[] | null;
  durationSec: number | null;
  warmupSec: number | null;
  connections: number | null;
  pipelining: number | null;
  rate: number | null;
  driver: 'autocannon' | 'wrk';
  rounds: number;
  outDir: string | null;
  lobbyConfigFile: string | null;
  upstream: 'auto' | 'nginx' | 'uws';
  portBase: number;
  pin: boolean;
  keepTemp: boolean;
  /** --ref / --ref-dir: the second Lobby (target lobby-ref), or null. */
  ref: RefSource | null;
  /** --assert-ratio: the largest lobby/nginx headline ratio that passes, or null (no check). */
  assertRatio: number | null;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

function positiveInteger(flag: string, text: string | undefined, min = 1): number | null {
  if (text === undefined) return null;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) throw new UsageError(`${flag} must be an integer >= ${min} (got "${text}")`);
  return value;
}

function secondsFlag(flag: string, text: string | undefined, min: number): number | null {
  if (text === undefined) return null;
  const value = parseSeconds(text);
  if (!Number.isFinite(value) || value < min) throw new UsageError(`${flag} must be a number of seconds >= ${min}, e.g. 10 or 10s (got "${text}")`);
  return value;
}

function oneOf<T extends string>(flag: string, text: string | undefined, choices: readonly T[], fallback: T): T {
  if (text === undefined) return fallback;
  if (!(choices as readonly string[]).includes(text)) throw new UsageError(`${flag} must be one of ${choices.join(', ')} (got "${text}")`);
  return text as T;
}

export function parseCliArgs(argv: readonly string[]): CliOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: 'boolean', short: 'h' },
        scenario: { type: 'string' },
        targets: { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        connections: { type: 'string' },
        pipelining: { type: 'string' },
        rate: { type: 'string' },
        driver: { type: 'string' },
        rounds: { type: 'string' },
        out: { type: 'string' },
        'lobby-config': { type: 'string' },
        upstream: { type: 'string' },
        'port-base': { type: 'string' },
        'no-pin': { type: 'boolean' },
        'keep-temp': { type: 'boolean' },
        ref: { type: 'string' },
        'ref-dir': { type: 'string' },
        'assert-ratio': { type: 'string' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const values = parsed.values;

  let targets: TargetName[] | null = null;
  if (values.targets !== undefined) {
    targets = values.targets.split(',').map((name) => name.trim()).filter(Boolean).map((name) => {
      if (!(TARGET_NAMES as readonly string[]).includes(name)) throw new UsageError(`--targets: unknown target "${name}" (known: ${TARGET_NAMES.join(', ')})`);
      return name as TargetName;
    });
    if (targets.length === 0) throw new UsageError('--targets must name at least one target');
    targets = [...new Set(targets)];
  }

  let rate: number | null = null;
  if (values.rate !== undefined) {
    rate = Number(values.rate);
    if (!Number.isFinite(rate) || rate <= 0) throw new UsageError(`--rate must be a positive number of requests/s (got "${values.rate}")`);
  }

  if (values.ref !== undefined && values['ref-dir'] !== undefined) throw new UsageError('--ref and --ref-dir are two ways to give the same target: pass one');
  if (values.ref === '' || values['ref-dir'] === '') throw new UsageError(`${values.ref === '' ? '--ref' : '--ref-dir'} needs a value`);
  const ref: RefSource | null = values.ref !== undefined ? { kind: 'git', gitRef: values.ref }
    : values['ref-dir'] !== undefined ? { kind: 'dir', dir: values['ref-dir'] } : null;
  if (ref === null && targets?.includes('lobby-ref')) throw new UsageError('--targets lobby-ref needs --ref GITREF or --ref-dir DIR');

  const portBase = positiveInteger('--port-base', values['port-base'], 1024) ?? 18080;
  if (portBase + Math.max(...Object.values(PORT_OFFSETS)) >= 32768) throw new UsageError(`--port-base must leave its ${Object.keys(PORT_OFFSETS).length} ports below 32768 (the ephemeral port range starts there)`);

  let assertRatio: number | null = null;
  if (values['assert-ratio'] !== undefined) {
    assertRatio = Number(values['assert-ratio']);
    if (values['assert-ratio'].trim() === '' || !Number.isFinite(assertRatio) || assertRatio <= 0) {
      throw new UsageError(`--assert-ratio must be a positive number, the largest lobby/nginx CPU µs/request ratio that passes, e.g. 1.3 (got "${values['assert-ratio']}")`);
    }
    if (targets && !(targets.includes('lobby') && targets.includes('nginx'))) {
      throw new UsageError(`--assert-ratio compares lobby with nginx: --targets must include both (got ${targets.join(',')})`);
    }
  }

  return {
    help: values.help ?? false,
    scenario: values.scenario ?? 'proxy',
    targets,
    durationSec: secondsFlag('--duration', values.duration, 0.5),
    warmupSec: secondsFlag('--warmup', values.warmup, 0),
    connections: positiveInteger('--connections', values.connections),
    pipelining: positiveInteger('--pipelining', values.pipelining),
    rate,
    driver: oneOf('--driver', values.driver, ['autocannon', 'wrk'] as const, 'autocannon'),
    rounds: positiveInteger('--rounds', values.rounds) ?? 1,
    outDir: values.out ?? null,
    lobbyConfigFile: values['lobby-config'] ?? null,
    upstream: oneOf('--upstream', values.upstream, ['auto', 'nginx', 'uws'] as const, 'auto'),
    portBase,
    pin: !(values['no-pin'] ?? false),
    keepTemp: values['keep-temp'] ?? false,
    ref,
    assertRatio,
  };
}

/** Each target's port relative to --port-base (targets run one at a time, but each keeps its own port). */
export const PORT_OFFSETS = { lobby: 0, upstream: 1, nginx: 2, redis: 3, fastify: 4, haproxy: 5, grpc: 6, introspection: 7 } as const;

/** The scenario with this run's flag overrides applied. */
export function applyOverrides(scenario: Scenario, options: CliOptions): Scenario {
  return {
    ...scenario,
    targets: withRefTarget(options.targets ?? scenario.targets, options.ref !== null),
    durationSec: options.durationSec ?? scenario.durationSec,
    warmupSec: options.warmupSec ?? scenario.warmupSec,
    connections: options.connections ?? scenario.connections,
    pipelining: options.pipelining ?? scenario.pipelining,
    rate: options.rate ?? scenario.rate,
  };
}

/** A ref always adds lobby-ref, next to lobby so the two run back to back in every round. */
function withRefTarget(targets: readonly TargetName[], hasRef: boolean): TargetName[] {
  if (!hasRef || targets.includes('lobby-ref')) return [...targets];
  const at = targets.indexOf('lobby');
  return at < 0 ? [...targets, 'lobby-ref'] : [...targets.slice(0, at + 1), 'lobby-ref', ...targets.slice(at + 1)];
}
