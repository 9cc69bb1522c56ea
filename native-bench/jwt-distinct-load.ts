// Load test of JWT verification through a real Lobby: a stream of distinct valid RS256
// tokens (every request a signature check: the token cache is off), verified in the piscina
// pool versus inline on the event loop, next to the same run with one repeated token (cache
// hits) and without auth. A stopgap until the load-test harness (loadtest/) can send a
// per-request header from a list; the rig copies its layout:
//   CPU 0: autocannon (a child process) + the uWS upstream (loadtest/upstream-uws.js)
//   CPU 1: Lobby alone (workers: 1, so its verification pool thread shares that core)
// Figures: requests/s, latency p50/p99 (autocannon), Lobby CPU µs/request (/proc/PID/stat).
//
//   node dist/native-bench/jwt-distinct-load.js [--modes none,cached,inline,pool] [--tokens 10000]
//        [--duration 10] [--warmup 3] [--connections 64] [--threads 1] [--atomics async] [--per-thread 16]
//        [--port-base 18480] [--rounds 1]

import { spawn, type ChildProcess } from 'node:child_process';
import { sign as cryptoSign } from 'node:crypto';
import { detachedKeyPair } from '../test/helpers/keys.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { readProcessCpu, clockTicksPerSecond } from '../loadtest/proc-stat.js';

