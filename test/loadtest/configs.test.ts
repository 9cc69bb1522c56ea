import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { applyOverrides, parseCliArgs, UsageError } from '../../loadtest/cli-args.js';
import { AutocannonDriver, createDriver, driverProblem, WrkDriver } from '../../loadtest/drivers.js';
import { luaString, parseWrkOutput, wrkArguments, wrkScript, WRK_RESULT_MARKER } from '../../loadtest/driver-wrk.js';
import type { LoadSpec } from '../../loadtest/driver-protocol.js';
import { deepMerge, LOBBY_ENTRY, lobbyConfigObject, lobbyConfigYaml } from '../../loadtest/lobby.js';
import { proxyNginxConfig, upstreamNginxConfig } from '../../loadtest/nginx.js';
import { loadScenario, parseScenario } from '../../loadtest/scenario.js';
import { ProcessGroup } from '../../loadtest/processes.js';

const SPEC: LoadSpec = { url: 'http://127.0.0.1:18080/', method: 'GET', headers: {}, bodySize: 0, connections: 64, pipelining: 1, timeoutSec: 10, rate: null };

describe('loadtest command line', () => {
  it('defaults to the proxy scenario with pinning and autocannon', () => {
    const options = parseCliArgs([]);
    assert.equal(options.scenario, 'proxy');
    assert.equal(options.driver, 'autocannon');
    assert.equal(options.pin, true);
    assert.equal(options.rounds, 1);
    assert.equal(options.portBase, 18080);
    assert.equal(options.targets, null);
  });

  it('parses every documented flag', () => {
    const options = parseCliArgs(['--scenario', 'post-16k', '--targets', 'nginx,lobby', '--duration', '20s', '--warmup', '2', '--connections', '32',
      '--pipelining', '4', '--rate', '5000', '--driver', 'wrk', '--rounds', '3', '--out', '/tmp/x', '--lobby-config', 'my.yaml', '--upstream', 'uws',
      '--port-base', '19000', '--no-pin', '--keep-temp', '--ref', 'HEAD~1', '--assert-ratio', '1.3']);
    assert.deepEqual({ ...options }, {
      help: false, scenario: 'post-16k', targets: ['nginx', 'lobby'], durationSec: 20, warmupSec: 2, connections: 32, pipelining: 4, rate: 5000,
      driver: 'wrk', rounds: 3, outDir: '/tmp/x', lobbyConfigFile: 'my.yaml', upstream: 'uws', portBase: 19000, pin: false, keepTemp: true,
      ref: { kind: 'git', gitRef: 'HEAD~1' }, assertRatio: 1.3,
    });
  });

  it('parses --ref and --ref-dir into the source of target lobby-ref, one of them at most', () => {
    assert.equal(parseCliArgs([]).ref, null);
    assert.deepEqual(parseCliArgs(['--ref', '44ad0ce']).ref, { kind: 'git', gitRef: '44ad0ce' });
    assert.deepEqual(parseCliArgs(['--ref-dir', '/src/lobby-old']).ref, { kind: 'dir', dir: '/src/lobby-old' });
    assert.throws(() => parseCliArgs(['--ref', 'a', '--ref-dir', 'b']), (error: unknown) => error instanceof UsageError && /--ref and --ref-dir/.test(error.message));
    assert.throws(() => parseCliArgs(['--ref', '']), /--ref needs a value/);
    assert.throws(() => parseCliArgs(['--ref']), UsageError);
    assert.throws(() => parseCliArgs(['--targets', 'lobby,lobby-ref']), /lobby-ref needs --ref GITREF or --ref-dir DIR/);
    assert.deepEqual(parseCliArgs(['--targets', 'lobby-ref,lobby', '--ref', 'main']).targets, ['lobby-ref', 'lobby']);
  });

  it('adds lobby-ref next to lobby when a ref is given, so the two run back to back', () => {
    const scenario = parseScenario({}, 's.yaml', 's');
    assert.deepEqual(applyOverrides(scenario, parseCliArgs([])).targets, ['lobby', 'nginx']);
    assert.deepEqual(applyOverrides(scenario, parseCliArgs(['--ref', 'HEAD~1'])).targets, ['lobby', 'lobby-ref', 'nginx']);
    assert.deepEqual(applyOverrides(scenario, parseCliArgs(['--ref', 'HEAD~1', '--targets', 'nginx'])).targets, ['nginx', 'lobby-ref']);
    assert.deepEqual(applyOverrides(scenario, parseCliArgs(['--ref-dir', 'd', '--targets', 'nginx,lobby-ref,lobby'])).targets, ['nginx', 'lobby-ref', 'lobby'],
      'an explicit position is kept');
  });

  it('rejects bad flags with a message naming the flag', () => {
    assert.throws(() => parseCliArgs(['--driver', 'ab']), (error: unknown) => error instanceof UsageError && /--driver must be one of autocannon, wrk/.test(error.message));
    assert.throws(() => parseCliArgs(['--targets', 'envoy']), /unknown target "envoy"/);
    assert.throws(() => parseCliArgs(['--connections', '0']), /--connections must be an integer >= 1/);
    assert.throws(() => parseCliArgs(['--port-base', '40000']), /below 32768/);
    assert.throws(() => parseCliArgs(['--port-base', '32761']), /its 8 ports below 32768/, 'the introspection endpoint on port-base + 7 must stay below the ephemeral range');
    assert.equal(parseCliArgs(['--port-base', '32760']).portBase, 32760);
    assert.throws(() => parseCliArgs(['--bogus']), UsageError);
  });

  it('lets flags override the scenario for this run', () => {
    const scenario = parseScenario({ connections: 64, duration: 10 }, 's.yaml', 's');
    const overridden = applyOverrides(scenario, parseCliArgs(['--connections', '8', '--rate', '100', '--targets', 'nginx']));
    assert.equal(overridden.connections, 8);
    assert.equal(overridden.rate, 100);
    assert.equal(overridden.durationSec, 10);
    assert.deepEqual(overridden.targets, ['nginx']);
  });
});

