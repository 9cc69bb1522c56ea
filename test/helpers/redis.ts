// A real redis-server (Debian's) for tests: on a loopback port below the ephemeral range, no
// persistence (a restart starts empty, like losing Redis's data). kill() and start() again
// on the same port simulate an outage.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { existsSync } from 'node:fs';
import { freePort } from './ports.js';

export const REDIS_SERVER = process.env.LOBBY_TEST_REDIS_SERVER ?? '/usr/bin/redis-server';

/**
 * Why Redis tests cannot run here, or false. On a developer machine without redis-server they
 * are skipped with this reason; under CI (CI=true, where .ci/run installs it) never: there a
 * missing redis-server is a failure, not a skip.
 */
export const REDIS_MISSING: string | false = existsSync(REDIS_SERVER) || process.env.CI
  ? false
  : `redis-server not found at ${REDIS_SERVER} (apt-get install redis-server, or set LOBBY_TEST_REDIS_SERVER)`;

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** SIGKILL: an outage, not a clean shutdown. Resolves when the process is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: nothing is saved). */
  start(): Promise<void>;
  /** Stops it for good (idempotent). */
  stop(): Promise<void>;
}

/** Resolves when redis answers PING on `port`, or rejects after timeoutMs. */
async function waitForPing(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      let data = '';
      const done = (result: boolean) => { sock.destroy(); resolve(result); };
      sock.setTimeout(500, () => done(false));
      sock.on('error', () => done(false));
      sock.on('connect', () => sock.write('PING\r\n'));
      sock.on('data', (d) => { data += d.toString(); if (data.includes('\r\n')) done(data.startsWith('+PONG')); });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer PING in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  let proc: ChildProcess | null = null;
  let log = '';
  const launch = async () => {
    const p = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc = p;
    p.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
    p.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
    const exited = new Promise<never>((_, reject) => p.once('exit', (code) => reject(new Error(`redis-server exited with ${code}:\n${log}`))));
    exited.catch(() => undefined);
    await Promise.race([waitForPing(port, 5_000), exited]);
  };
  const kill = async () => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill('SIGKILL');
    await gone;
  };
  await launch();
  return { port, url: `redis://127.0.0.1:${port}`, kill, start: launch, stop: kill };
}