const MAIN_JS = fileURLToPath(new URL('../src/main.js', import.meta.url));
const UPSTREAM_JS = fileURLToPath(new URL('../loadtest/upstream-uws.js', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const ISSUER = 'https://auth.load.test';

type Mode = 'none' | 'cached' | 'inline' | 'pool';

interface DriverSpec { url: string; tokensFile: string; connections: number; duration: number; tokenCount: number }
interface DriverResult { requests: number; rps: number; p50: number; p99: number; non2xx: number; errors: number }

// ---------------------------------------------------------------------------------------
// Driver (child process): autocannon with a different token on every request.

async function driver(spec: DriverSpec): Promise<void> {
  const { readFileSync } = await import('node:fs');
  const tokens = JSON.parse(readFileSync(spec.tokensFile, 'utf8')) as string[];
  const use = tokens.slice(0, spec.tokenCount);
  let next = 0;
  const samples: number[] = [];
  let instance!: autocannon.Instance;
  const done = new Promise<autocannon.Result>((resolve, reject) => { instance = autocannon({
    url: spec.url,
    connections: spec.connections,
    duration: spec.duration,
    requests: [{
      setupRequest: (req) => {
        (req as { headers: Record<string, string> }).headers = { authorization: `Bearer ${use[next]}` };
        next = next + 1 === use.length ? 0 : next + 1;
        return req;
      },
    }],
  }, (err: unknown, result: autocannon.Result) => (err ? reject(err) : resolve(result))); });
  // autocannon's own percentiles are whole milliseconds; keep every response time instead.
  instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => { samples.push(responseTime); });
  const result = await done;
  samples.sort((a, b) => a - b);
  const pct = (p: number) => samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))] ?? 0;
  const out: DriverResult = {
    requests: result.requests.total, rps: result.requests.total / result.duration,
    p50: pct(50), p99: pct(99), non2xx: result.non2xx, errors: result.errors + result.timeouts,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

// ---------------------------------------------------------------------------------------
// Orchestrator

function pinned(cpu: number, args: string[]): ChildProcess {
  return spawn('taskset', ['-c', String(cpu), process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** uWS listens with SO_REUSEPORT: a port already in use would silently share the load. */
async function assertPortFree(port: number): Promise<void> {
  const { connect } = await import('node:net');
  const open = await new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
  if (open) throw new Error(`port ${port} is in use; pick another --port-base`);
}

async function waitHttp(url: string, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      return;
    } catch {
      if (Date.now() > until) throw new Error(`${url} did not answer`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function runDriver(spec: DriverSpec): Promise<DriverResult> {
  return new Promise((resolve, reject) => {
    const child = pinned(0, [SELF, '--driver', JSON.stringify(spec)]);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('exit', (code) => {
      if (code !== 0) { reject(new Error(`driver exited ${code}: ${err}`)); return; }
      resolve(JSON.parse(out.trim().split('\n').pop()!) as DriverResult);
    });
  });
}

function lobbyConfig(mode: Mode, port: number, upstreamPort: number, jwk: object, verifier: string): string {
  const auth = mode === 'none' ? '' : `
auth:
  verifier: { mode: ${mode === 'inline' ? 'inline' : 'pool'}${verifier} }
  token_cache: { entries: ${mode === 'cached' ? 10000 : 0} }
  providers:
    - name: load
      issuer: ${ISSUER}
      audiences: [load]
      algorithms: [RS256]
      keys: [${JSON.stringify(jwk)}]
      claims_to_headers: { sub: X-User-Id, scope: X-User-Scopes }`;
  const routeAuth = mode === 'none' ? '' : ', auth: { provider: load, scopes: ["load:read"] }';
  return `server: { host: 127.0.0.1, port: ${port}, workers: 1 }
services: { up: { targets: ["http://127.0.0.1:${upstreamPort}"], connections: 64 } }
routes:
  - { name: all, match: { prefix: / }, service: up${routeAuth} }
${auth}
`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      driver: { type: 'string' },
      modes: { type: 'string', default: 'none,cached,inline,pool' },
      tokens: { type: 'string', default: '10000' },
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '3' },
      connections: { type: 'string', default: '64' },
      threads: { type: 'string', default: '1' },
      atomics: { type: 'string', default: 'async' },
      'per-thread': { type: 'string', default: '16' },
      'port-base': { type: 'string', default: '18480' },
      rounds: { type: 'string', default: '1' },
    },
  });
  if (values.driver) { await driver(JSON.parse(values.driver) as DriverSpec); return; }

  const tokenCount = Number(values.tokens);
  const modes = values.modes!.split(',') as Mode[];
  const portBase = Number(values['port-base']);
  const dir = mkdtempSync(join(tmpdir(), 'lobby-jwt-load-'));
  const children: ChildProcess[] = [];
  const stopAll = () => { for (const c of children) if (c.exitCode === null) c.kill('SIGKILL'); };
  process.on('SIGINT', () => { stopAll(); process.exit(130); });
  try {
    process.stderr.write(`signing ${tokenCount} RS256 tokens...\n`);
    const { publicKey, privateKey } = detachedKeyPair({ type: 'rsa', bits: 2048 });
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'load-1', alg: 'RS256' };
    const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'load-1', typ: 'JWT' })).toString('base64url');
    const exp = Math.floor(Date.now() / 1000) + 7200;
    const tokens: string[] = [];
    for (let i = 0; i < tokenCount; i++) {
      const payload = Buffer.from(JSON.stringify({ iss: ISSUER, aud: 'load', sub: `user-${i}`, scope: 'load:read', exp })).toString('base64url');
      const input = `${header}.${payload}`;
      tokens.push(`${input}.${cryptoSign('sha256', Buffer.from(input), privateKey).toString('base64url')}`);
    }
    const tokensFile = join(dir, 'tokens.json');
    writeFileSync(tokensFile, JSON.stringify(tokens));

    const upstreamPort = portBase + 1;
    await assertPortFree(portBase);
    await assertPortFree(upstreamPort);
    const upstream = pinned(0, [UPSTREAM_JS, String(upstreamPort)]);
    children.push(upstream);
    await waitHttp(`http://127.0.0.1:${upstreamPort}/`);

    const rows: string[] = [];
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const mode of modes) {
        const port = portBase;
        const configFile = join(dir, `lobby-${mode}.yaml`);
        const verifier = `, threads: ${Number(values.threads)}, atomics: ${values.atomics}, concurrent_tasks_per_thread: ${Number(values['per-thread'])}`;
        writeFileSync(configFile, lobbyConfig(mode, port, upstreamPort, jwk, verifier));
        const lobby = pinned(1, [MAIN_JS, 'start', '--config', configFile]);
        children.push(lobby);
        let lobbyErr = '';
        lobby.stderr!.on('data', (d: Buffer) => { lobbyErr += d.toString(); });
        lobby.stdout!.resume();
        try {
          await waitHttp(`http://127.0.0.1:${port}/`).catch((e) => { throw new Error(`${e.message}\n${lobbyErr}`); });
          const count = mode === 'cached' ? 1 : tokenCount;
          const base = { url: `http://127.0.0.1:${port}/`, tokensFile, connections: Number(values.connections), tokenCount: count };
          await runDriver({ ...base, duration: Number(values.warmup) });
          const before = readProcessCpu(lobby.pid!);
          const r = await runDriver({ ...base, duration: Number(values.duration) });
          const after = readProcessCpu(lobby.pid!);
          const usPerTick = 1e6 / clockTicksPerSecond();
          const userUs = ((after.userTicks - before.userTicks) * usPerTick) / r.requests;
          const sysUs = ((after.systemTicks - before.systemTicks) * usPerTick) / r.requests;
          const label = mode === 'none' ? 'no auth' : mode === 'cached' ? 'auth, 1 token (cache hits)' : `auth, ${tokenCount} tokens, ${mode}`;
          rows.push(`${label.padEnd(34)} ${Math.round(r.rps).toString().padStart(8)} ${r.p50.toFixed(2).padStart(8)} ${r.p99.toFixed(2).padStart(8)} ` +
            `${(userUs + sysUs).toFixed(1).padStart(9)} ${userUs.toFixed(1).padStart(7)} ${String(r.non2xx + r.errors).padStart(8)}`);
          process.stderr.write(`${rows.at(-1)}\n`);
        } finally {
          lobby.kill('SIGTERM');
          await new Promise((r) => lobby.once('exit', r));
        }
      }
    }
    console.log(`\n${'run'.padEnd(34)} ${'req/s'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'CPU µs/r'.padStart(9)} ${'user µs'.padStart(7)} ${'non-2xx'.padStart(8)}`);
    for (const row of rows) console.log(row);
  } finally {
    stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
