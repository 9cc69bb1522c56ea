// Health under load (issue 14): a target that hangs, a target that flaps, while load runs.
//
//   npx tsc -p tsconfig.json
//   node dist/loadtest/health-faults.js --scenario hanging-target    (or flapping-target)
//        [--port-base 18480]
//
// The scenario files are loadtest/scenarios/faults/<name>.yaml (phase lengths, connections,
// the gateway's health settings). One Lobby process (2 workers) in front of in-process
// upstreams; two services under load at once (autocannon, in this process):
//   other    one target that always answers: its latency must not move when `victim` fails;
//   victim   two targets, one of which fails in the fault phase:
//              hanging-target   accepts connections and never answers (checks included);
//              flapping-target  stops listening and starts again every flap_ms.
// Two phases of fixed length, baseline (its first 2 s a warm-up, not counted) then fault
// (bounded: the run ends after both).
// Reported: requests, non-2xx and errors per service and phase; p50/p99/max latency of each;
// for the victim, how long the health checks took to take the target out, and the failures
// after that (hanging: must be 0 once the requests in flight on it timed out); Lobby's open
// file descriptors and RSS at the start and end of the fault phase and their maximum (no
// growth), and the health transitions Lobby logged. The machine is shared: figures are
// indicative, counts are the point. Exit code 1 when a check fails.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import * as hdr from 'hdr-histogram-js';
import { request } from 'undici';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LOBBY = join(ROOT, 'dist/src/main.js');
const SCENARIOS = join(ROOT, 'loadtest/scenarios/faults');

const { values: args } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'hanging-target' },
    'port-base': { type: 'string', default: '18480' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  process.stdout.write(`usage: node dist/loadtest/health-faults.js --scenario <${readdirSync(SCENARIOS).map((f) => f.replace(/\.ya?ml$/, '')).join('|')}> [--port-base N]\n`);
  process.exit(0);
}

interface FaultScenario {
  name: string;
  description: string;
  fault: 'hang' | 'flap';
  baselineS: number;
  faultS: number;
  connections: number;
  flapMs: number;
  /** Merged into the victim service (health_check, outlier, timeouts). */
  victim: Record<string, unknown>;
}

function loadFaultScenario(name: string): FaultScenario {
  const file = join(SCENARIOS, `${name}.yaml`);
  const raw = parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const known = ['name', 'description', 'fault', 'baseline_s', 'fault_s', 'connections', 'flap_ms', 'victim'];
  for (const key of Object.keys(raw)) if (!known.includes(key)) throw new Error(`${file}: ${key} is not a key (known: ${known.join(', ')})`);
  const num = (key: string, fallback: number, max: number) => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0) || v > max) throw new Error(`${file}: ${key} must be a number in (0, ${max}]`);
    return v;
  };
  if (raw.fault !== 'hang' && raw.fault !== 'flap') throw new Error(`${file}: fault must be hang or flap`);
  return {
    name: String(raw.name ?? name), description: String(raw.description ?? ''), fault: raw.fault,
    // Bounded: no phase longer than two minutes.
    baselineS: num('baseline_s', 5, 120), faultS: num('fault_s', 10, 120), connections: num('connections', 16, 512), flapMs: num('flap_ms', 1500, 60_000),
    victim: (raw.victim ?? {}) as Record<string, unknown>,
  };
}

/** An in-process upstream: answers a small JSON, hangs, or is not listening. */
class Target {
  hang = false;
  private server: Server | null = null;
  readonly sockets = new Set<Socket>();
  maxSockets = 0;
  constructor(readonly name: string, readonly port: number) {}
  async start(): Promise<void> {
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      if (this.hang) return;
      const body = `{"upstream":"${this.name}"}`;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
    server.keepAliveTimeout = 60_000;
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      this.maxSockets = Math.max(this.maxSockets, this.sockets.size);
      s.once('close', () => this.sockets.delete(s));
    });
    for (let attempt = 0; ; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(this.port, '127.0.0.1', () => { server.off('error', reject); resolve(); }); });
        break;
      } catch (err) {
        if (attempt > 40) throw err;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    this.server = server;
  }
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server === null) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  get listening(): boolean { return this.server !== null; }
}

interface PhaseStats { requests: number; non2xx: Map<number, number>; errors: number; histogram: hdr.Histogram }
const newPhase = (): PhaseStats => ({ requests: 0, non2xx: new Map(), errors: 0, histogram: hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 }) });

