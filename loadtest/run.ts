// Load-test entry: node dist/loadtest/run.js --scenario proxy [flags]   (npm run loadtest -- ...)
// Starts the static upstream, then for each round and target: the proxy pinned alone on the proxy CPU,
// the load driver pinned next to the upstream, warm-up, measured window, stop. Prints the summary,
// writes <out>/<scenario>-<timestamp>.json and .html. Every started process is stopped on the way out,
// including on errors and Ctrl-C.
// With --ref/--ref-dir, target lobby-ref (another commit's build, loadtest/lobby-ref.ts) runs in every round next to lobby.

import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { applyOverrides, HELP_TEXT, parseCliArgs, PORT_OFFSETS, UsageError, type CliOptions } from './cli-args.js';
import type { LoadSpec } from './driver-protocol.js';
import { createDriver, driverProblem, type LoadDriver } from './drivers.js';
import { deepMerge, lobbyConfigYaml, lobbyIsBuilt, LOBBY_ENTRY, readListenAddress, startLobby } from './lobby.js';
import { lobbyTlsOverlay, makeClientCertificate, makeRunCertificate, nginxTlsDirectives, type RunCertificate } from './tls.js';
import { checkRefSource, prepareRef, removeRefExport, type PreparedRef } from './lobby-ref.js';
import { measureTarget, type Pinning } from './measure.js';
import { nginxVersion, proxyNginxConfig, startNginx } from './nginx.js';
import { fastifyVersions, startFastify } from './fastify.js';
import { haproxyConfig, haproxyVersion, startHaproxy } from './haproxy.js';
import { clockTicksPerSecond } from './proc-stat.js';
import { findExecutable, isPortOpen, pinCurrentProcess, ProcessGroup, waitForHttp, type ManagedProcess } from './processes.js';
import { ProgressReporter } from './progress.js';
import { renderHtmlReport } from './report-html.js';
import { formatFigure, renderTextReport } from './report-text.js';
import { assertRatioVerdict, summarizeRuns, type MachineInfo, type RunResult, type RunSettings, type TargetRun } from './results.js';
import { loadScenario, type Scenario, type TargetName } from './scenario.js';
import { startUpstream, type RunningUpstream, type UpstreamKind } from './upstream.js';
import { redisCommandsProcessed, startRedisServer, type RunningRedis } from './redis.js';
import { startGrpcUpstream, type RunningGrpc } from './grpc-upstream.js';
import { startIntrospectionEndpoint, withIntrospectionUrl, type RunningIntrospection } from './introspection-endpoint.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEFAULT_OUT_DIR = join(REPO_ROOT, 'loadtest', 'results');
const LOCALHOST = '127.0.0.1';
/** The driver, the upstream and this harness share CPU 0; the proxy under test is alone on CPU 1. */
const PINNING: Pinning = { driverCpu: 0, proxyCpu: 1 };
const TARGET_READY_TIMEOUT_MS = 20_000;

/** A proxy started for one round, ready for load. */
interface StartedTarget {
  process: ManagedProcess;
  host: string;
  port: number;
}

interface RunContext {
  options: CliOptions;
  scenario: Scenario;
  group: ProcessGroup;
  progress: ProgressReporter;
  workDir: string;
  pinning: Pinning | null;
  nginxBinary: string | null;
  haproxyBinary: string | null;
  wrkBinary: string | null;
  upstream: RunningUpstream;
  ports: RunSettings['ports'];
  redis: RunningRedis | null;
  grpc: RunningGrpc | null;
  introspection: RunningIntrospection | null;
  /** The built checkout of target lobby-ref (null when not measured). */
  ref: PreparedRef | null;
  /** The run's certificate when the scenario speaks HTTPS (loadtest/tls.ts). */
  certificate?: RunCertificate | null;
}

