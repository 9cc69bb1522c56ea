// Target lobby-ref: a second Lobby built from another commit, run in the same run as `lobby`
// (same generated config, pinning, driver and upstream, interleaved round by round), so a change's
// cost is measured against its base on the same machine minutes apart instead of across runs.
//
// --ref GITREF exports that commit with `git archive` (a plain tree: no worktree to register in
// .git or to prune after a killed run) into <tmp>/lobby-loadtest-ref-<sha>, links this checkout's
// node_modules and builds it with its own tsconfig once; a kept dir (--keep-temp) is reused by the
// next run of the same commit. Not under loadtest/results: this tree's tsconfig compiles loadtest/**.
// --ref-dir DIR uses a checkout that is already built.

import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { describeExit, indent, type ProcessGroup } from './processes.js';

/** What --ref / --ref-dir asked for. */
export type RefSource = { kind: 'git'; gitRef: string } | { kind: 'dir'; dir: string };

/** A built checkout ready to start, as recorded in the result's settings. */
export interface PreparedRef {
  /** The flag's value: the git ref or the directory as given. */
  source: string;
  /** Commit of the ref (null for a --ref-dir that is not a git checkout). */
  sha: string | null;
  dir: string;
  /** The ref's `dist/src/main.js`. */
  entry: string;
  /** `now`: built by this run; `cached`: a kept build of the same commit; `given`: --ref-dir. */
  build: 'now' | 'cached' | 'given';
}

/** Written after a successful build; a dir without it is a failed or interrupted one and is redone. */
const BUILT_MARKER = '.lobby-loadtest-built';

export function refEntry(dir: string): string {
  return join(dir, 'dist', 'src', 'main.js');
}

export function refExportDir(sha: string, baseDir = tmpdir()): string {
  return join(baseDir, `lobby-loadtest-ref-${sha.slice(0, 12)}`);
}

export interface RefStep {
  label: string;
  command: string;
  args: string[];
}

/** The commands that turn commit `sha` of `repoRoot` into a built checkout in `dir` (node_modules is linked between the 2nd and 3rd). */
export function refBuildSteps(repoRoot: string, sha: string, dir: string): RefStep[] {
  const tarball = `${dir}.tar`;
  return [
    { label: 'git archive', command: 'git', args: ['-C', repoRoot, 'archive', '--format=tar', `--output=${tarball}`, sha] },
    { label: 'tar', command: 'tar', args: ['-xf', tarball, '-C', dir] },
    // The ref's own tsconfig and sources, this checkout's compiler (node_modules is linked).
    { label: 'tsc', command: process.execPath, args: [join(dir, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json')] },
  ];
}

/** Full commit id of `gitRef` in `repoRoot`, or null when it names no commit. */
export function resolveCommit(repoRoot: string, gitRef: string): string | null {
  const result = spawnSync('git', ['-C', repoRoot, 'rev-parse', '--verify', '--quiet', `${gitRef}^{commit}`], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : null;
}

/**
 * Checks what can be checked before anything starts: the commit exists, or the dir holds a build.
 * Throws with a message for the user; building happens in prepareRef.
 */
export function checkRefSource(repoRoot: string, source: RefSource): string | null {
  if (source.kind === 'git') {
    const sha = resolveCommit(repoRoot, source.gitRef);
    if (sha === null) throw new Error(`--ref: "${source.gitRef}" names no commit in ${repoRoot}`);
    return sha;
  }
  const dir = resolve(source.dir);
  if (!existsSync(refEntry(dir))) throw new Error(`--ref-dir: ${refEntry(dir)} not found: build that checkout first (npx tsc -p tsconfig.json there)`);
  return resolveCommit(dir, 'HEAD');
}

export interface PrepareOptions {
  repoRoot: string;
  log(message: string): void;
  /** Called with the export dir before anything is written there, so the caller can remove it on the way out. */
  onExportDir(dir: string): void;
  /** Where --ref exports go (tests); default the OS temp dir. */
  baseDir?: string;
}

/** Exports and builds the ref (or reuses a kept build of the same commit). */
export async function prepareRef(group: ProcessGroup, source: RefSource, options: PrepareOptions): Promise<PreparedRef> {
  const sha = checkRefSource(options.repoRoot, source);
  if (source.kind === 'dir') {
    const dir = resolve(source.dir);
    return { source: source.dir, sha, dir, entry: refEntry(dir), build: 'given' };
  }
  const commit = sha!;
  const dir = refExportDir(commit, options.baseDir);
  const prepared: PreparedRef = { source: source.gitRef, sha: commit, dir, entry: refEntry(dir), build: 'cached' };
  options.onExportDir(dir);
  if (existsSync(join(dir, BUILT_MARKER)) && readFileSync(join(dir, BUILT_MARKER), 'utf8').trim() === commit && existsSync(prepared.entry)) {
    options.log(`lobby-ref: reusing the build of ${commit.slice(0, 12)} in ${dir}`);
    return prepared;
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  options.log(`lobby-ref: building ${source.gitRef} (${commit.slice(0, 12)}) in ${dir}`);
  const started = Date.now();
  try {
    const [archive, extract, build] = refBuildSteps(options.repoRoot, commit, dir);
    await runStep(group, archive!);
    await runStep(group, extract!);
    rmSync(`${dir}.tar`, { force: true });
    symlinkSync(realpathSync(join(options.repoRoot, 'node_modules')), join(dir, 'node_modules'), 'dir');
    await runStep(group, build!);
    if (!existsSync(prepared.entry)) throw new Error(`the build of ${commit.slice(0, 12)} has no ${prepared.entry}`);
    writeFileSync(join(dir, BUILT_MARKER), `${commit}\n`);
  } catch (error) {
    removeRefExport(dir); // half a build is no cache
    throw error;
  }
  options.log(`lobby-ref: built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { ...prepared, build: 'now' };
}

async function runStep(group: ProcessGroup, step: RefStep): Promise<void> {
  const managed = group.spawn(`lobby-ref ${step.label}`, step.command, step.args, { cpu: null });
  const status = await managed.exited;
  if (status.code !== 0) throw new Error(`lobby-ref: ${step.label} failed (${describeExit(status)})\ncommand: ${managed.commandLine}\n${indent(managed.outputTail())}`);
}

/** Removes a --ref export (rmSync unlinks the node_modules link, it does not follow it). */
export function removeRefExport(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  rmSync(`${dir}.tar`, { force: true });
}