function procSample(pid: number): { fds: number; rssMb: number } {
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { fds, rssMb: rss ? Number(rss[1]) / 1024 : 0 };
}

async function main(): Promise<number> {
  const scenario = loadFaultScenario(args.scenario!);
  const base = Number(args['port-base']);
  const [lobbyPort, adminPort] = [base, base + 1];
  const other = new Target('other', base + 2);
  const good = new Target('victim-ok', base + 3);
  const bad = new Target('victim-bad', base + 4);
  await Promise.all([other.start(), good.start(), bad.start()]);
  const dir = await mkdtemp(join(tmpdir(), 'lobby-health-faults-'));
  const config = {
    server: { host: '127.0.0.1', port: lobbyPort, workers: 2 },
    admin: { host: '127.0.0.1', port: adminPort },
    services: {
      other: { targets: [`http://127.0.0.1:${other.port}`] },
      victim: { targets: [`http://127.0.0.1:${good.port}`, `http://127.0.0.1:${bad.port}`], ...scenario.victim },
    },
    routes: [
      { name: 'other', match: { prefix: '/other' }, service: 'other' },
      { name: 'victim', match: { prefix: '/victim' }, service: 'victim' },
    ],
  };
  await writeFile(join(dir, 'lobby.yaml'), stringifyYaml(config));
  let log = '';
  const lobby: ChildProcess = spawn(process.execPath, [LOBBY, 'start', '--config', join(dir, 'lobby.yaml')], {
    env: { ...process.env, LOBBY_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  lobby.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
  const cleanup = async () => {
    lobby.kill('SIGTERM');
    await Promise.all([other.stop(), good.stop(), bad.stop()]);
    await rm(dir, { recursive: true, force: true });
  };
  process.on('SIGINT', () => { lobby.kill('SIGKILL'); process.exit(130); });
  try {
    const deadline = Date.now() + 15_000;
    while (!log.includes('"msg":"lobby listening"')) {
      if (Date.now() > deadline || lobby.exitCode !== null) throw new Error(`lobby did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    process.stderr.write(`${scenario.name}: ${scenario.description}\nbaseline ${scenario.baselineS} s, fault ${scenario.faultS} s, ${scenario.connections} connections per service\n`);

    const startedAt = Date.now();
    const faultAt = startedAt + scenario.baselineS * 1000;
    const warmedAt = startedAt + Math.min(2000, scenario.baselineS * 500);
    const phases = { other: [newPhase(), newPhase()], victim: [newPhase(), newPhase()] };
    let detectedAt = 0;
    let lastBadVictim = 0; // when the victim last failed during the fault
    const victimFailuresAfter: number[] = [];
    const finished: Promise<unknown>[] = [];
    const load = (path: 'other' | 'victim') => {
      let done!: () => void;
      finished.push(new Promise<void>((resolve) => { done = resolve; }));
      return autocannon({
        url: `http://127.0.0.1:${lobbyPort}/${path}`, connections: scenario.connections, duration: scenario.baselineS + scenario.faultS, timeout: 10,
      }, () => done());
    };
    const instances = [load('other'), load('victim')];
    instances.forEach((instance, i) => {
      const name = i === 0 ? 'other' : 'victim';
      instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
        const now = Date.now();
        if (now < warmedAt) return; // JIT and connection warm-up: not measured
        const p = phases[name][now < faultAt ? 0 : 1];
        p.requests++;
        p.histogram.recordValue(Math.max(1, Math.round(ms * 1000)));
        if (status < 200 || status > 299) {
          p.non2xx.set(status, (p.non2xx.get(status) ?? 0) + 1);
          if (name === 'victim' && now >= faultAt) { lastBadVictim = now; if (detectedAt > 0) victimFailuresAfter.push(now - detectedAt); }
        }
      });
      instance.on('reqError', () => { if (Date.now() >= warmedAt) phases[name][Date.now() < faultAt ? 0 : 1].errors++; });
    });

    const samples: { at: number; fds: number; rssMb: number }[] = [];
    const sampler = setInterval(() => { try { samples.push({ at: Date.now(), ...procSample(lobby.pid!) }); } catch { /* exiting */ } }, 500);
    const transitions: string[] = [];
    let flapper: NodeJS.Timeout | null = null;
    setTimeout(() => {
      if (scenario.fault === 'hang') bad.hang = true;
      else {
        const flip = () => { void (bad.listening ? bad.stop() : bad.start()); };
        flip();
        flapper = setInterval(flip, scenario.flapMs);
      }
    }, faultAt - Date.now());
    const poller = setInterval(async () => {
      if (Date.now() < faultAt) return;
      try {
        const res = await request(`http://127.0.0.1:${adminPort}/upstreams`);
        const body = await res.body.json() as { services: { name: string; targets: { target: string; health?: string }[] }[] };
        const row = body.services.find((s) => s.name === 'victim')!.targets.find((t) => t.target.endsWith(`:${bad.port}`));
        if (detectedAt === 0 && row?.health !== undefined && row.health !== 'healthy') detectedAt = Date.now();
      } catch { /* admin busy */ }
    }, 100);

    await Promise.all(finished);
    clearInterval(sampler); clearInterval(poller); if (flapper !== null) clearInterval(flapper);
    for (const line of log.split('\n')) {
      const m = /"msg":"(upstream target (?:unhealthy|healthy|ejected|returned))"/.exec(line);
      if (m && line.includes(`:${bad.port}`)) transitions.push(m[1].replace('upstream target ', ''));
    }

    // --- report ----------------------------------------------------------------------------
    const ms = (h: hdr.Histogram, p: number) => (h.getValueAtPercentile(p) / 1000).toFixed(2);
    const out: string[] = [];
    out.push(`\n${scenario.name}  (requests / non-2xx by status / errors / p50 p99 max ms)`);
    for (const name of ['other', 'victim'] as const) {
      phases[name].forEach((p, i) => {
        const non2xx = [...p.non2xx].map(([s, n]) => `${s}:${n}`).join(' ') || '0';
        out.push(`  ${name.padEnd(6)} ${i === 0 ? 'baseline' : 'fault   '}  ${String(p.requests).padStart(8)}  non-2xx ${non2xx.padEnd(16)} errors ${p.errors}  ${ms(p.histogram, 50)} ${ms(p.histogram, 99)} ${(p.histogram.maxValue / 1000).toFixed(2)}`);
      });
    }
    const during = samples.filter((s) => s.at >= faultAt);
    const first = during[0], last = during.at(-1);
    if (first && last) {
      out.push(`  lobby fds ${first.fds} -> ${last.fds} (max ${Math.max(...during.map((s) => s.fds))}), rss ${first.rssMb.toFixed(0)} -> ${last.rssMb.toFixed(0)} MB (max ${Math.max(...during.map((s) => s.rssMb)).toFixed(0)})`);
    }
    out.push(`  failing target: max open sockets ${bad.maxSockets}, open at the end ${bad.sockets.size}`);
    out.push(`  taken out ${detectedAt === 0 ? 'never' : `${detectedAt - faultAt} ms after the fault`}; transitions logged: ${transitions.join(', ') || 'none'}`);
    out.push(`  victim failures after it was taken out: ${victimFailuresAfter.length}${lastBadVictim ? `, last one ${lastBadVictim - faultAt} ms into the fault` : ''}`);
    const checks: string[] = [];
    const otherP99 = [0, 1].map((i) => phases.other[i].histogram.getValueAtPercentile(99) / 1000);
    if (phases.other[1].non2xx.size > 0 || phases.other[1].errors > 0) checks.push('the other service had failures');
    if (otherP99[1] > Math.max(otherP99[0] * 3, otherP99[0] + 20)) checks.push(`the other service's p99 moved: ${otherP99[0].toFixed(2)} -> ${otherP99[1].toFixed(2)} ms`);
    if (detectedAt === 0) checks.push('the failing target was never taken out');
    if (scenario.fault === 'hang') {
      const responseMs = Number((scenario.victim.timeouts as { response_ms?: number } | undefined)?.response_ms ?? 15_000);
      const late = victimFailuresAfter.filter((t) => t > responseMs + 500).length;
      if (late > 0) checks.push(`${late} victim failures more than response_ms after the target was taken out`);
      if (first && last && last.fds > first.fds + 32) checks.push(`lobby's file descriptors grew: ${first.fds} -> ${last.fds}`);
    }
    out.push(checks.length === 0 ? '  checks: ok' : `  checks FAILED: ${checks.join('; ')}`);
    process.stdout.write(out.join('\n') + '\n');
    return checks.length === 0 ? 0 : 1;
  } finally {
    await cleanup();
  }
}

main().then((code) => process.exit(code), (err) => { process.stderr.write(`${(err as Error).stack ?? err}\n`); process.exit(1); });
