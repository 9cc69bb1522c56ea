// Zero-downtime rolling restarts behind an L4 balancer: HAProxy in TCP mode (Debian's
// /usr/sbin/haproxy) in front of three real Lobby instances, a health check on each one's
// /readyz, keep-alive load through it. Restarting all three one after another (SIGTERM with
// drain_delay_ms above HAProxy's inter x fall, exit, start, UP again) fails no request; kill -9
// of one fails only requests on connections to it, and the others carry the traffic on.
// The same run with more load and rounds: loadtest/rolling-restart.ts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessGroup } from '../../loadtest/processes.js';
import { describeOutcome, L4Fleet, LoadLoop, runUnderLoad } from '../../loadtest/l4-fleet.js';
import { freePort } from '../helpers/ports.js';

const HAPROXY = '/usr/sbin/haproxy';
const DRAIN_DELAY_MS = 1500;
const INTER_MS = 200;
const FALL = 1;

const group = new ProcessGroup();
let dir = '';
let fleet: L4Fleet | null = null;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lobby-rolling-'));
});

after(async () => {
  // Every process, also when the test failed half-way.
  await fleet?.close();
  await group.stopAll();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('behind HAProxy (TCP mode), three instances under load', { skip: existsSync(HAPROXY) ? false : `${HAPROXY} is not installed` }, () => {
  it('a rolling restart of all three fails no request; kill -9 of one fails only requests on connections to it', { timeout: 120_000 }, async (t) => {
    assert.ok(DRAIN_DELAY_MS > INTER_MS * FALL + 1000, 'the drain delay covers a check period and a check timeout');
    const instances = [];
    for (const name of ['a', 'b', 'c']) instances.push({ name, port: await freePort(), adminPort: await freePort(), upstreamPort: await freePort() });
    const frontPort = await freePort();
    fleet = await L4Fleet.start({
      group, workDir: dir, haproxyBinary: HAPROXY, frontPort, instances,
      drainDelayMs: DRAIN_DELAY_MS, drainTimeoutMs: 5000, interMs: INTER_MS, fall: FALL, rise: 2, workers: 1,
      log: (line) => t.diagnostic(line),
    });
    const load = new LoadLoop({ port: frontPort, clients: 8, reconnectEvery: 20 });
    const origin = Date.now();
    const result = await runUnderLoad(fleet, load, { restart: ['a', 'b', 'c'], kill: 'b', afterKillMs: 1000 });

    t.diagnostic(`rolling restart: ${result.rollingRequests} requests, ${result.rollingFailures.length} failed; served ${JSON.stringify(result.rollingServed)}`);
    const kill = result.kill!;
    t.diagnostic(`kill -9 of ${kill.name}: in flight at the kill ${JSON.stringify(kill.inFlightAtKill)}, ${kill.connectionsAtKill} connections to it, ` +
      `${kill.connectionsOpenedWhileDying} opened in the ${kill.exitAfterMs} ms it took to die; ` +
      `${kill.failures.length} failed (${kill.failures.map((o) => describeOutcome(o, origin)).join('; ') || 'none'}); ` +
      `afterwards served ${JSON.stringify(kill.servedAfterDown)}`);
    t.diagnostic(`${result.requests} requests in ${result.durationMs} ms`);

    for (const r of result.restarts) {
      assert.equal(r.exitCode, 0, `${r.name} exited 0 after its drain`);
      assert.ok(r.downAfterMs < DRAIN_DELAY_MS, `HAProxy saw ${r.name} DOWN ${r.downAfterMs} ms after SIGTERM, within the drain delay`);
    }
    assert.deepEqual(result.rollingFailures.map((o) => describeOutcome(o, origin)), [], 'no request failed during the rolling restart');
    assert.ok(result.rollingRequests > 500, `enough load: ${result.rollingRequests} requests`);

    assert.ok(kill.connectionsAtKill > 0, 'the killed instance had client connections');
    assert.deepEqual(kill.unattributed.map((o) => describeOutcome(o, origin)), [], 'every failure was on a connection to the killed instance');
    // A connection fails at most its one request in flight: those pinned to it, those not
    // answered yet at the kill, those opened while the process died.
    const bound = kill.connectionsAtKill + (kill.inFlightAtKill['fresh'] ?? 0) + kill.connectionsOpenedWhileDying;
    assert.ok(kill.failures.length <= bound, `${kill.failures.length} failures, at most one per connection that may have been on it (${bound})`);
    assert.equal(kill.servedAfterDown[kill.name], undefined, 'nothing answered from the killed instance');
    const others = (kill.servedAfterDown['a'] ?? 0) + (kill.servedAfterDown['c'] ?? 0);
    assert.ok((kill.servedAfterDown['a'] ?? 0) > 0 && (kill.servedAfterDown['c'] ?? 0) > 0, `the other two carry on: ${JSON.stringify(kill.servedAfterDown)}`);
    assert.ok(others > 50, `traffic carries on: ${others} requests after the kill`);
  });
});
