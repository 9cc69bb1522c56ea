// A redis-server for scenarios with `redis: true` (e.g. rate limits synced through Redis): started
// once per run next to the upstream (on the driver's core), no persistence, and read before and
// after every Lobby window so the report can show Redis commands per second against requests
// per second. The scenario's `lobby` overlay reaches it through the `${redis}` placeholder.

import { connect } from 'node:net';
import { findExecutable, isPortOpen, sleep, type ManagedProcess, type ProcessGroup } from './processes.js';

/** Placeholder a scenario's `lobby` overlay may use for the Redis URL, e.g. redis: { url: "${redis}" }. */
export const REDIS_PLACEHOLDER = '${redis}';

export interface RunningRedis {
  host: string;
  port: number;
  url: string;
  process: ManagedProcess;
}

export async function startRedisServer(group: ProcessGroup, host: string, port: number, cpu: number | null): Promise<RunningRedis> {
  const binary = findExecutable('redis-server');
  if (!binary) throw new Error('the scenario needs redis-server (apt-get install redis-server)');
  const process = group.spawn('redis-server', binary, [
    '--bind', host, '--port', String(port), '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning',
  ], { cpu });
  const deadline = Date.now() + 10_000;
  while (!(await isPortOpen(host, port))) {
    if (!process.running) throw new Error(`redis-server exited during start:\n${process.outputTail()}`);
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${host}:${port} in 10 s`);
    await sleep(50);
  }
  return { host, port, url: `redis://${host}:${port}`, process };
}

/** Redis's `total_commands_processed` (INFO stats), over a plain socket. */
export function redisCommandsProcessed(host: string, port: number, timeoutMs = 2_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let data = '';
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('INFO stats: no answer')); }, timeoutMs);
    socket.on('error', (error) => { clearTimeout(timer); reject(error); });
    socket.on('connect', () => socket.write('INFO stats\r\n'));
    socket.on('data', (chunk) => {
      data += chunk.toString();
      const match = /total_commands_processed:(\d+)/.exec(data);
      if (match && data.includes('\r\n', match.index)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(Number(match[1]));
      }
    });
  });
}
