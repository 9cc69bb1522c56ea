// The application log: pino, one JSON object per line on stderr, in pino's shape (numeric
// `level`, epoch-ms `time`, `pid`, `hostname`, `msg`) so pino-pretty and log shippers that
// expect pino read every line. A data-plane worker's lines also carry `worker` (its index);
// the control plane's carry `plane: "control"`.
//
// Synchronous writes to fd 2 on purpose: these lines are rare (faults, config changes,
// never one per request: the access log is src/filters/access-log/), a worker writes fd 2
// itself (no hop through the main thread's process.stderr), and a line written just before
// a crash is not lost.
import { hostname } from 'node:os';
import { isMainThread, workerData } from 'node:worker_threads';
import { pino } from 'pino';

type Level = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: readonly string[] = ['debug', 'info', 'warn', 'error'];
const wanted = process.env.LOBBY_LOG_LEVEL ?? 'info';

/** pino's numeric levels (what `level` holds in a line). */
export const LOG_LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const;

/** The fields every line of this thread carries besides pino's own. */
function threadBindings(): Record<string, unknown> {
  const index = (workerData as { workerIndex?: unknown } | null)?.workerIndex;
  if (!isMainThread && typeof index === 'number') return { worker: index };
  return isMainThread ? { plane: 'control' } : {};
}

const logger = pino(
  { level: LEVELS.includes(wanted) ? wanted : 'info', base: { pid: process.pid, hostname: hostname(), ...threadBindings() } },
  pino.destination({ fd: 2, sync: true }),
);

function write(level: Level, msg: string, fields?: Record<string, unknown>): void {
  if (fields === undefined) logger[level](msg);
  else logger[level](fields, msg);
}

export const log = {
  debug: (msg: string, fields?: Record<string, unknown>) => write('debug', msg, fields),
  info: (msg: string, fields?: Record<string, unknown>) => write('info', msg, fields),
  warn: (msg: string, fields?: Record<string, unknown>) => write('warn', msg, fields),
  error: (msg: string, fields?: Record<string, unknown>) => write('error', msg, fields),
};