async function main(): Promise<number> {
  let options: CliOptions;
  try {
    options = parseCliArgs(process.argv.slice(2));
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message}\n\n${HELP_TEXT}`);
      return 2;
    }
    throw error;
  }
  if (options.help) {
    process.stdout.write(HELP_TEXT);
    return 0;
  }

  let scenario: Scenario;
  try {
    scenario = applyOverrides(loadScenario(options.scenario), options);
  } catch (error) {
    throw new UsageError((error as Error).message); // a bad or unknown scenario file is the user's to fix
  }
  const progress = new ProgressReporter();
  const nginxBinary = findExecutable('nginx');
  const haproxyBinary = findExecutable('haproxy');
  const wrkBinary = findExecutable('wrk');
  validateEnvironment(options, scenario, wrkBinary);

  const pinning = options.pin ? PINNING : null;
  if (pinning) pinCurrentProcess(pinning.driverCpu);

  const group = new ProcessGroup();
  const workDir = mkdtempSync(join(tmpdir(), 'lobby-loadtest-'));
  // nginx started as root serves files as `nobody`, which must be able to enter the dir.
  chmodSync(workDir, 0o755);
  let refExportDir: string | null = null;
  const cleanUp = async (): Promise<void> => {
    progress.clearStatus();
    await group.stopAll();
    if (!options.keepTemp) rmSync(workDir, { recursive: true, force: true });
    if (refExportDir !== null && !options.keepTemp) removeRefExport(refExportDir);
  };
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    progress.log(`\n${signal}: stopping every started process`);
    void cleanUp().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => group.killAllNow());

  try {
    // Built before the upstream starts, so the build's CPU does not overlap any measurement.
    const ref = options.ref && scenario.targets.includes('lobby-ref')
      ? await prepareRef(group, options.ref, { repoRoot: REPO_ROOT, log: (message) => progress.log(message), onExportDir: (dir) => { refExportDir = dir; } })
      : null;
    return await runScenario(options, scenario, { group, progress, workDir, pinning, nginxBinary, haproxyBinary, wrkBinary, ref });
  } finally {
    await cleanUp();
    if (options.keepTemp) progress.log(`temp dir kept: ${workDir}${refExportDir ? `; lobby-ref build kept (reused by the next --ref of that commit): ${refExportDir}` : ''}`);
  }
}

function validateEnvironment(options: CliOptions, scenario: Scenario, wrkBinary: string | null): void {
  if (options.pin) {
    // cpus(), not availableParallelism(): the latter reflects this process's own affinity mask.
    if (cpus().length < 2) throw new UsageError(`pinning needs 2 CPUs (this machine has ${cpus().length}); use --no-pin`);
    if (!findExecutable('taskset')) throw new UsageError('taskset (util-linux) is not installed; install it or use --no-pin');
  }
  if (options.assertRatio !== null && !(scenario.targets.includes('lobby') && scenario.targets.includes('nginx'))) {
    throw new UsageError(`--assert-ratio compares lobby with nginx, but scenario ${scenario.name} measures ${scenario.targets.join(', ')}: add --targets lobby,nginx`);
  }
  const problem = driverProblem(options.driver, scenario, wrkBinary);
  if (problem) throw new UsageError(problem);
  if (scenario.targets.includes('lobby-ref')) {
    if (!options.ref) throw new UsageError('target lobby-ref needs --ref GITREF or --ref-dir DIR');
    try {
      checkRefSource(REPO_ROOT, options.ref);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
}

async function runScenario(options: CliOptions, scenario: Scenario,
  base: Omit<RunContext, 'options' | 'scenario' | 'upstream' | 'ports' | 'redis' | 'grpc' | 'introspection'>): Promise<number> {
  const { group, progress, workDir, pinning, nginxBinary } = base;
  const startedAt = new Date();
  const ports: RunSettings['ports'] = { lobby: options.portBase + PORT_OFFSETS.lobby, upstream: options.portBase + PORT_OFFSETS.upstream, nginx: options.portBase + PORT_OFFSETS.nginx };
  if (scenario.targets.includes('fastify')) ports.fastify = options.portBase + PORT_OFFSETS.fastify;
  if (scenario.targets.includes('haproxy')) ports.haproxy = options.portBase + PORT_OFFSETS.haproxy;
  if (options.lobbyConfigFile) ports.lobby = readListenAddress(options.lobbyConfigFile).port;

  // Which targets can run here at all.
  const skipped: RunResult['skipped'] = [];
  const targets: TargetName[] = [];
  for (const target of scenario.targets) {
    if (target === 'nginx' && !nginxBinary) {
      skipped.push({ target, reason: 'nginx is not installed (apt-get install nginx-light); no baseline in this run' });
    } else if (target === 'haproxy' && !base.haproxyBinary) {
      skipped.push({ target, reason: 'haproxy is not installed (apt-get install haproxy)' });
    } else if (target === 'fastify' && !fastifyVersions()) {
      skipped.push({ target, reason: 'fastify / @fastify/http-proxy are not installed (devDependencies: npm install without --omit=dev)' });
    } else if ((target === 'lobby' || target === 'lobby-plain') && !lobbyIsBuilt()) {
      skipped.push({ target, reason: `${relative(REPO_ROOT, LOBBY_ENTRY)} not found: build Lobby first (npx tsc -p tsconfig.json)` });
    } else {
      targets.push(target);
    }
  }
  for (const entry of skipped) progress.log(`skipping ${entry.target}: ${entry.reason}`);
  if (targets.length === 0) throw new Error('no target can run on this machine (see the messages above)');

  for (const [name, port] of Object.entries(ports)) {
    if ((name === 'nginx' || name === 'fastify' || name === 'haproxy') && !targets.includes(name)) continue;
    if (name === 'lobby' && !targets.some((target) => target.startsWith('lobby'))) continue;
    if (await isPortOpen(LOCALHOST, port)) throw new Error(`port ${port} (${name}) is already in use; stop what listens there or pass --port-base`);
  }

  // A WebSocket scenario needs an upstream that echoes WebSockets: the uWS one (nginx serves files).
  if (scenario.websocket !== null && options.upstream === 'nginx') throw new UsageError('a websocket scenario needs --upstream uws (nginx cannot echo WebSocket messages)');
  const upstreamKind: UpstreamKind = scenario.websocket !== null ? 'uws' : options.upstream === 'auto' ? (nginxBinary ? 'nginx' : 'uws') : options.upstream;
  progress.log(`starting the ${upstreamKind} upstream on ${LOCALHOST}:${ports.upstream}${pinning ? ` (CPU ${pinning.driverCpu})` : ''}`);
  const upstream = await startUpstream(group, {
    kind: upstreamKind, host: LOCALHOST, port: ports.upstream, cpu: pinning?.driverCpu ?? null, workDir, nginxBinary,
  });
  let redis: RunningRedis | null = null;
  if (scenario.redis) {
    const redisPort = options.portBase + PORT_OFFSETS.redis;
    if (await isPortOpen(LOCALHOST, redisPort)) throw new Error(`port ${redisPort} (redis) is already in use; stop what listens there or pass --port-base`);
    progress.log(`starting redis-server on ${LOCALHOST}:${redisPort}${pinning ? ` (CPU ${pinning.driverCpu})` : ''}`);
    redis = await startRedisServer(group, LOCALHOST, redisPort, pinning?.driverCpu ?? null);
  }
  let grpc: RunningGrpc | null = null;
  if (scenario.grpc) {
    const grpcPort = options.portBase + PORT_OFFSETS.grpc;
    if (await isPortOpen(LOCALHOST, grpcPort)) throw new Error(`port ${grpcPort} (gRPC upstream) is already in use; stop what listens there or pass --port-base`);
    progress.log(`starting the gRPC upstream on ${LOCALHOST}:${grpcPort}${pinning ? ` (CPU ${pinning.driverCpu})` : ''}`);
    grpc = await startGrpcUpstream(group, LOCALHOST, grpcPort, pinning?.driverCpu ?? null);
  }
  let introspection: RunningIntrospection | null = null;
  if (scenario.introspection) {
    const introspectionPort = options.portBase + PORT_OFFSETS.introspection;
    if (await isPortOpen(LOCALHOST, introspectionPort)) throw new Error(`port ${introspectionPort} (introspection endpoint) is already in use; stop what listens there or pass --port-base`);
    progress.log(`starting the introspection endpoint on ${LOCALHOST}:${introspectionPort}`);
    introspection = await startIntrospectionEndpoint(group, LOCALHOST, introspectionPort, pinning?.driverCpu ?? null);
  }
  const certificate = scenario.tls ? makeRunCertificate(workDir) : null;
  if (certificate && scenario.clientCert) certificate.client = makeClientCertificate(workDir);
  const context: RunContext = { ...base, options, scenario, upstream, ports, redis, grpc, introspection, certificate };

  const runs: TargetRun[] = [];
  const failures: RunResult['failures'] = [];
  for (let round = 1; round <= options.rounds; round++) {
    // Alternate the order so slow drift of the machine (thermal, neighbours) does not favour one target.
    const order = round % 2 === 1 ? targets : [...targets].reverse();
    for (const target of order) {
      if (group.shuttingDown) break;
      const prefix = `[round ${round}/${options.rounds} · ${target}]`;
      try {
        runs.push({ round, ...(await runTarget(context, target, prefix)) });
      } catch (error) {
        if (group.shuttingDown) break; // interrupted: the failure is ours, not the target's
        const message = error instanceof Error ? error.message : String(error);
        progress.log(`${prefix} failed: ${message}`);
        failures.push({ target, round, error: message });
      }
    }
  }

  if (group.shuttingDown) return 130; // interrupted: no partial result files

  const result: RunResult = {
    format: 'lobby-loadtest/1',
    command: ['node', relative(process.cwd(), process.argv[1] ?? 'dist/loadtest/run.js') || 'dist/loadtest/run.js', ...process.argv.slice(2)].join(' '),
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    scenario,
    settings: {
      driver: scenario.websocket !== null ? 'websocket' : options.driver,
      upstream: upstreamKind,
      pinned: pinning !== null,
      driverCpu: pinning?.driverCpu ?? null,
      proxyCpu: pinning?.proxyCpu ?? null,
      rounds: options.rounds,
      ports,
      lobbyConfigFile: options.lobbyConfigFile ? resolve(options.lobbyConfigFile) : null,
      ref: base.ref ? { source: base.ref.source, sha: base.ref.sha, dir: base.ref.dir, build: base.ref.build } : null,
    },
    machine: machineInfo(nginxBinary, base.haproxyBinary, base.wrkBinary),
    runs,
    skipped,
    failures,
    summary: summarizeRuns(targets, runs),
  };
  result.assertRatio = options.assertRatio === null ? null : assertRatioVerdict(result.summary, options.assertRatio);

  const outDir = resolve(options.outDir ?? DEFAULT_OUT_DIR);
  mkdirSync(outDir, { recursive: true });
  const baseName = `${scenario.name}-${startedAt.toISOString().replace(/[:]/g, '-').replace(/\.\d+Z$/, 'Z')}`;
  const files = { json: join(outDir, `${baseName}.json`), html: join(outDir, `${baseName}.html`) };
  writeFileSync(files.json, JSON.stringify(result, null, 2) + '\n');
  writeFileSync(files.html, renderHtmlReport(result));
  progress.clearStatus();
  process.stdout.write('\n' + renderTextReport(result, { json: displayPath(files.json), html: displayPath(files.html) }));

  const soakFailed = runs.some((run) => run.soak && !run.soak.pass);
  if (result.assertRatio && !result.assertRatio.pass) progress.log(`loadtest: ${result.assertRatio.message}`);
  return failures.length > 0 || runs.length === 0 || soakFailed || result.assertRatio?.pass === false ? 1 : 0;
}

/** Starts one target, measures it, stops it: every round gets a fresh process. */
async function runTarget(context: RunContext, target: TargetName, prefix: string): Promise<Omit<TargetRun, 'round'>> {
  const { progress, pinning, scenario, group } = context;
  const started = startTarget(context, target);
  progress.log(`${prefix} starting: ${started.process.commandLine}`);
  let driver: LoadDriver | null = null;
  try {
    const clientCert = context.certificate?.client ? { cert: context.certificate.client.cert, key: context.certificate.client.key } : null;
    await waitForHttp(started.host, started.port, started.process, TARGET_READY_TIMEOUT_MS, scenario.tls, clientCert);
    const spec: LoadSpec = {
      url: `${scenario.tls ? 'https' : 'http'}://${started.host}:${started.port}${scenario.path}`,
      method: scenario.method,
      headers: scenario.headers,
      bodySize: scenario.bodySize,
      connections: scenario.connections,
      pipelining: scenario.pipelining,
      timeoutSec: scenario.timeoutSec,
      rate: scenario.rate,
      clientCert,
      websocket: scenario.websocket,
    };
    driver = createDriver(context.options.driver, group, spec, pinning?.driverCpu ?? null, context.wrkBinary, context.workDir);
    await driver.start();
    const redis = context.redis;
    const redisCommands = redis && (target === 'lobby' || target === 'lobby-ref') ? () => redisCommandsProcessed(redis.host, redis.port) : undefined;
    const measured = await measureTarget(target, started.process.pid, { scenario, driver, progress, prefix, pinning, redisCommands });
    const figures = measured.figures;
    progress.log(`${prefix} ${formatFigure(figures.requestsPerSec, 0)} req/s · ` +
      `${formatFigure(figures.cpu.perRequest.totalUs, 2)} CPU µs/request (user ${formatFigure(figures.cpu.perRequest.userUs, 2)}, sys ${formatFigure(figures.cpu.perRequest.systemUs, 2)}) · ` +
      `p99 ${formatFigure(figures.latency.p99Ms, 2)} ms · ${figures.errors} errors · ${figures.non2xx} non-2xx`);
    for (const warning of figures.warnings) progress.log(`${prefix} warning: ${warning}`);
    if (!started.process.running) throw new Error(`${target} exited during the run:\n${started.process.outputTail()}`);
    return measured;
  } finally {
    await driver?.close();
    await started.process.stop();
  }
}

