// Where access-log lines go, per worker: one pino destination (a sonic-boom) per path, opened
// on first use and kept across generations. Writes are asynchronous and buffered: a line is
// appended to the destination's buffer (no syscall on the request path), which writes whenever
// the previous write finished and at least minLength bytes wait, and at least every second.
// Each write holds whole lines (sonic-boom never splits one), so the workers' lines never
// interleave: a file is opened O_APPEND, and stdout writes stay within PIPE_BUF (4096 bytes,
// atomic on a pipe).
//
// SIGUSR1 (the control plane relays it as `reopen-logs`) reopens every file, for logrotate;
// a drain flushes every destination before the worker exits, so no line is lost.
import { pino } from 'pino';
import { log } from '../../shared/log.js';
import { onWorkerDrain, onWorkerFatal, onWorkerReopenLogs } from '../../data/worker-hooks.js';
import { STDOUT } from './compile.js';

type Destination = ReturnType<typeof pino.destination>;

const destinations = new Map<string, Destination>();
const FILE_MIN_LENGTH = 4096;
const PIPE_BUF = 4096;
const FLUSH_EVERY_MS = 1000;

/** The destination of `path` in this worker (opened once). */
export function destinationFor(path: string): Destination {
  let dest = destinations.get(path);
  if (dest !== undefined) return dest;
  if (destinations.size === 0) registerHooks();
  dest = path === STDOUT
    ? pino.destination({ fd: 1, sync: false, minLength: 0, maxWrite: PIPE_BUF, periodicFlush: FLUSH_EVERY_MS } as never)
    : pino.destination({ dest: path, sync: false, append: true, minLength: FILE_MIN_LENGTH, periodicFlush: FLUSH_EVERY_MS } as never);
  dest.on('error', (err: Error) => log.error('access log write failed', { path, error: err.message }));
  destinations.set(path, dest);
  return dest;
}

function registerHooks(): void {
  onWorkerReopenLogs(() => {
    for (const [path, dest] of destinations) if (path !== STDOUT) dest.reopen();
  });
  onWorkerDrain(() => Promise.all([...destinations.values()].map(flushed)).then(() => { destinations.clear(); }));
  onWorkerFatal(() => {
    for (const dest of destinations.values()) { try { dest.flushSync(); } catch { /* exiting */ } }
  });
}

/** Writes everything buffered in `dest` and closes it (stdout stays open); the worker exits next. */
function flushed(dest: Destination): Promise<void> {
  return new Promise((resolve) => {
    if ((dest as unknown as { destroyed: boolean }).destroyed) { resolve(); return; }
    dest.once('close', () => resolve());
    dest.once('error', () => resolve());
    dest.end();
  });
}
