// Rolling restarts and an instance failure behind an L4 balancer (issue 17), with more load and
// rounds than the test (test/integration/rolling-restart.test.ts) runs:
//
//   npm run loadtest:rolling        # = build + node dist/loadtest/rolling-restart.js
//   node dist/loadtest/rolling-restart.js [--rounds 2] [--clients 32] [--reconnect-every 20]
//        [--drain-delay 1500] [--inter 200] [--fall 1] [--rise 2] [--workers 1] [--kill b|none]
//        [--after-kill 2000] [--port-base 18680]
//
// HAProxy in TCP mode (loadtest/haproxy.ts haproxyTcpConfig: the config docs/operations.md
// shows) in front of three Lobby instances a, b, c (loadtest/l4-fleet.ts), a closed loop of
// --clients keep-alive clients through it. Each round restarts a, b and c one after another
// (SIGTERM, exit, start, HAProxy sees it UP, it serves again); then one instance gets kill -9.
// Printed: each restart's timings, the requests and failures of the rolling restarts (must be
// 0), and for the kill the requests in flight on it, the failures and whether each was on a
// connection to it. Exit code 1 unless the rolling restarts failed nothing, HAProxy saw every
// instance DOWN within the drain delay, and every kill failure was on a connection to the
// killed instance. Ports: HAProxy --port-base; instance i (0, 1, 2): data +1+3i, admin +2+3i,
// its upstream +3+3i. No pinning: this counts outcomes, it does not measure cost.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { findExecutable, ProcessGroup } from './processes.js';
import { haproxyVersion } from './haproxy.js';
import { describeOutcome, L4Fleet, LoadLoop, runUnderLoad, type RestartResult } from './l4-fleet.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '2' },
    clients: { type: 'string', default: '32' },
    'reconnect-every': { type: 'string', default: '20' },
    'drain-delay': { type: 'string', default: '1500' },
    inter: { type: 'string', default: '200' },
    fall: { type: 'string', default: '1' },
    rise: { type: 'string', default: '2' },
    workers: { type: 'string', default: '1' },
    kill: { type: 'string', default: 'b' },
    'after-kill': { type: 'string', default: '2000' },
    'port-base': { type: 'string', default: '18680' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  process.stdout.write('usage: node dist/loadtest/rolling-restart.js [--rounds N] [--clients N] [--reconnect-every N] [--drain-delay MS] ' +
    '[--inter MS] [--fall N] [--rise N] [--workers N] [--kill a|b|c|none] [--after-kill MS] [--port-base N]\n');
  process.exit(0);
}
const num = (name: keyof typeof args): number => {
  const value = Number(args[name]);
  if (!Number.isInteger(value) || value < 0) { process.stderr.write(`--${name} must be a whole number, got ${args[name]}\n`); process.exit(2); }
  return value;
};
const ROUNDS = num('rounds');
const DRAIN_DELAY_MS = num('drain-delay');
const INTER_MS = num('inter');
const FALL = num('fall');
const BASE = num('port-base');
const NAMES = ['a', 'b', 'c'];
const KILL = args.kill === 'none' ? null : String(args.kill);
if (KILL !== null && !NAMES.includes(KILL)) { process.stderr.write(`--kill must be a, b, c or none, got ${KILL}\n`); process.exit(2); }

async function main(): Promise<number> {
  const haproxy = findExecutable('haproxy');
  if (haproxy === null) { process.stderr.write('haproxy is not installed (Debian: apt-get install haproxy)\n'); return 2; }
  const group = new ProcessGroup();
  const stopOnSignal = (): void => { void group.stopAll().then(() => process.exit(130)); };
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  const dir = await mkdtemp(join(tmpdir(), 'lobby-rolling-'));
  let fleet: L4Fleet | null = null;
  try {
    const started = Date.now();
    const say = (line: string): void => { process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}\n`); };
    fleet = await L4Fleet.start({
      group, workDir: dir, haproxyBinary: haproxy, frontPort: BASE,
      instances: NAMES.map((name, i) => ({ name, port: BASE + 1 + 3 * i, adminPort: BASE + 2 + 3 * i, upstreamPort: BASE + 3 + 3 * i })),
      drainDelayMs: DRAIN_DELAY_MS, drainTimeoutMs: 5000, interMs: INTER_MS, fall: FALL, rise: num('rise'), workers: num('workers'), log: say,
    });
    say(`haproxy ${haproxyVersion(haproxy)} (mode tcp, check GET /readyz every ${INTER_MS} ms, fall ${FALL}, rise ${args.rise}); ` +
      `3 Lobby instances, drain_delay_ms ${DRAIN_DELAY_MS}; ${args.clients} keep-alive clients, Connection: close every ${args['reconnect-every']} requests`);
    const load = new LoadLoop({ port: BASE, clients: num('clients'), reconnectEvery: Math.max(1, num('reconnect-every')) });
    const origin = Date.now();
    const restart = Array.from({ length: ROUNDS }, () => NAMES).flat();
    const result = await runUnderLoad(fleet, load, { restart, kill: KILL, afterKillMs: num('after-kill') });

    const late = result.restarts.filter((r: RestartResult) => r.downAfterMs >= DRAIN_DELAY_MS || r.exitCode !== 0);
    process.stdout.write(`\nrolling restarts (${restart.length}): ${result.rollingRequests} requests, ${result.rollingFailures.length} failed; ` +
      `served ${JSON.stringify(result.rollingServed)}\n`);
    for (const o of result.rollingFailures.slice(0, 20)) process.stdout.write(`  failed: ${describeOutcome(o, origin)}\n`);
    const downs = result.restarts.map((r) => r.downAfterMs);
    process.stdout.write(`  SIGTERM to HAProxy DOWN: ${Math.min(...downs)}-${Math.max(...downs)} ms (drain_delay_ms ${DRAIN_DELAY_MS})\n`);
    let pass = result.rollingFailures.length === 0 && late.length === 0;
    const kill = result.kill;
    if (kill !== null) {
      process.stdout.write(`kill -9 of ${kill.name}: gone after ${kill.exitAfterMs} ms, HAProxy DOWN after ${kill.downAfterMs} ms; ` +
        `in flight at the kill ${JSON.stringify(kill.inFlightAtKill)} (by the instance of their connection), ${kill.connectionsAtKill} connections to it, ` +
        `${kill.connectionsOpenedWhileDying} opened while it died\n`);
      process.stdout.write(`  ${kill.failures.length} failed, ${kill.unattributed.length} of them not on a connection to it; last failure ${kill.lastFailureAfterMs} ms after the kill\n`);
      for (const o of kill.failures.slice(0, 40)) process.stdout.write(`  failed: ${describeOutcome(o, origin)}\n`);
      process.stdout.write(`  afterwards (${args['after-kill']} ms) served ${JSON.stringify(kill.servedAfterDown)}\n`);
      pass &&= kill.unattributed.length === 0 && kill.servedAfterDown[kill.name] === undefined;
    }
    process.stdout.write(`${result.requests} requests in ${(result.durationMs / 1000).toFixed(1)} s\n`);
    process.stdout.write(pass ? 'PASS: no failed request in the rolling restarts; kill -9 failed only requests on connections to it\n'
      : 'FAIL: see above\n');
    return pass ? 0 : 1;
  } finally {
    await fleet?.close();
    await group.stopAll();
    await rm(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
