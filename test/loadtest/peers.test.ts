import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { applyOverrides, parseCliArgs, PORT_OFFSETS, UsageError } from '../../loadtest/cli-args.js';
import { wrkPerSecond } from '../../loadtest/driver-wrk.js';
import { FASTIFY_SERVER_ENTRY, fastifyCommand, fastifyVersions } from '../../loadtest/fastify.js';
import { haproxyArguments, haproxyConfig } from '../../loadtest/haproxy.js';
import { parseIoReadChars } from '../../loadtest/proc-stat.js';
import { findExecutable } from '../../loadtest/processes.js';
import { assertRatioVerdict, type FigureRow, type RunSummary } from '../../loadtest/results.js';
import { loadScenario, parseScenario, type TargetName } from '../../loadtest/scenario.js';

function summary(cpu: Partial<Record<TargetName, number | null>>, cores: Partial<Record<TargetName, number | null>> = { lobby: 1, nginx: 1 }): RunSummary {
  const row = (key: string, values: Partial<Record<TargetName, number | null>>): FigureRow => ({
    key, label: key, values, decimals: 2,
    ratio: values.lobby != null && values.nginx != null && values.nginx !== 0 ? values.lobby / values.nginx : null,
  });
  return { targets: ['lobby', 'nginx'], rows: [row('cpuUsPerRequest', cpu), row('proxyCores', cores)] };
}

