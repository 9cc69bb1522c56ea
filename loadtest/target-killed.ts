// A target killed mid-load (issue 14): how many requests fail when one of a service's two
// targets dies under load, with retries on, and for how long.
//
//   npx tsc -p tsconfig.json
//   node dist/loadtest/target-killed.js [--duration 10] [--kill-at 4] [--connections 32]
//        [--budget 60] [--no-retry] [--port-base 18580]
//
// Lobby (one worker) proxies GET / to a service of two static upstreams (loadtest/upstream-uws.ts,
// each its own process), round robin, `retry: { attempts: 2 }` with `budget_percent: --budget`.
// A closed loop of --connections keep-alive clients (undici, in this process) sends for
// --duration seconds; at --kill-at seconds one upstream gets SIGKILL. Printed: requests and
// failures (non-2xx or a transport error) per half second, and the verdict: with retries,
// failures only around the kill (requests in flight on the dead target, if their retry is
// refused) and none once the next half second starts. `--no-retry` shows the same run without
// a retry policy: every request balanced to the dead target fails, until the end.
//
// The budget: without outlier ejection (health checks remove a dead target from balancing),
// half of the requests go to the dead target and need a retry, so `budget_percent` must be
// above the dead target's share (50 % here) for all of them to be retried: docs/resilience.md.
// The harness (loadtest/run.ts) is not used: it has one upstream and cannot kill it mid-run.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LOBBY = join(ROOT, 'dist/src/main.js');
const UPSTREAM = join(ROOT, 'dist/loadtest/upstream-uws.js');

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    'kill-at': { type: 'string', default: '4' },
    connections: { type: 'string', default: '32' },
    budget: { type: 'string', default: '60' },
    'no-retry': { type: 'boolean', default: false },
    'port-base': { type: 'string', default: '18580' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  process.stdout.write('usage: node dist/loadtest/target-killed.js [--duration S] [--kill-at S] [--connections N] [--budget PERCENT] [--no-retry] [--port-base N]\n');
  process.exit(0);
}
const DURATION_MS = Number(args.duration) * 1000;
const KILL_AT_MS = Number(args['kill-at']) * 1000;
const CONNECTIONS = Number(args.connections);
const BASE = Number(args['port-base']);
const BUCKET_MS = 500;

const children: ChildProcess[] = [];
function start(cmd: string[], name: string): ChildProcess {
  const child = spawn(process.execPath, cmd, { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d}`));
  children.push(child);
  return child;
}

async function waitFor(url: string, what: string): Promise<void> {
  const until = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await request(url);
      await res.body.dump();
      if (res.statusCode < 500) return;
    } catch { /* not yet */ }
    if (Date.now() > until) throw new Error(`${what} did not answer at ${url} in 15 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'lobby-target-killed-'));
  try {
    const [a, b] = [BASE + 1, BASE + 2];
    start([UPSTREAM, String(a)], 'upstream a');
    const victim = start([UPSTREAM, String(b)], 'upstream b');
    await waitFor(`http://127.0.0.1:${a}/`, 'upstream a');
    await waitFor(`http://127.0.0.1:${b}/`, 'upstream b');
    const retry = args['no-retry'] ? '' : `    retry: { attempts: 2, budget_percent: ${Number(args.budget)} }\n`;
    const config = join(dir, 'gateway.yaml');
    await writeFile(config, `server: { host: 127.0.0.1, port: ${BASE}, workers: 1 }
services:
  bench:
    targets: ["http://127.0.0.1:${a}", "http://127.0.0.1:${b}"]
    timeouts: { connect_ms: 250 }
${retry}routes:
  - { name: bench, match: { prefix: / }, service: bench }
`);
    start([LOBBY, 'start', '--config', config], 'lobby');
    await waitFor(`http://127.0.0.1:${BASE}/`, 'lobby');

    const agent = new Agent({ connections: CONNECTIONS, pipelining: 1 });
    const buckets = Math.ceil(DURATION_MS / BUCKET_MS);
    const ok = new Array<number>(buckets).fill(0);
    const failed = new Array<number>(buckets).fill(0);
    const started = Date.now();
    let killedAt = -1;
    const killer = setTimeout(() => { victim.kill('SIGKILL'); killedAt = Date.now() - started; }, KILL_AT_MS);
    const loop = async (): Promise<void> => {
      while (Date.now() - started < DURATION_MS) {
        let good = false;
        try {
          const res = await request(`http://127.0.0.1:${BASE}/`, { dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 });
          await res.body.dump();
          good = res.statusCode < 300;
        } catch { /* a transport error is a failure */ }
        const slot = Math.min(buckets - 1, Math.floor((Date.now() - started) / BUCKET_MS));
        if (good) ok[slot]++; else failed[slot]++;
      }
    };
    await Promise.all(Array.from({ length: CONNECTIONS }, loop));
    clearTimeout(killer);
    await agent.close();

    const killSlot = Math.floor(killedAt / BUCKET_MS);
    process.stdout.write(`target killed at ${(killedAt / 1000).toFixed(2)} s; ${args['no-retry'] ? 'no retry policy' : `retry attempts 2, budget ${args.budget} %`}\n`);
    process.stdout.write('   t (s)       ok   failed\n');
    for (let i = 0; i < buckets; i++) {
      const mark = i === killSlot ? '  <- kill' : '';
      process.stdout.write(`${(i * BUCKET_MS / 1000).toFixed(1).padStart(8)} ${String(ok[i]).padStart(8)} ${String(failed[i]).padStart(8)}${mark}\n`);
    }
    const total = failed.reduce((n, v) => n + v, 0);
    const before = failed.slice(0, killSlot).reduce((n, v) => n + v, 0);
    const around = failed[killSlot] ?? 0;
    const afterwards = failed.slice(killSlot + 1).reduce((n, v) => n + v, 0);
    process.stdout.write(`failed: ${total} in all; ${before} before the kill, ${around} in its half second (in flight: at most ${CONNECTIONS}), ${afterwards} afterwards\n`);
    const pass = before === 0 && around <= CONNECTIONS && afterwards === 0;
    if (!args['no-retry']) process.stdout.write(pass ? 'PASS: failures only among the requests in flight at the kill, then none\n' : 'FAIL: failures beyond the requests in flight at the kill\n');
    process.exitCode = pass || args['no-retry'] ? 0 : 1;
  } finally {
    for (const child of children) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
