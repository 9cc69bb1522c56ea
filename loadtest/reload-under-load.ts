// Reload under load (issue #4): does applying a 10,000-route config stall request serving?
//
//   npx tsc -p tsconfig.json
//   node dist/loadtest/reload-under-load.js [--routes 10000] [--duration 10] [--interval 1000]
//        [--connections 32] [--workers 1] [--port-base 18380] [--no-pin] [--renice-main] [--control-cpu 0]
//
// Layout (like loadtest/run.ts): CPU 0 = autocannon (child process), the static upstream and
// this script (the admin client); CPU 1 = Lobby alone, i.e. its main thread (the control
// plane, which compiles) and its data-plane worker(s). Two windows of the same length, each
// after a warm-up, on the same Lobby process:
//   steady   keep-alive load on one of the 10,000 routes, no change;
//   reloads  the same load while this script PUTs a whole 10,000-route config every
//            --interval ms (alternating two variants, so every PUT is a real change).
// Prints p50/p99/p99.9/max of proxied requests in both windows, the errors and non-2xx
// (must be 0), and the time from PUT /config to its 200 (compile + publish on every worker).
// "other CPU" is the CPU (% of one core) that processes outside this run used during a window
// (from /proc): above a few % the window's latencies are disturbed and should be rerun.
// Two experiments on where the control plane runs (Linux keeps nice value and affinity per
// thread, and Lobby's main thread has the process id as its thread id):
//   --renice-main     Lobby's main thread (control plane) at nice 19, its worker(s) at 0;
//   --control-cpu N   Lobby's main thread moved to CPU N, its worker(s) stay alone on CPU 1.
// Each window waits (up to 20 s) until the CPUs are idle. Ports: Lobby on --port-base,
// the upstream on +1, the admin API on +2; a port in use is an error.
// The harness's machinery is not used: it cannot drive the admin API during a run.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { parseProcStat } from './proc-stat.js';
import { median } from './stats.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LOBBY = join(ROOT, 'dist/src/main.js');
const UPSTREAM = join(ROOT, 'dist/loadtest/upstream-uws.js');
const AUTOCANNON = join(ROOT, 'node_modules/autocannon/autocannon.js');

