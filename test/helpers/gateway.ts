// Starts a real Lobby process (`node dist/src/main.js start`) on a config written to a
// temp file, waits until it answers, and stops it (SIGTERM, then SIGKILL) afterwards.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { freePort } from './ports.js';

export const MAIN_JS = fileURLToPath(new URL('../../src/main.js', import.meta.url));

export interface Gateway {
  readonly port: number;
  readonly url: string;
  readonly proc: ChildProcess;
  readonly configFile: string;
  /** Everything the process wrote to stderr so far (the application log: pino lines). */
  stderr(): string;
  /** Everything the process wrote to stdout so far (an access log with `path: stdout`). */
  stdout(): string;
  /** Sends SIGTERM and resolves with the exit code (SIGKILL after timeoutMs). */
  stop(timeoutMs?: number): Promise<number | null>;
}

export interface GatewayOptions {
  env?: Record<string, string>;
  readyPath?: string;
  /** Listen port (default: a free one). */
  port?: number;
}

/** `yamlBody` is the config with `__PORT__` where the listen port goes. */
export async function startGateway(yamlBody: string, opts: GatewayOptions = {}): Promise<Gateway> {
  const dir = await mkdtemp(join(tmpdir(), 'lobby-test-'));
  const port = opts.port ?? await freePort();
  const configFile = join(dir, 'gateway.yaml');
  await writeFile(configFile, yamlBody.replaceAll('__PORT__', String(port)));
  const proc = spawn(process.execPath, [MAIN_JS, 'start', '--config', configFile], {
    // info: the 'lobby listening' line says every worker listens (see below).
    env: { ...process.env, LOBBY_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => { exitCode = code; resolve(code); }));
  const gw: Gateway = {
    port, url: `http://127.0.0.1:${port}`, proc, configFile,
    stderr: () => err,
    stdout: () => out,
    async stop(timeoutMs = 10_000) {
      if (exitCode === undefined) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
      return exitCode ?? null;
    },
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (exitCode !== undefined) throw new Error(`gateway exited with ${exitCode} during start:\n${err}`);
    try {
      // One worker answering is not enough: the others may still be starting. The process
      // logs 'lobby listening' once every worker listens (and the control plane is up).
      if (err.includes('"msg":"lobby listening"') || opts.env?.LOBBY_LOG_LEVEL !== undefined) {
        const res = await request(`${gw.url}${opts.readyPath ?? '/__lobby_ready_probe'}`, { headers: { host: 'localhost' } });
        await res.body.dump();
        return gw;
      }
      throw new Error('not listening on every worker yet');
    } catch {
      if (Date.now() > deadline) { await gw.stop(); throw new Error(`gateway did not answer in 15 s:\n${err}`); }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
