// Loopback ports for tests, below the ephemeral range (32768-60999 here), so a test's
// listener never collides with an outgoing connection's source port.
import { createServer } from 'node:net';

const LOW = 20000;
const HIGH = 32000;

function tryBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** A port that was free a moment ago (random start, so parallel test files rarely meet). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (await tryBind(port)) return port;
  }
  throw new Error('no free port found in 20000-32000');
}
