// The shipped systemd unit (config/deploy/lobby.service): systemd-analyze verify accepts it
// without a word about it, its offline security review stays low, and its stop timeout covers
// the drain it documents. Skipped (with a message) where systemd-analyze is not installed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const UNIT = fileURLToPath(new URL('../../../config/deploy/lobby.service', import.meta.url));
const ANALYZE = '/usr/bin/systemd-analyze';
const skip = existsSync(ANALYZE) ? false : `${ANALYZE} is not installed: the unit is not verified`;

function analyze(args: string[]): { code: number | null; output: string } {
  const r = spawnSync(ANALYZE, args, { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

/** The unit's settings, last value of each key (as systemd reads a repeated key that is not a list). */
function settings(): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of readFileSync(UNIT, 'utf8').split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) map.set(m[1], m[2]);
  }
  return map;
}

describe('config/deploy/lobby.service', () => {
  it('systemd-analyze verify accepts it and says nothing about it', { skip }, () => {
    const r = analyze(['verify', UNIT]);
    // verify exits 0 even for a value it ignores; what it says about the file is the verdict.
    const aboutUnit = r.output.split('\n').filter((l) => l.includes('lobby.service'));
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(aboutUnit, [], r.output);
  });

  it('the offline security review rates it OK (exposure below 2.5)', { skip }, (t) => {
    const r = analyze(['security', '--offline=yes', '--no-pager', UNIT]);
    const level = /Overall exposure level for lobby\.service: ([\d.]+)/.exec(r.output);
    if (level === null && /unrecognized option|--offline/.test(r.output)) { t.skip('this systemd-analyze has no --offline'); return; }
    assert.ok(level, r.output);
    t.diagnostic(`systemd-analyze security: exposure ${level[1]}`);
    assert.ok(Number(level[1]) < 2.5, r.output);
  });

  it('stops with SIGTERM, waits longer than the drain it names, restarts on failure, and runs this checkout\'s entry point', () => {
    const s = settings();
    assert.equal(s.get('KillSignal'), 'SIGTERM');
    assert.equal(s.get('Restart'), 'on-failure');
    assert.equal(s.get('Type'), 'exec');
    // The comment's budget: drain_delay_ms 5 s + drain_timeout_ms 30 s (its default) + slack.
    assert.match(readFileSync(UNIT, 'utf8'), /here: 5 s \+ 30 s \+ 10 s/);
    assert.ok(Number(s.get('TimeoutStopSec')) > 5 + 30, `TimeoutStopSec=${s.get('TimeoutStopSec')}`);
    assert.match(s.get('ExecStart') ?? '', /^\/usr\/bin\/node \/opt\/lobby\/dist\/src\/main\.js start --config \/etc\/lobby\/gateway\.yaml$/);
    assert.ok(existsSync(fileURLToPath(new URL('../../src/main.js', import.meta.url))), 'dist/src/main.js is the entry the unit starts');
    assert.equal(s.get('MemoryDenyWriteExecute'), undefined, 'V8 needs writable executable memory');
  });
});
