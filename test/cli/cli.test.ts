// The `lobby` command as an operator runs it: a real `node dist/src/main.js` process per
// case, its exit code and what it printed.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MAIN_JS, startGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';

/** The repository root: its config/gateway.yaml is valid, so a check of it says OK. */
const REPO = fileURLToPath(new URL('../../../', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

const running = new Set<ChildProcess>();

/** Runs `lobby ARGS` to its exit (SIGKILL and a failure after timeoutMs: it should have exited). */
function lobby(args: string[], timeoutMs = 30_000): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, LOBBY_LOG_LEVEL: 'info' };
  delete env.LOBBY_CONFIG;
  const proc = spawn(process.execPath, [MAIN_JS, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`lobby ${args.join(' ')} still running after ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      running.delete(proc);
      resolve({ code, stdout, stderr });
    });
  });
}

after(() => { for (const proc of running) proc.kill('SIGKILL'); });

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'lobby-cli-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

async function configFile(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

const INVALID = 'server:\n  workerz: 2\n';
const VALID = 'server:\n  port: 18080\n  workers: 1\n';

function assertUsage(run: Run, problem: RegExp): void {
  assert.equal(run.code, 2, run.stderr);
  assert.match(run.stderr, problem);
  assert.match(run.stderr, /\nUsage:\n {2}lobby start/);
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(run.stdout, '');
}

describe('lobby check: which file', () => {
  it('checks a positional FILE, not the default config', async () => {
    const bad = await configFile('bad.yaml', INVALID);
    const run = await lobby(['check', bad]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.ok(run.stderr.includes(`${bad}:2 server.workerz: unknown key, did you mean "workers"?`), run.stderr);
    assert.ok(run.stderr.includes(`${bad}: invalid configuration (1 issue)`), run.stderr);

    const good = await configFile('good.yaml', VALID);
    const ok = await lobby(['check', good]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(ok.stdout.includes(`${good}: OK:`), ok.stdout);
  });

  it('refuses two config files with the usage', async () => {
    const good = await configFile('good.yaml', VALID);
    assertUsage(await lobby(['check', good, '--config', good]), /two config files given/);
    assertUsage(await lobby(['check', good, good]), /check takes one config file, got 2/);
  });

  it('a flag without its value, or an unknown flag, prints the usage and exits 2', async () => {
    assertUsage(await lobby(['check', '--config']), /--config <value>' argument missing/);
    assertUsage(await lobby(['check', '--config', '--help']), /--config/);
    assertUsage(await lobby(['check', '--confg', 'x.yaml']), /Unknown option '--confg'/);
    assertUsage(await lobby(['chek']), /unknown command "chek"/);
  });
});

describe('lobby start: a port another process serves', () => {
  const config = (port: number, extra = '') => `server:\n  host: 127.0.0.1\n  port: ${port}\n  workers: 1\n${extra}`;

  it('refuses a port a plain (non-SO_REUSEPORT) listener holds, naming the address and what to do', async (t) => {
    const port = await freePort();
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen({ port, host: '127.0.0.1', exclusive: true }, resolve));
    t.after(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const run = await lobby(['start', await configFile('held.yaml', config(port))]);
    assert.equal(run.code, 1, run.stderr);
    assert.ok(run.stderr.includes(`lobby: cannot start: 127.0.0.1:${port} is already in use by another process`), run.stderr);
    assert.ok(run.stderr.includes('set server.reuse_port: true'), run.stderr);
    // Refused before any worker started.
    assert.doesNotMatch(run.stderr, /"msg":"lobby listening"/);
  });

  it('refuses a second Lobby on the port of a running one; with reuse_port: true both run', async (t) => {
    const first = await startGateway(config(0).replace('port: 0', 'port: __PORT__'));
    t.after(() => first.stop());
    const second = await lobby(['start', await configFile('second.yaml', config(first.port))]);
    assert.equal(second.code, 1, second.stderr);
    assert.ok(second.stderr.includes(`127.0.0.1:${first.port} is already in use by another process (another Lobby?)`), second.stderr);

    const sharing = await startGateway(config(0, '  reuse_port: true\n').replace('port: 0', 'port: __PORT__'), { port: first.port });
    t.after(() => sharing.stop());
    assert.match(sharing.stderr(), /"msg":"lobby listening"/);
    assert.equal(first.proc.exitCode, null, 'the first gateway still runs');
  });
});