function startTarget(context: RunContext, target: TargetName): StartedTarget {
  const { scenario, upstream, ports, pinning, group } = context;
  const cpu = pinning?.proxyCpu ?? null;
  switch (target) {
    case 'nginx': return startNginxTarget(context);
    case 'fastify': {
      const port = ports.fastify!;
      return { process: startFastify(group, { host: LOCALHOST, port, upstreamUrl: upstream.url, upstreamConnections: scenario.upstreamConnections }, cpu), host: LOCALHOST, port };
    }
    case 'haproxy': {
      const port = ports.haproxy!;
      const config = haproxyConfig({ port, upstreamHost: upstream.host, upstreamPort: upstream.port, upstreamConnections: scenario.upstreamConnections });
      return { process: startHaproxy(group, context.haproxyBinary!, context.workDir, config, cpu), host: LOCALHOST, port };
    }
    default: return startLobbyTarget(context, target);
  }
}

/** lobby-plain: the generated config without the scenario's overlay; lobby-ref: lobby's config on the ref's build. */
function startLobbyTarget(context: RunContext, target: 'lobby' | 'lobby-plain' | 'lobby-ref'): StartedTarget {
  const { options, scenario, workDir, upstream, ports, pinning, group } = context;
  const plain = target === 'lobby-plain';
  let configFile: string;
  let host = LOCALHOST;
  if (options.lobbyConfigFile) {
    configFile = resolve(options.lobbyConfigFile);
    const address = readListenAddress(configFile);
    host = address.host;
    if (address.workers !== 1) context.progress.log(`note: ${configFile} sets server.workers to ${String(address.workers)}; the comparison assumes 1`);
  } else {
    configFile = join(workDir, plain ? 'lobby-plain.yaml' : 'lobby.yaml');
    // HTTPS is how the listener is reached, not a feature under test: lobby-plain keeps it too.
    const tls = context.certificate ? lobbyTlsOverlay(ports.lobby, context.certificate) : {};
    writeFileSync(configFile, lobbyConfigYaml({
      host: LOCALHOST, port: ports.lobby, upstreamUrl: upstream.url, upstreamConnections: scenario.upstreamConnections,
      overlay: deepMerge(tls, plain ? {} : withIntrospectionUrl(scenario.lobbyConfig, context.introspection?.url ?? null)), redisUrl: context.redis?.url ?? null,
      grpcAddress: context.grpc?.address ?? null,
    }));
  }
  const entry = target === 'lobby-ref' ? context.ref!.entry : LOBBY_ENTRY;
  return { process: startLobby(group, configFile, pinning?.proxyCpu ?? null, entry, target), host, port: ports.lobby };
}