const { values: args } = parseArgs({
  options: {
    routes: { type: 'string', default: '10000' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    interval: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '32' },
    workers: { type: 'string', default: '1' },
    'port-base': { type: 'string', default: '18380' },
    'control-cpu': { type: 'string' },
    'no-pin': { type: 'boolean', default: false },
    'renice-main': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  process.stdout.write('usage: node dist/loadtest/reload-under-load.js [--routes N] [--duration S] [--warmup S] [--interval MS] [--connections N] [--workers N] [--port-base N] [--no-pin] [--renice-main] [--control-cpu N]\n');
  process.exit(0);
}
const ROUTES = Number(args.routes);
const DURATION_S = Number(args.duration);
const WARMUP_S = Number(args.warmup);
const INTERVAL_MS = Number(args.interval);
const CONNECTIONS = Number(args.connections);
const WORKERS = Number(args.workers);
const PORT = Number(args['port-base']);
const UPSTREAM_PORT = PORT + 1;
const ADMIN_PORT = PORT + 2;
const pin = !args['no-pin'] && availableParallelism() >= 2;

const children = new Set<ChildProcess>();
function start(cmd: string, argv: string[], cpu: number | null, capture = false): { proc: ChildProcess; output: () => string } {
  const [file, full] = pin && cpu !== null ? ['taskset', ['-c', String(cpu), cmd, ...argv]] : [cmd, argv];
  const proc = spawn(file, full, { stdio: ['ignore', capture ? 'pipe' : 'ignore', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  proc.stderr!.on('data', (d: Buffer) => { if (!capture) out += d.toString(); });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  return { proc, output: () => out };
}
function stopAll(): void {
  for (const child of children) child.kill('SIGKILL');
}
process.on('SIGINT', () => { stopAll(); process.exit(130); });
process.on('exit', stopAll);

/** A whole config with ROUTES routes over 100 services (all on the one upstream); `variant` changes every route's rewrite. */
function bigConfig(variant: number): Record<string, unknown> {
  const services: Record<string, unknown> = {};
  for (let s = 0; s < 100; s++) services[`s${s}`] = { targets: [`http://127.0.0.1:${UPSTREAM_PORT}`], connections: 64 };
  const routes = [];
  for (let i = 0; i < ROUTES; i++) routes.push({ name: `r${i}`, match: { prefix: `/svc${i % 100}/r${i}` }, service: `s${i % 100}`, rewrite: `/v${variant}/r${i}` });
  return { server: { host: '127.0.0.1', port: PORT, workers: WORKERS }, admin: { host: '127.0.0.1', port: ADMIN_PORT }, services, routes };
}

async function waitHttp(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await request(url);
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Latency { p50: number; p99: number; p99_9: number; max: number; mean: number }
interface CannonResult { latency: Latency; requests: { total: number; average: number }; errors: number; timeouts: number; non2xx: number }

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Busy fraction of all CPUs over `ms` (from /proc/stat). */
async function cpuBusy(ms: number): Promise<number> {
  const read = async () => {
    const fields = (await readFile('/proc/stat', 'utf8')).split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { idle: fields[3] + fields[4], total: fields.reduce((a, b) => a + b, 0) };
  };
  const a = await read();
  await new Promise((r) => setTimeout(r, ms));
  const b = await read();
  return 1 - (b.idle - a.idle) / Math.max(1, b.total - a.total);
}

/** Waits until nothing else keeps the machine busy (other load tests disturb the figures). */
async function waitIdle(): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const busy = await cpuBusy(500);
    if (busy < 0.1) return;
    if (Date.now() > deadline) {
      process.stderr.write(`warning: CPUs still ${(busy * 100).toFixed(0)}% busy after 20 s; measuring anyway (figures are disturbed)\n`);
      return;
    }
  }
}

/** One autocannon window (child process on CPU 0): warm-up, then DURATION_S measured. */
async function cannon(path: string): Promise<CannonResult & { othersCpu: number }> {
  const url = `http://127.0.0.1:${PORT}${path}`;
  const warm = start(process.execPath, [AUTOCANNON, '-c', String(CONNECTIONS), '-d', String(WARMUP_S), '-j', url], 0, true);
  await new Promise((r) => warm.proc.once('exit', r));
  const before = await cpuTicks();
  const run = start(process.execPath, [AUTOCANNON, '-c', String(CONNECTIONS), '-d', String(DURATION_S), '-j', url], 0, true);
  const runPid = run.proc.pid!;
  let runTicks = 0;
  const poll = setInterval(() => { void processTicks(runPid).then((t) => { if (t > 0) runTicks = t; }); }, 200);
  await new Promise((r) => run.proc.once('exit', r));
  clearInterval(poll);
  const after = await cpuTicks();
  // CPU that none of this run's processes used during the window: other work on the machine.
  const others = (after.busy - before.busy) - (after.ours - before.ours) - runTicks;
  const othersCpu = Math.max(0, others / Math.max(1, after.total - before.total) * availableParallelism());
  return { ...(JSON.parse(run.output().trim().split('\n').pop()!) as CannonResult), othersCpu };
}

/** Pids whose CPU time counts as this run's (Lobby, the upstream, this script). */
const ourPids: number[] = [process.pid];

async function processTicks(pid: number): Promise<number> {
  try {
    const stat = parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
    return stat.userTicks + stat.systemTicks;
  } catch {
    return 0;
  }
}

async function cpuTicks(): Promise<{ busy: number; total: number; ours: number }> {
  const fields = (await readFile('/proc/stat', 'utf8')).split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  let ours = 0;
  for (const pid of ourPids) ours += await processTicks(pid);
  return { busy: total - fields[3] - fields[4], total, ours };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main(): Promise<void> {
  if (pin) spawnSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)]);
  for (const port of [PORT, UPSTREAM_PORT, ADMIN_PORT]) {
    if (!(await portFree(port))) throw new Error(`port ${port} is in use (another run?); choose other ports with --port-base`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'lobby-reload-'));
  try {
    const bodies = [JSON.stringify(bigConfig(1)), JSON.stringify(bigConfig(2))];
    const file = join(dir, 'lobby.json.yaml');
    await writeFile(file, bodies[0]); // JSON is YAML
    const upstream = start(process.execPath, [UPSTREAM, String(UPSTREAM_PORT)], 0);
    await waitHttp(`http://127.0.0.1:${UPSTREAM_PORT}/`, 10_000).catch((e) => { throw new Error(`${e}\n${upstream.output()}`); });
    const lobby = start(process.execPath, [LOBBY, 'start', '--config', file], 1);
    ourPids.push(upstream.proc.pid!, lobby.proc.pid!);
    await waitHttp(`http://127.0.0.1:${ADMIN_PORT}/readyz`, 30_000).catch((e) => { throw new Error(`${e}\n${lobby.output()}`); });
    if (args['renice-main']) spawnSync('renice', ['-n', '19', '-p', String(lobby.proc.pid)]);
    if (args['control-cpu'] !== undefined) spawnSync('taskset', ['-p', '-c', args['control-cpu'], String(lobby.proc.pid)]);
    const path = `/svc7/r${ROUTES > 507 ? 507 : 7}/x`;
    process.stderr.write(`lobby: ${ROUTES} routes, ${WORKERS} worker(s), ${pin ? 'pinned to CPU 1 (load, upstream, admin client on CPU 0)' : 'not pinned'}; load: ${CONNECTIONS} keep-alive connections on ${path}\n`);

    // The time to apply a change without load (6 PUTs, alternating the two variants: it ends on variant 1).
    const idlePut: number[] = [];
    for (let i = 0; i < 6; i++) {
      const started = performance.now();
      const res = await request(`http://127.0.0.1:${ADMIN_PORT}/config`, { method: 'PUT', body: bodies[(i + 1) % 2], headers: { 'content-type': 'application/json' } });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`PUT /config answered ${res.statusCode}`);
      idlePut.push(performance.now() - started);
    }

    process.stderr.write(`steady: ${WARMUP_S}s warm-up + ${DURATION_S}s measured...\n`);
    await waitIdle();
    const steady = await cannon(path);

    process.stderr.write(`reloads: a ${ROUTES}-route PUT /config every ${INTERVAL_MS} ms during ${WARMUP_S}s warm-up + ${DURATION_S}s measured...\n`);
    const putMs: number[] = [];
    const applyMs: number[] = [];
    const compileMs: number[] = [];
    const publishMs: number[] = [];
    await waitIdle();
    let stopReloads = false;
    let variant = 1;
    const reloader = (async () => {
      while (!stopReloads) {
        const started = performance.now();
        variant = variant === 1 ? 2 : 1;
        const res = await request(`http://127.0.0.1:${ADMIN_PORT}/config`, { method: 'PUT', body: bodies[variant - 1], headers: { 'content-type': 'application/json' } });
        const body = (await res.body.json()) as { apply_ms: number; compile_ms: number; publish_ms: number; changed: boolean };
        if (res.statusCode !== 200 || !body.changed) throw new Error(`PUT /config answered ${res.statusCode}: ${JSON.stringify(body)}`);
        putMs.push(performance.now() - started);
        applyMs.push(body.apply_ms);
        compileMs.push(body.compile_ms);
        publishMs.push(body.publish_ms);
        const rest = INTERVAL_MS - (performance.now() - started);
        if (rest > 0) await new Promise((r) => setTimeout(r, rest));
      }
    })();
    const during = await cannon(path);
    stopReloads = true;
    await reloader;

    const row = (name: string, r: CannonResult & { othersCpu: number }) =>
      `${name.padEnd(9)} ${String(Math.round(r.requests.average)).padStart(8)} ${r.latency.p50.toFixed(2).padStart(7)} ${r.latency.p99.toFixed(2).padStart(7)} ${r.latency.p99_9.toFixed(2).padStart(7)} ${r.latency.max.toFixed(2).padStart(7)} ${String(r.errors + r.timeouts).padStart(6)} ${String(r.non2xx).padStart(6)} ${(r.othersCpu * 100).toFixed(0).padStart(5)}%`;
    const sortedPut = [...putMs].sort((a, b) => a - b);
    const sortedApply = [...applyMs].sort((a, b) => a - b);
    process.stdout.write(
      `\nreload under load: ${ROUTES} routes, ${WORKERS} worker(s), ${CONNECTIONS} connections, ${DURATION_S}s windows${pin ? ', Lobby pinned to CPU 1' : ''}` +
        `${args['control-cpu'] !== undefined ? `, its main thread on CPU ${args['control-cpu']}` : ''}${args['renice-main'] ? ', its main thread at nice 19' : ''}\n` +
        `window      req/s  p50 ms  p99 ms p99.9ms  max ms errors non2xx other CPU\n` +
        `${row('steady', steady)}\n${row('reloads', during)}\n` +
        `p99 during reloads / steady: ${(during.latency.p99 / steady.latency.p99).toFixed(2)}\n` +
        `PUT /config of ${ROUTES} routes → 200 without load: median ${median(idlePut).toFixed(0)} ms (6 PUTs)\n` +
        `PUT /config of ${ROUTES} routes → 200 under load (client-side, ${putMs.length} reloads): median ${percentile(sortedPut, 50).toFixed(0)} ms, p90 ${percentile(sortedPut, 90).toFixed(0)} ms, max ${sortedPut.at(-1)!.toFixed(0)} ms\n` +
        `  in Lobby (apply_ms): median ${percentile(sortedApply, 50).toFixed(0)} ms, max ${sortedApply.at(-1)!.toFixed(0)} ms; ` +
        `validate + compile + hash median ${median(compileMs).toFixed(0)} ms, publish (encode table, every worker prepared, swap) median ${median(publishMs).toFixed(0)} ms\n`,
    );
    const failed = steady.errors + steady.timeouts + steady.non2xx + during.errors + during.timeouts + during.non2xx;
    lobby.proc.kill('SIGTERM');
    await new Promise((r) => lobby.proc.once('exit', r));
    process.exitCode = failed === 0 ? 0 : 1;
  } finally {
    stopAll();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  process.stderr.write(`reload-under-load: ${(error as Error).stack ?? error}\n`);
  stopAll();
  process.exitCode = 1;
});
