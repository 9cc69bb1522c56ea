// Load scenario "a slow service behind an open breaker serving fallbacks" (issue 14):
//
//   npx tsc -p tsconfig.json
//   node dist/loadtest/breaker-fallback.js [--duration 10] [--connections 32] [--paths 200]
//        [--workers 2] [--slow-ms 2000] [--port-base 18480]
//
// Lobby (--workers, default 2) in front of one service with a circuit breaker
// (consecutive_failures 5, slow_call_ms 200, open_s 2, half_open_probes 2) and a fallback
// cache. Two phases, bounded in time:
//   prime  (≤ 20 s)     the upstream answers in ~5 ms: every connection asks each of --paths
//                       once, so every worker relays and keeps every path;
//   slow   (--duration) the upstream answers in --slow-ms: slow calls open the breaker, and
//                       from then on clients get their last-good answers (Cache-Status
//                       stale-if-error), else 503 upstream_circuit_open; every open_s the
//                       breaker probes (slow again: open).
// The report counts, for the slow phase: fallbacks served, 503s, answers relayed from the
// upstream (before it opened, and probes), failures (other statuses, transport errors),
// with p50/p99 of the fallbacks, and Lobby's own counters from /metrics.
// The load comes from this process (undici, closed loop): it reads every answer's headers,
// which the harness's drivers do not. Not a speed measurement: see proxy-breaker.yaml.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Pool, request } from 'undici';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LOBBY = join(ROOT, 'dist/src/main.js');

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    paths: { type: 'string', default: '200' },
    workers: { type: 'string', default: '2' },
    'slow-ms': { type: 'string', default: '2000' },
    'port-base': { type: 'string', default: '18480' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  process.stdout.write('usage: node dist/loadtest/breaker-fallback.js [--duration S] [--connections N] [--paths N] [--workers N] [--slow-ms MS] [--port-base N]\n');
  process.exit(0);
}
const DURATION_S = Math.min(Number(args.duration), 120);
const CONNECTIONS = Number(args.connections);
const PATHS = Number(args.paths);
const SLOW_MS = Number(args['slow-ms']);
const BASE = Number(args['port-base']);
const [LOBBY_PORT, UPSTREAM_PORT, ADMIN_PORT] = [BASE, BASE + 1, BASE + 2];

let slow = false;
const upstream = createServer((req, res) => {
  const body = JSON.stringify({ path: req.url, at: Date.now() });
  setTimeout(() => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(body); }, slow ? SLOW_MS : 5);
});
upstream.keepAliveTimeout = 60_000;

const counts = { fallback: 0, circuitOpen: 0, relayed: 0, otherStatus: 0, errors: 0 };
const fallbackMs: number[] = [];
/** Prime-phase answers: relayed 200s, anything else (a loaded machine's connect timeouts can
 * open the breaker before the cache is primed: then the slow phase is mostly 503s). */
let primed = 0;
let primeFailed = 0;
/** Error answers by status and gateway error code. */
const codes = new Map<string, number>();

