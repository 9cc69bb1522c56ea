// The websocket load-test scenario's parts: its scenario keys, the driver choice, and the echo
// driver run for a second against a real Lobby relaying to the harness's uWS echo upstream.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AutocannonDriver, createDriver, driverProblem } from '../../loadtest/drivers.js';
import { loadScenario, parseScenario } from '../../loadtest/scenario.js';
import { ProcessGroup, waitForHttp } from '../../loadtest/processes.js';
import type { LoadSpec } from '../../loadtest/driver-protocol.js';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';

const parse = (raw: unknown) => parseScenario(raw, 'test.yaml', 'fallback');

describe('loadtest websocket scenario', () => {
  it('parses websocket: true or a mapping, and refuses what an echo loop cannot do', () => {
    assert.equal(parse({}).websocket, null);
    assert.deepEqual(parse({ websocket: true }).websocket, { messageBytes: 64, binary: true });
    assert.deepEqual(parse({ websocket: { messageBytes: 1024, binary: false } }).websocket, { messageBytes: 1024, binary: false });
    assert.throws(() => parse({ websocket: { size: 5 } }), /websocket.size is not known/);
    assert.throws(() => parse({ websocket: { messageBytes: 0 } }), /websocket.messageBytes must be an integer from 1/);
    assert.throws(() => parse({ websocket: true, pipelining: 4 }), /pipelining cannot be combined with websocket/);
    assert.throws(() => parse({ websocket: true, rate: 100 }), /rate cannot be combined with websocket/);
    const shipped = loadScenario('websocket');
    assert.deepEqual(shipped.websocket, { messageBytes: 64, binary: true });
    assert.deepEqual(shipped.targets, ['lobby', 'nginx']);
    assert.match(shipped.nginxLocationDirectives, /proxy_set_header Upgrade \$http_upgrade;/);
  });

  it('runs its own driver: --driver wrk is refused, the default picks the echo driver', () => {
    const scenario = loadScenario('websocket');
    assert.equal(driverProblem('autocannon', scenario, null), null);
    assert.match(driverProblem('wrk', scenario, '/usr/bin/wrk') ?? '', /websocket scenario runs its own driver/);
    const spec: LoadSpec = { url: 'http://127.0.0.1:1/', method: 'GET', headers: {}, bodySize: 0, connections: 1, pipelining: 1, timeoutSec: 10, rate: null, websocket: scenario.websocket };
    const driver = createDriver('autocannon', new ProcessGroup(), spec, null, null, '/tmp');
    assert.ok(driver instanceof AutocannonDriver);
    assert.equal(driver.name, 'websocket');
  });
});

describe('loadtest websocket driver against Lobby', () => {
  const group = new ProcessGroup();
  let gw: Gateway;
  let upstreamPort: number;

  before(async () => {
    upstreamPort = await freePort();
    const upstream = group.spawn('upstream', process.execPath, [fileURLToPath(new URL('../../loadtest/upstream-uws.js', import.meta.url)), String(upstreamPort)], { cpu: null });
    await waitForHttp('127.0.0.1', upstreamPort, upstream, 10_000);
    gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
services: { bench: { targets: ["http://127.0.0.1:${upstreamPort}"] } }
routes: [ { name: bench, match: { prefix: / }, service: bench, websocket: true } ]
`);
  });

  after(async () => {
    await gw?.stop();
    await group.stopAll();
  });

  it('echoes messages on every connection for the phase and counts each echo as a request', async () => {
    const spec: LoadSpec = { url: `${gw.url}/`, method: 'GET', headers: {}, bodySize: 0, connections: 8, pipelining: 1, timeoutSec: 10, rate: null, websocket: { messageBytes: 64, binary: true } };
    const driver = createDriver('autocannon', group, spec, null, null, '/tmp');
    await driver.start();
    try {
      const m = await driver.runPhase({ label: 'measure', durationSec: 1 }, () => {});
      assert.ok(m.requests > 100, `${m.requests} echoes in 1 s`);
      assert.equal(m.errors, 0);
      assert.equal(m.bytes, m.requests * 64);
      assert.ok(m.latency.p50Ms > 0);
    } finally {
      await driver.close();
    }
  });
});
