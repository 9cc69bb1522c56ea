// Every process the harness starts goes through a ProcessGroup, so that all of them are stopped on
// success, on failure and on SIGINT/SIGTERM, and so that a failed start can show the tail of the
// process's own output.

import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { ClientCertFiles } from './driver-protocol.js';

export interface SpawnOptions {
  /** Logical CPU to pin the process to with `taskset -c`, or null for no pinning. */
  cpu: number | null;
  /** Open an IPC channel (for Node.js children). */
  ipc?: boolean;
  /** Keep the whole stdout (e.g. wrk's result) instead of only a tail. */
  keepStdout?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Bytes of stdout/stderr kept for error messages. */
const OUTPUT_TAIL_BYTES = 8192;

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class ManagedProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<ExitStatus>;
  /** Set once the process has exited. */
  exitStatus: ExitStatus | null = null;
  private outputTailText = '';
  private stdoutText = '';

  constructor(readonly label: string, readonly commandLine: string, child: ChildProcess, keepStdout: boolean) {
    this.child = child;
    const keepTail = (chunk: Buffer): void => {
      this.outputTailText = (this.outputTailText + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
    };
    child.stdout?.on('data', (chunk: Buffer) => {
      if (keepStdout) this.stdoutText += chunk.toString('utf8');
      else keepTail(chunk);
    });
    child.stderr?.on('data', keepTail);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
      });
      child.once('error', (error) => {
        this.outputTailText += `\nspawn failed: ${error.message}`;
        this.exitStatus = { code: -1, signal: null };
        resolve(this.exitStatus);
      });
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.label} has no pid (it failed to start): ${this.outputTail()}`);
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitStatus === null;
  }

  outputTail(): string {
    return this.outputTailText.trim();
  }

  stdout(): string {
    return this.stdoutText;
  }

  /** SIGTERM, then SIGKILL if the process has not exited within `graceMs`. */
  async stop(graceMs = 5000): Promise<ExitStatus> {
    if (!this.running) return this.exitStatus!;
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        if (this.running) this.child.kill('SIGKILL');
        resolve();
      }, graceMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.exited;
  }
}

export class ProcessGroup {
  private readonly processes = new Set<ManagedProcess>();
  /** Set by stopAll(): no new process may start once shutdown has begun (e.g. after Ctrl-C). */
  shuttingDown = false;

  spawn(label: string, command: string, args: readonly string[], options: SpawnOptions): ManagedProcess {
    if (this.shuttingDown) throw new Error(`not starting ${label}: shutting down`);
    // taskset execs the command, so the pid we get is the pinned process itself; the affinity is
    // inherited by every thread and child it creates (nginx workers, Node's threads).
    const [file, argv] = options.cpu === null ? [command, [...args]] : ['taskset', ['-c', String(options.cpu), command, ...args]];
    const stdio: StdioOptions = options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'];
    const child = spawn(file, argv, { stdio, env: options.env ?? process.env, cwd: options.cwd });
    const managed = new ManagedProcess(label, [file, ...argv].join(' '), child, options.keepStdout ?? false);
    this.processes.add(managed);
    void managed.exited.then(() => this.processes.delete(managed));
    return managed;
  }

  async stopAll(): Promise<void> {
    this.shuttingDown = true;
    await Promise.all([...this.processes].map((managed) => managed.stop()));
  }

  /** Last resort from a synchronous 'exit' handler: no waiting possible. */
  killAllNow(): void {
    for (const managed of this.processes) {
      if (managed.running) managed.child.kill('SIGKILL');
    }
  }
}

/** Resolves when something accepts TCP connections on host:port. */
export function isPortOpen(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const finish = (open: boolean): void => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

function httpAnswers(host: string, port: number, path: string, tls: boolean, clientCert: ClientCertFiles | null): Promise<boolean> {
  return new Promise((resolve) => {
    // HTTP/1.1 on purpose: the uWS build in use never answers HTTP/1.0 requests.
    // HTTPS: the run's self-signed certificate (loadtest/tls.ts), so no verification.
    const send = tls ? httpsRequest : httpRequest;
    const request = send({ host, port, path, method: 'GET', agent: false, timeout: 1000, ...(tls ? { rejectUnauthorized: false } : {}),
      ...(clientCert ? { cert: readFileSync(clientCert.cert), key: readFileSync(clientCert.key) } : {}) }, (response) => {
      response.resume();
      resolve(true);
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
    request.end();
  });
}

/** Polls with HTTP GET until the server answers with any status; fails early if the process exits. */
export async function waitForHttp(host: string, port: number, managed: ManagedProcess, timeoutMs: number, tls = false, clientCert: ClientCertFiles | null = null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!managed.running) {
      throw new Error(`${managed.label} exited (${describeExit(managed.exitStatus!)}) before answering on ${host}:${port}\n` +
        `command: ${managed.commandLine}\n${indent(managed.outputTail())}`);
    }
    if (await httpAnswers(host, port, '/', tls, clientCert)) return;
    await sleep(100);
  }
  throw new Error(`${managed.label} did not answer HTTP on ${host}:${port} within ${timeoutMs} ms\n` +
    `command: ${managed.commandLine}\n${indent(managed.outputTail())}`);
}

export function describeExit(status: ExitStatus): string {
  return status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
}

export function indent(text: string): string {
  return text.split('\n').map((line) => `    ${line}`).join('\n');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Finds an executable in PATH plus the sbin directories (nginx lives in /usr/sbin, not in every user's PATH). */
export function findExecutable(name: string): string | null {
  const directories = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const directory of directories) {
    if (!directory) continue;
    const candidate = join(directory, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** Pins this process (every thread) to one CPU so the orchestrator never runs on the proxy's core. */
export function pinCurrentProcess(cpu: number): void {
  const result = spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`taskset could not pin the harness to CPU ${cpu}: ${result.stderr || result.error?.message}`);
}