/** Closed-loop GETs over the paths until `until`; priming (`record` false) also stops after one pass. */
async function load(pool: Pool, until: number, record: boolean): Promise<void> {
  let n = Math.floor(Math.random() * PATHS);
  const last = n + PATHS;
  while (performance.now() < until && (record || n < last)) {
    const path = `/item/${n++ % PATHS}`;
    const started = performance.now();
    try {
      const res = await pool.request({ path, method: 'GET', headersTimeout: SLOW_MS + 5_000 });
      const text = await res.body.text();
      if (!record) { if (res.statusCode === 200) primed++; else primeFailed++; continue; }
      if (res.statusCode >= 400) {
        let code = String(res.statusCode);
        try { code += ' ' + JSON.parse(text).error.code; } catch { /* not a gateway error */ }
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
      if (res.statusCode === 200 && res.headers['cache-status'] !== undefined) { counts.fallback++; fallbackMs.push(performance.now() - started); }
      else if (res.statusCode === 200) counts.relayed++;
      else if (res.statusCode === 503 && text.includes('"upstream_circuit_open"')) counts.circuitOpen++;
      else counts.otherStatus++;
    } catch {
      if (record) counts.errors++; else primeFailed++;
    }
  }
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'lobby-breaker-lt-'));
  let lobby: ChildProcess | null = null;
  const pool = new Pool(`http://127.0.0.1:${LOBBY_PORT}`, { connections: CONNECTIONS });
  try {
    await new Promise<void>((resolve, reject) => { upstream.once('error', reject); upstream.listen(UPSTREAM_PORT, '127.0.0.1', () => resolve()); });
    const config = join(dir, 'lobby.yaml');
    await writeFile(config, `
server: { host: 127.0.0.1, port: ${LOBBY_PORT}, workers: ${Number(args.workers)}, drain_timeout_ms: 1000 }
admin: { host: 127.0.0.1, port: ${ADMIN_PORT} }
metrics: {}
services:
  slow:
    targets: ["http://127.0.0.1:${UPSTREAM_PORT}"]
    connections: ${CONNECTIONS}
    timeouts: { connect_ms: 5000, response_ms: ${SLOW_MS + 5_000} }
    circuit_breaker: { consecutive_failures: 5, slow_call_ms: 200, open_s: 2, half_open_probes: 2 }
    fallback: { cache: { ttl_s: 300, max_bytes: 10MB } }
routes: [ { name: slow, match: { prefix: / }, service: slow } ]
`);
    lobby = spawn(process.execPath, [LOBBY, 'start', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOBBY_LOG_LEVEL: 'warn' } });
    let log = '';
    lobby.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
    const ready = Date.now() + 15_000;
    for (;;) {
      try { await (await request(`http://127.0.0.1:${ADMIN_PORT}/readyz`)).body.dump(); break; } catch {
        if (Date.now() > ready) throw new Error(`lobby did not start:\n${log}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    // Every connection asks every path once (at most 20 s), so each worker keeps every path.
    process.stderr.write('prime: every path once per connection, at ~5 ms per answer\n');
    await Promise.all(Array.from({ length: CONNECTIONS }, () => load(pool, performance.now() + 20_000, false)));
    slow = true;
    process.stderr.write(`slow: ${DURATION_S} s at ${SLOW_MS} ms per answer\n`);
    const started = performance.now();
    await Promise.all(Array.from({ length: CONNECTIONS }, () => load(pool, started + DURATION_S * 1000, true)));
    const elapsed = (performance.now() - started) / 1000;
    const metrics = await (await request(`http://127.0.0.1:${ADMIN_PORT}/metrics`)).body.text();
    const metric = (re: RegExp) => metrics.split('\n').filter((l) => re.test(l)).join('\n');
    const total = counts.fallback + counts.circuitOpen + counts.relayed + counts.otherStatus + counts.errors;
    process.stdout.write([
      `breaker-fallback: ${DURATION_S} s slow phase (${elapsed.toFixed(1)} s with the last answers), ${CONNECTIONS} connections, ${PATHS} paths, ${args.workers} workers, upstream ${SLOW_MS} ms`,
      `  primed               ${primed} answers relayed, ${primeFailed} failed (before the slow phase)`,
      `  answers              ${total} (${(total / elapsed).toFixed(0)}/s)`,
      `  fallbacks served     ${counts.fallback}  p50 ${percentile(fallbackMs, 0.5).toFixed(2)} ms  p99 ${percentile(fallbackMs, 0.99).toFixed(2)} ms`,
      `  503 circuit open     ${counts.circuitOpen}  (no answer cached on that worker)`,
      `  relayed (slow)       ${counts.relayed}  (before it opened, and half-open probes)`,
      `  failures             ${counts.otherStatus} other statuses, ${counts.errors} transport errors`,
      `  error answers        ${[...codes].map(([c, n]) => `${c}: ${n}`).join(', ') || 'none'}`,
      metric(/^lobby_breaker_transitions_total|^lobby_fallback_served_total|^lobby_breaker_rejected_total/),
      '',
    ].join('\n'));
  } finally {
    await pool.close().catch(() => undefined);
    if (lobby !== null && lobby.exitCode === null) {
      const exited = new Promise((r) => lobby!.once('exit', r));
      lobby.kill('SIGTERM');
      const timer = setTimeout(() => lobby!.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  process.stderr.write(`breaker-fallback: ${(error as Error).stack ?? error}\n`);
  process.exitCode = 1;
});