describe('loadtest peers: fastify and haproxy targets', () => {
  it('accepts the new targets and runs them by default in the proxy scenario only', () => {
    assert.deepEqual(parseCliArgs(['--targets', 'lobby,nginx,fastify,haproxy']).targets, ['lobby', 'nginx', 'fastify', 'haproxy']);
    assert.deepEqual(loadScenario('proxy').targets, ['lobby', 'nginx', 'fastify', 'haproxy']);
    assert.deepEqual(loadScenario('post-16k').targets, ['lobby', 'nginx'], 'other scenarios keep their targets');
    assert.deepEqual(parseScenario({ targets: ['haproxy'] }, 's.yaml', 's').targets, ['haproxy']);
    assert.deepEqual(PORT_OFFSETS, { lobby: 0, upstream: 1, nginx: 2, redis: 3, fastify: 4, haproxy: 5, grpc: 6, introspection: 7 });
  });

  it('generates a one-thread haproxy keep-alive proxy to the same upstream with the same connection count', () => {
    const config = haproxyConfig({ port: 18085, upstreamHost: '127.0.0.1', upstreamPort: 18081, upstreamConnections: 48 });
    assert.match(config, /^global\n\s+nbthread 1$/m);
    assert.match(config, /mode http/);
    assert.match(config, /option http-keep-alive/);
    assert.match(config, /http-reuse always/);
    assert.equal((config.match(/^frontend /gm) ?? []).length, 1, 'one frontend');
    assert.match(config, /bind 127\.0\.0\.1:18085 backlog 4096/);
    assert.match(config, /server upstream 127\.0\.0\.1:18081 maxconn 48 pool-max-conn 48 /);
    assert.doesNotMatch(config, /^\s*log /m, 'no logging, like nginx with access_log off');
    assert.deepEqual(haproxyArguments('/tmp/w/haproxy.cfg'), ['-db', '-f', '/tmp/w/haproxy.cfg']);
  });

  it('writes a config haproxy itself accepts', { skip: findExecutable('haproxy') ? false : 'haproxy is not installed' }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'loadtest-haproxy-'));
    try {
      const file = join(dir, 'haproxy.cfg');
      writeFileSync(file, haproxyConfig({ port: 18085, upstreamHost: '127.0.0.1', upstreamPort: 18081, upstreamConnections: 64 }));
      const check = spawnSync(findExecutable('haproxy')!, ['-c', '-f', file], { encoding: 'utf8' });
      assert.equal(check.status, 0, check.stderr + check.stdout);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('starts @fastify/http-proxy as one Node process with the upstream and its connection count', () => {
    const { command, args } = fastifyCommand({ host: '127.0.0.1', port: 18084, upstreamUrl: 'http://127.0.0.1:18081', upstreamConnections: 64 });
    assert.equal(command, process.execPath);
    assert.deepEqual(args, [FASTIFY_SERVER_ENTRY, '--host', '127.0.0.1', '--port', '18084', '--upstream', 'http://127.0.0.1:18081', '--connections', '64']);
    assert.match(FASTIFY_SERVER_ENTRY, /dist\/loadtest\/fastify-server\.js$/);
    const versions = fastifyVersions();
    assert.ok(versions, 'fastify and @fastify/http-proxy are devDependencies');
    assert.match(versions.httpProxy, /^\d+\.\d+\.\d+/);
  });

  it('rejects a fastify server start without its arguments', () => {
    const run = spawnSync(process.execPath, [FASTIFY_SERVER_ENTRY, '--host', '127.0.0.1'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /usage: fastify-server\.js/);
  });
});

describe('loadtest --assert-ratio', () => {
  it('parses a positive ratio and rejects anything else with the flag named', () => {
    assert.equal(parseCliArgs([]).assertRatio, null);
    assert.equal(parseCliArgs(['--assert-ratio', '1.3']).assertRatio, 1.3);
    for (const bad of ['0', '-1', 'x', '']) {
      assert.throws(() => parseCliArgs([`--assert-ratio=${bad}`]), (error: unknown) => error instanceof UsageError && /--assert-ratio must be a positive number/.test(error.message), bad);
    }
    assert.throws(() => parseCliArgs(['--assert-ratio', '1.3', '--targets', 'lobby,fastify']), /--targets must include both/);
    assert.deepEqual(applyOverrides(loadScenario('proxy'), parseCliArgs(['--assert-ratio', '1.3'])).targets, ['lobby', 'nginx', 'fastify', 'haproxy']);
  });

  it('holds at or below the limit and fails above it, naming both figures', () => {
    const held = assertRatioVerdict(summary({ lobby: 26, nginx: 20 }), 1.3);
    assert.equal(held.pass, true);
    assert.equal(held.ratio, 1.3);
    assert.match(held.message, /HELD, lobby 26\.00 \/ nginx 20\.00 CPU µs\/request = 1\.300 <= 1\.3/);
    const exceeded = assertRatioVerdict(summary({ lobby: 37.6, nginx: 19.9 }), 1.3);
    assert.equal(exceeded.pass, false);
    assert.match(exceeded.message, /EXCEEDED, lobby 37\.60 \/ nginx 19\.90 CPU µs\/request = 1\.889 > 1\.3/);
    assert.deepEqual(exceeded.notes, []);
  });

  it('fails when the ratio cannot be computed (a target skipped or failed) instead of passing silently', () => {
    const verdict = assertRatioVerdict(summary({ lobby: 26, nginx: null }), 1.3);
    assert.equal(verdict.pass, false);
    assert.equal(verdict.ratio, null);
    assert.match(verdict.message, /NOT CHECKED, no CPU µs\/request for nginx/);
  });

  it('notes a proxy that was not saturated without changing the verdict', () => {
    const verdict = assertRatioVerdict(summary({ lobby: 26, nginx: 21 }, { lobby: 0.98, nginx: 0.6 }), 1.3);
    assert.equal(verdict.pass, true);
    assert.equal(verdict.notes.length, 1);
    assert.match(verdict.notes[0]!, /nginx used 0\.60 cores: not saturated/);
  });
});

describe('loadtest per-second samples of wrk', () => {
  it('reads rchar from /proc/PID/io', () => {
    assert.equal(parseIoReadChars('rchar: 123456\nwchar: 7\nsyscr: 1\n'), 123456);
    assert.throws(() => parseIoReadChars('wchar: 7\n'), /no rchar/);
  });

  it('turns wrk\'s cumulative bytes read into requests per interval at the window\'s requests per byte', () => {
    // 100 bytes per response; the last interval (after the last reading) is missing because wrk exited.
    const readings = [{ tSec: 0, bytes: 5000 }, { tSec: 1, bytes: 105_000 }, { tSec: 2, bytes: 185_000 }, { tSec: 3.5, bytes: 335_000 }];
    const samples = wrkPerSecond(readings, 3600, 360_000);
    assert.deepEqual(samples.map((sample) => [sample.tSec, sample.durationSec, sample.requests]), [[1, 1, 1000], [2, 1, 800], [3.5, 1.5, 1500]]);
    assert.ok(samples.every((sample) => sample.p99Ms === null), 'wrk has no per-second latency');
    assert.deepEqual(wrkPerSecond(readings.slice(0, 1), 3600, 360_000), [], 'one reading is no interval');
    assert.deepEqual(wrkPerSecond(readings, 0, 0), []);
  });
});