function startNginxTarget(context: RunContext): StartedTarget {
  const { scenario, workDir, upstream, ports, pinning, group, nginxBinary } = context;
  const config = proxyNginxConfig({
    workDir, port: ports.nginx, upstreamHost: upstream.host, upstreamPort: upstream.port,
    upstreamKeepalive: scenario.upstreamConnections, locationDirectives: scenario.nginxLocationDirectives,
    tlsDirectives: context.certificate ? nginxTlsDirectives(context.certificate) : null,
  });
  return { process: startNginx(group, nginxBinary!, 'proxy', workDir, config, pinning?.proxyCpu ?? null), host: LOCALHOST, port: ports.nginx };
}

/** Relative to the working directory when inside it, else absolute. */
function displayPath(file: string): string {
  const fromCwd = relative(process.cwd(), file);
  return fromCwd.startsWith('..') ? file : fromCwd;
}

function machineInfo(nginxBinary: string | null, haproxyBinary: string | null, wrkBinary: string | null): MachineInfo {
  const fastify = fastifyVersions();
  const wrkVersion = wrkBinary ? (spawnSync(wrkBinary, ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? '').replace(/\s*Copyright.*$/, '').trim() : null;
  const autocannonPackage = JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', 'autocannon', 'package.json'), 'utf8')) as { version: string };
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown CPU',
    logicalCpus: cpus().length,
    kernel: release(),
    node: process.version,
    nginx: nginxBinary ? nginxVersion(nginxBinary) : null,
    haproxy: haproxyBinary ? haproxyVersion(haproxyBinary) : null,
    fastify: fastify ? `fastify ${fastify.fastify}, @fastify/http-proxy ${fastify.httpProxy}` : null,
    wrk: wrkVersion,
    autocannon: autocannonPackage.version,
    clockTicksPerSecond: clockTicksPerSecond(),
  };
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`\nloadtest: ${error instanceof UsageError ? error.message : error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