describe('loadtest generated configs', () => {
  it('the nginx proxy serves HTTPS with the run certificate when asked', async () => {
    const { nginxTlsDirectives } = await import('../../loadtest/tls.js');
    const config = proxyNginxConfig({ workDir: '/tmp/w', port: 18082, upstreamHost: '127.0.0.1', upstreamPort: 18081, upstreamKeepalive: 64, locationDirectives: '',
      tlsDirectives: nginxTlsDirectives({ cert: '/tmp/w/tls-cert.pem', key: '/tmp/w/tls-key.pem' }) });
    assert.match(config, /listen 127\.0\.0\.1:18082 ssl backlog=4096;/);
    assert.match(config, /ssl_certificate \/tmp\/w\/tls-cert\.pem;/);
    assert.match(config, /ssl_certificate_key \/tmp\/w\/tls-key\.pem;/);
  });

  it('configures nginx as a keep-alive HTTP/1.1 reverse proxy with one worker', () => {
    const config = proxyNginxConfig({ workDir: '/tmp/w', port: 18082, upstreamHost: '127.0.0.1', upstreamPort: 18081, upstreamKeepalive: 64, locationDirectives: 'proxy_set_header X-Test 1;' });
    assert.match(config, /worker_processes 1;/);
    assert.match(config, /upstream bench \{\s+server 127\.0\.0\.1:18081;\s+keepalive 64;/);
    assert.match(config, /proxy_http_version 1\.1;/);
    assert.match(config, /proxy_set_header Connection "";/);
    assert.match(config, /listen 127\.0\.0\.1:18082/);
    assert.match(config, /proxy_set_header X-Test 1;/);
    assert.match(config, /access_log off;/);
  });

  it('configures the nginx upstream to answer with return 200 and serve the large body', () => {
    const config = upstreamNginxConfig({ workDir: '/tmp/w', port: 18081, staticDir: '/tmp/w/static' });
    assert.match(config, /return 200 '\{"service":/);
    assert.match(config, /location = \/1m \{\s+root \/tmp\/w\/static;/);
  });

  it('generates a one-worker Lobby config and merges the scenario overlay', () => {
    const base = lobbyConfigObject({ host: '127.0.0.1', port: 18080, upstreamUrl: 'http://127.0.0.1:18081', upstreamConnections: 64, overlay: {} });
    assert.deepEqual(base, {
      server: { host: '127.0.0.1', port: 18080, workers: 1 },
      services: { bench: { targets: ['http://127.0.0.1:18081'], connections: 64 } },
      routes: [{ name: 'bench', match: { prefix: '/' }, service: 'bench' }],
    });
    const overlaid = lobbyConfigObject({
      host: '127.0.0.1', port: 18080, upstreamUrl: 'http://127.0.0.1:18081', upstreamConnections: 64,
      overlay: { services: { auth: { targets: ['${upstream}'] } }, routes: [{ name: 'jwt', match: { prefix: '/' }, service: 'auth' }] },
    });
    assert.deepEqual((overlaid['services'] as Record<string, unknown>)['auth'], { targets: ['http://127.0.0.1:18081'] });
    assert.ok((overlaid['services'] as Record<string, unknown>)['bench'], 'objects merge');
    assert.equal((overlaid['routes'] as unknown[]).length, 1, 'arrays replace');
    assert.deepEqual(deepMerge({ a: { b: 1, c: 2 } }, { a: { c: 3 } }), { a: { b: 1, c: 3 } });
  });

  it('writes a config Lobby itself accepts', { skip: existsSync(LOBBY_ENTRY) ? false : 'Lobby is not built' }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'loadtest-config-'));
    try {
      const file = join(dir, 'lobby.yaml');
      writeFileSync(file, lobbyConfigYaml({ host: '127.0.0.1', port: 18080, upstreamUrl: 'http://127.0.0.1:18081', upstreamConnections: 64, overlay: {} }));
      const check = spawnSync(process.execPath, [LOBBY_ENTRY, 'check', '--config', file], { encoding: 'utf8' });
      assert.equal(check.status, 0, check.stderr + check.stdout);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('loadtest wrk driver script', () => {
  it('escapes Lua strings byte by byte', () => {
    assert.equal(luaString('a"b\\c'), '"a\\"b\\\\c"');
    assert.equal(luaString('line\nnext'), '"line\\10next"');
    assert.equal(luaString('é'), '"\\195\\169"');
  });

  it('sets method, body, headers and pipelining, and prints a result line', () => {
    const script = wrkScript({ ...SPEC, method: 'POST', bodySize: 16384, headers: { 'x-test': 'yes' }, pipelining: 4 });
    assert.match(script, /wrk\.method = "POST"/);
    assert.match(script, /wrk\.body = string\.rep\("x", 16384\)/);
    assert.match(script, /wrk\.headers\["content-type"\] = "application\/octet-stream"/);
    assert.match(script, /wrk\.headers\["x-test"\] = "yes"/);
    assert.match(script, /for i = 1, 4 do requests\[i\] = wrk\.format\(\) end/);
    assert.match(script, /LOBBY_WRK_RESULT/);
    for (const p of ['50.0000000', '90.0000000', '99.0000000', '99.9000000']) assert.ok(script.includes(p), `samples p${p}`);
    assert.doesNotMatch(wrkScript(SPEC), /request = function/, 'no per-request Lua without pipelining (it slows wrk down)');
  });

  it('builds the command line and parses the result line', () => {
    assert.deepEqual(wrkArguments(SPEC, '/tmp/s.lua', 10), ['-t1', '-c64', '-d10s', '--timeout', '10s', '-s', '/tmp/s.lua', 'http://127.0.0.1:18080/']);
    const stdout = `Running 10s test\n  1 threads and 64 connections\n\n${WRK_RESULT_MARKER}{"durationUs":10000000,"requests":600000,"bytes":1,"errors":{"connect":0,"read":1,"write":0,"status":2,"timeout":3},"latencyUs":{"min":50,"max":9000,"mean":900.5},"percentilesUs":[[0.0000000,50],[50.0000000,800]]}\n`;
    const parsed = parseWrkOutput(stdout);
    assert.equal(parsed.requests, 600000);
    assert.deepEqual(parsed.percentilesUs[1], [50, 800]);
    assert.throws(() => parseWrkOutput('Running 10s test\n'), /no result line/);
  });
});

describe('loadtest driver selection', () => {
  it('builds the driver --driver names, without starting anything', () => {
    const group = new ProcessGroup();
    const autocannon = createDriver('autocannon', group, SPEC, 0, null, '/tmp');
    assert.ok(autocannon instanceof AutocannonDriver);
    assert.equal(autocannon.name, 'autocannon');
    const wrk = createDriver('wrk', group, SPEC, 0, '/usr/bin/wrk', '/tmp');
    assert.ok(wrk instanceof WrkDriver);
    assert.equal(wrk.name, 'wrk');
    assert.ok(createDriver('autocannon', group, { ...SPEC, rate: 20000 }, null, null, '/tmp') instanceof AutocannonDriver, 'autocannon runs the constant-rate mode');
    assert.throws(() => createDriver('wrk', group, { ...SPEC, rate: 20000 }, 0, '/usr/bin/wrk', '/tmp'), /--rate needs --driver autocannon/);
    assert.throws(() => createDriver('wrk', group, SPEC, 0, null, '/tmp'), /wrk is not installed/);
  });

  it('refuses wrk, before anything starts, for the constant-rate mode, soak, or when it is missing', () => {
    const closedLoop = loadScenario('proxy');
    const constantRate = loadScenario('proxy-rate');
    const soak = loadScenario('soak');
    assert.equal(constantRate.rate, 20000);
    for (const scenario of [closedLoop, constantRate, soak]) assert.equal(driverProblem('autocannon', scenario, null), null);
    assert.equal(driverProblem('wrk', closedLoop, '/usr/bin/wrk'), null);
    assert.match(driverProblem('wrk', closedLoop, null) ?? '', /wrk is not installed/);
    assert.match(driverProblem('wrk', constantRate, '/usr/bin/wrk') ?? '', /--rate needs --driver autocannon/);
    assert.match(driverProblem('wrk', applyOverrides(closedLoop, parseCliArgs(['--rate', '500'])), '/usr/bin/wrk') ?? '', /--rate needs --driver autocannon/);
    assert.match(driverProblem('wrk', soak, '/usr/bin/wrk') ?? '', /soak scenario .* needs --driver autocannon/);
  });
});
