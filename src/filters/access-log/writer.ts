// Where access-log lines go, per worker: one pino destination (a sonic-boom) per path, opened
// on first use and kept across generations. Writes are asynchronous and buffered: a line is
// appended to the destination's buffer (no syscall on the request path), which writes whenever
// the previous write finished and at least minLength bytes wait, and at least every second.
// Each write holds whole lines (sonic-boom never splits one), so the workers' lines never
// interleave: a file is opened O_APPEND, and stdout writes stay within PIPE_BUF (4096 bytes,
// atomic on a pipe).
//
// Lines are gathered here before they reach sonic-boom, encoded into a byte batch of whole
// lines: sonic-boom's string write() measures the byte length of its whole pending chunk on
// every call (12 % of a request's CPU with a 60 KB buffer, `--cpu-prof`), and a string batch
// is converted again by fs.write; a byte batch (sonic-boom's buffer mode) is written as it is.
// A batch goes out when the next line might not fit (PIPE_BUF for stdout, so each write is
// atomic on a pipe; FILE_BATCH_BYTES for a file: one write syscall per ~70 lines), and at least
// every second.
//
// SIGUSR1 (the control plane relays it as `reopen-logs`) reopens every file, for logrotate;
// a drain flushes every destination before the worker exits, so no line is lost.
import { pino } from 'pino';
import { log } from '../../shared/log.js';
import { onWorkerDrain, onWorkerFatal, onWorkerReopenLogs } from '../../data/worker-hooks.js';
import { STDOUT } from './compile.js';

type Destination = ReturnType<typeof pino.destination>;

const PIPE_BUF = 4096;
const FILE_BATCH_BYTES = 32 * 1024;
const FLUSH_EVERY_MS = 1000;

/** One path's lines: the batch being gathered (bytes), and the sonic-boom it goes to. */
export class LineSink {
  private batch: Buffer;
  private used = 0;
  constructor(readonly dest: Destination, private readonly maxBatchBytes: number) {
    this.batch = Buffer.allocUnsafe(maxBatchBytes);
  }

  /** Appends one whole line (with its newline) as UTF-8. A line that does not fit the batch
   * flushes it first; a line longer than a whole batch goes out alone. */
  write(line: string): void {
    // A char is at most 3 UTF-8 bytes (a surrogate pair, 2 chars, is 4).
    if (this.used + line.length * 3 > this.maxBatchBytes) {
      this.flush();
      if (line.length * 3 > this.maxBatchBytes) { this.dest.write(Buffer.from(line, 'utf8') as never); return; }
    }
    // utf8Write is what Buffer#write calls after parsing its arguments (a third of its cost).
    this.used += (this.batch as unknown as { utf8Write(s: string, offset: number): number }).utf8Write(line, this.used);
  }

  /** Hands the batch to sonic-boom, which writes it asynchronously (the next batch is a new
   * buffer: the write holds this one). */
  flush(): void {
    if (this.used === 0) return;
    const full = this.batch.subarray(0, this.used);
    this.batch = Buffer.allocUnsafe(this.maxBatchBytes);
    this.used = 0;
    this.dest.write(full as never);
  }
}

const destinations = new Map<string, LineSink>();
let flushTimer: NodeJS.Timeout | null = null;

/** The sink of `path` in this worker (opened once). */
export function destinationFor(path: string): LineSink {
  let sink = destinations.get(path);
  if (sink !== undefined) return sink;
  if (destinations.size === 0) registerHooks();
  // minLength 0: sonic-boom writes a batch as soon as the previous write finished.
  const dest = path === STDOUT
    ? pino.destination({ fd: 1, sync: false, minLength: 0, maxWrite: PIPE_BUF, contentMode: 'buffer' } as never)
    : pino.destination({ dest: path, sync: false, append: true, minLength: 0, maxWrite: FILE_BATCH_BYTES, contentMode: 'buffer' } as never);
  dest.on('error', (err: Error) => log.error('access log write failed', { path, error: err.message }));
  sink = new LineSink(dest, path === STDOUT ? PIPE_BUF : FILE_BATCH_BYTES);
  destinations.set(path, sink);
  flushTimer ??= setInterval(flushAll, FLUSH_EVERY_MS).unref();
  return sink;
}

function flushAll(): void {
  for (const sink of destinations.values()) sink.flush();
}

function registerHooks(): void {
  onWorkerReopenLogs(() => {
    for (const [path, sink] of destinations) {
      sink.flush();
      if (path !== STDOUT) sink.dest.reopen();
    }
  });
  onWorkerDrain(() => {
    flushAll();
    if (flushTimer !== null) { clearInterval(flushTimer); flushTimer = null; }
    return Promise.all([...destinations.values()].map((sink) => flushed(sink.dest))).then(() => { destinations.clear(); });
  });
  onWorkerFatal(() => {
    for (const sink of destinations.values()) { try { sink.flush(); sink.dest.flushSync(); } catch { /* exiting */ } }
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
