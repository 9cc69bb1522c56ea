// Where access-log lines go, per worker: one pino destination (a sonic-boom) per path, opened
// on first use and kept across generations. Writes are asynchronous and buffered: a line is
// appended to the destination's buffer (no syscall on the request path), which writes whenever
// the previous write finished and at least minLength bytes wait, and at least every second.
// Each write holds whole lines (sonic-boom never splits one), so the workers' lines never
// interleave: a file is opened O_APPEND, and stdout writes stay within PIPE_BUF (4096 bytes,
// atomic on a pipe).
//
// Lines are gathered here before they reach sonic-boom, in batches of whole lines: sonic-boom's
// write() measures the byte length of its whole last pending chunk on every call, which made a
// line cost O(buffer) (12 % of a request's CPU with a 60 KB buffer, `--cpu-prof`); a batch
// costs that once. A batch goes out when the next line would not fit (PIPE_BUF for stdout,
// FILE_BATCH_BYTES for a file: one write syscall per ~35 lines), and at least every second.
//
// SIGUSR1 (the control plane relays it as `reopen-logs`) reopens every file, for logrotate;
// a drain flushes every destination before the worker exits, so no line is lost.
import { pino } from 'pino';
import { log } from '../../shared/log.js';
import { onWorkerDrain, onWorkerFatal, onWorkerReopenLogs } from '../../data/worker-hooks.js';
import { STDOUT } from './compile.js';

type Destination = ReturnType<typeof pino.destination>;

const PIPE_BUF = 4096;
const FILE_BATCH_BYTES = 16 * 1024;
const FLUSH_EVERY_MS = 1000;
const NOT_ASCII = /[^\x00-\x7f]/;

/** One path's lines: the batch being gathered, and the sonic-boom it goes to. */
export class LineSink {
  private batch = '';
  private batchBytes = 0;
  /** `exactBytes`: count a line's UTF-8 bytes (stdout, where a write must stay within
   * PIPE_BUF to be atomic); otherwise its length in chars (a file: sonic-boom never splits a
   * batch, and maxWrite leaves room for 3 bytes a char). */
  constructor(readonly dest: Destination, private readonly maxBatchBytes: number, private readonly exactBytes: boolean) {}

  /** Appends one whole line (with its newline). */
  write(line: string): void {
    const bytes = this.exactBytes && NOT_ASCII.test(line) ? Buffer.byteLength(line) : line.length;
    if (this.batchBytes + bytes > this.maxBatchBytes) this.flush();
    this.batch += line;
    this.batchBytes += bytes;
  }

  /** Hands the batch to sonic-boom (which writes it asynchronously). */
  flush(): void {
    if (this.batchBytes === 0) return;
    const batch = this.batch;
    this.batch = '';
    this.batchBytes = 0;
    this.dest.write(batch);
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
    ? pino.destination({ fd: 1, sync: false, minLength: 0, maxWrite: PIPE_BUF } as never)
    : pino.destination({ dest: path, sync: false, append: true, minLength: 0, maxWrite: 3 * FILE_BATCH_BYTES } as never);
  dest.on('error', (err: Error) => log.error('access log write failed', { path, error: err.message }));
  sink = new LineSink(dest, path === STDOUT ? PIPE_BUF : FILE_BATCH_BYTES, path === STDOUT);
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
