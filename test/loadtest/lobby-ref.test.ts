// Target lobby-ref (--ref / --ref-dir): how the second checkout is found, built and started.
// Nothing is built and no load is generated here.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { LOBBY_ENTRY, lobbyCommand } from '../../loadtest/lobby.js';
import { checkRefSource, prepareRef, refBuildSteps, refEntry, refExportDir } from '../../loadtest/lobby-ref.js';
import { ProcessGroup } from '../../loadtest/processes.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const SHA = '44ad0ce0123456789abcdef0123456789abcdef0';

describe('loadtest lobby-ref', () => {
  it('starts the ref exactly like lobby, on the same config, with the ref build\'s entry', () => {
    const ours = lobbyCommand('/tmp/run/lobby.yaml');
    const ref = lobbyCommand('/tmp/run/lobby.yaml', refEntry('/tmp/lobby-loadtest-ref-44ad0ce01234'));
    assert.deepEqual(ours, { command: process.execPath, args: [LOBBY_ENTRY, 'start', '--config', '/tmp/run/lobby.yaml'] });
    assert.deepEqual(ref, { command: process.execPath, args: ['/tmp/lobby-loadtest-ref-44ad0ce01234/dist/src/main.js', 'start', '--config', '/tmp/run/lobby.yaml'] });
  });

  it('exports the commit with git archive into a temp dir named by its sha, outside this tree (whose tsconfig compiles loadtest/**)', () => {
    const dir = refExportDir(SHA);
    assert.equal(dir, join(tmpdir(), 'lobby-loadtest-ref-44ad0ce01234'));
    assert.ok(!dir.startsWith(REPO));
    assert.deepEqual(refBuildSteps('/repo', SHA, '/tmp/x/ref').map((step) => [step.label, step.command, ...step.args]), [
      ['git archive', 'git', '-C', '/repo', 'archive', '--format=tar', '--output=/tmp/x/ref.tar', SHA],
      ['tar', 'tar', '-xf', '/tmp/x/ref.tar', '-C', '/tmp/x/ref'],
      ['tsc', process.execPath, '/tmp/x/ref/node_modules/typescript/bin/tsc', '-p', '/tmp/x/ref/tsconfig.json'],
    ]);
  });

  it('resolves --ref to a commit and refuses one that names none', () => {
    const head = spawnSync('git', ['-C', REPO, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
    assert.equal(checkRefSource(REPO, { kind: 'git', gitRef: 'HEAD' }), head);
    assert.throws(() => checkRefSource(REPO, { kind: 'git', gitRef: 'no-such-ref-for-lobby-ref' }), /--ref: "no-such-ref-for-lobby-ref" names no commit/);
  });

  it('refuses a --ref-dir without a build and uses one with a build as it is', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'lobby-ref-test-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    assert.throws(() => checkRefSource(REPO, { kind: 'dir', dir }), /--ref-dir: .*dist\/src\/main\.js not found: build that checkout first/);
    mkdirSync(join(dir, 'dist', 'src'), { recursive: true });
    writeFileSync(refEntry(dir), '');
    const group = new ProcessGroup();
    const exported: string[] = [];
    const prepared = await prepareRef(group, { kind: 'dir', dir }, { repoRoot: REPO, log: () => {}, onExportDir: (d) => exported.push(d) });
    assert.deepEqual(prepared, { source: dir, sha: null, dir, entry: refEntry(dir), build: 'given' });
    assert.deepEqual(exported, [], 'a --ref-dir is never the harness\'s to remove');
  });

  it('reuses a kept build of the same commit without building again', async (t) => {
    const base = mkdtempSync(join(tmpdir(), 'lobby-ref-test-'));
    t.after(() => rmSync(base, { recursive: true, force: true }));
    const head = checkRefSource(REPO, { kind: 'git', gitRef: 'HEAD' })!;
    const dir = refExportDir(head, base);
    mkdirSync(join(dir, 'dist', 'src'), { recursive: true });
    writeFileSync(refEntry(dir), '');
    writeFileSync(join(dir, '.lobby-loadtest-built'), `${head}\n`);
    const logged: string[] = [];
    const exported: string[] = [];
    const prepared = await prepareRef(new ProcessGroup(), { kind: 'git', gitRef: 'HEAD' },
      { repoRoot: REPO, baseDir: base, log: (m) => logged.push(m), onExportDir: (d) => exported.push(d) });
    assert.deepEqual(prepared, { source: 'HEAD', sha: head, dir, entry: refEntry(dir), build: 'cached' });
    assert.deepEqual(exported, [dir], 'the caller removes it at the end unless --keep-temp');
    assert.match(logged.join('\n'), /reusing the build/);
  });
});
