// A listener that accepts no connections: a child process listening with backlog 1, then
// stopped (SIGSTOP) with its accept queue full, so new connects hang in SYN-SENT (a target
// whose connects neither succeed nor fail until the connect timeout).
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';

export interface StalledListener {
  /** Kills the child and closes the sockets that fill its queue. */
  close(): void;
}

export async function startStalledListener(port: number): Promise<StalledListener> {
  const child = spawn(process.execPath, ['-e', `
    const s = require('net').createServer(); s.listen({ port: ${port}, host: '127.0.0.1', backlog: 1 }, () => process.stdout.write('ok'));`],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  child.kill('SIGSTOP');
  // Fill the accept queue (backlog + 1 completed handshakes) so the next SYN is dropped.
  const fillers: Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 200));
  return {
    close() {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
    },
  };
}
