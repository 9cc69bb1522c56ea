// Where access-log lines go, per worker: one pino destination (a sonic-boom) per path, opened
// on first use and kept across generations. Writes are asynchronous and buffered: a line is
// appended to the destination's buffer (no syscall on the request path), which writes whenever
// the previous write finished and at least minLength bytes wait, and at least every second.
// Each write holds whole lines (sonic-boom never splits one), so the workers' lines never
// interleave: a file is opened O_APPEND, and stdout writes stay within PIPE_BUF (4096 bytes,
// atomic on a pipe).
//
// Lines are gathered here before they reach sonic-boom, written piece by piece into a byte
// batch of whole lines: sonic-boom's string write() measures the byte length of its whole
// pending chunk on every call (12 % of a request's CPU with a 60 KB buffer, `--cpu-prof`), and
// a string batch is converted again by fs.write; a byte batch (sonic-boom's buffer mode) is
// written as it is.
// A batch goes out when the next line might not fit (PIPE_BUF for stdout, so each write is
// atomic on a pipe; FILE_BATCH_BYTES for a file: one write syscall per ~70 lines), and at least
// every second.
//
// SIGUSR1 (the control plane relays it as `reopen-logs`) reopens every file, for logrotate;
// a drain flushes every destination before the worker exits, so no line is lost.
import { pino } from 'pino';
import { log } from '../../shared/log.js';
import { onWorkerDrain, onWorkerFatal, onWorkerReopenLogs } from '../../data/worker-hooks.js';
import { STDOUT } from './fields.js';

type Destination = ReturnType<typeof pino.destination>;

const PIPE_BUF = 4096;
const FILE_BATCH_BYTES = 32 * 1024;
const FLUSH_EVERY_MS = 1000;

const HEX = '0123456789abcdef';

/**
 * One path's lines: the batch being gathered (bytes), and the sonic-boom it goes to. A line is
 * written straight into the batch, piece by piece (begin, the pieces, end): no string is built
 * per line, so a request's line allocates nothing (strings cost the concatenations, the
 * flattening and a UTF-8 encode, and the garbage shows up as scavenges under load).
 */
export class LineSink {
  private batch: Buffer;
  private used = 0;
  /** The batch is a one-off buffer for one line larger than a batch: it goes out alone. */
  private oneOff = false;
  /** Where the line being written began (end() takes back a line that outgrew its estimate). */
  private lineStart = 0;
  constructor(readonly dest: Destination, private readonly maxBatchBytes: number) {
    this.batch = Buffer.allocUnsafe(maxBatchBytes);
  }

  /** Makes room for a line of at most `max` bytes: flushes the batch when the line might not
   * fit, and gives a line longer than a whole batch a buffer of its own. */
  begin(max: number): void {
    if (this.used + max > this.batch.length) {
      this.flush();
      if (max > this.maxBatchBytes) { this.batch = Buffer.allocUnsafe(max); this.oneOff = true; }
    }
    this.lineStart = this.used;
  }

  /** Ends the line (its newline). A line that outgrew its estimate lost the bytes past the
   * batch (typed-array writes out of range are dropped): it is taken back whole and the
   * caller's fault is reported, never a truncated line written. */
  end(): void {
    if (this.used >= this.batch.length) {
      this.used = this.lineStart;
      throw new Error('access-log line longer than its size estimate: dropped');
    }
    this.batch[this.used++] = 0x0a;
    if (this.oneOff) this.flush();
  }

  /** Constant bytes (a field's key, the line's prefix). */
  raw(bytes: Uint8Array): void {
    const batch = this.batch;
    let at = this.used;
    for (let i = 0; i < bytes.length; i++) batch[at++] = bytes[i];
    this.used = at;
  }

  /** A non-negative integer below 2^53, in decimal (anything else as JSON.stringify has it). */
  uint(n: number): void {
    if (!(n >= 0 && n <= Number.MAX_SAFE_INTEGER && Math.floor(n) === n)) { this.text(JSON.stringify(n)); return; }
    const batch = this.batch;
    let digits = 1;
    for (let p = 10; p <= n; p *= 10) digits++;
    let at = this.used + digits;
    this.used = at;
    do {
      const q = Math.floor(n / 10);
      batch[--at] = 0x30 + (n - q * 10);
      n = q;
    } while (n > 0);
  }

  /** Milliseconds with microsecond precision (`1.05` -> `1.050`), as a JSON number. */
  millis(value: number): void {
    const us = Math.round(value * 1000);
    if (!(us >= 0 && us < 0x7fffffff)) { this.text(JSON.stringify(us / 1000)); return; }
    const whole = (us / 1000) | 0;
    const frac = us - whole * 1000;
    this.uint(whole);
    const batch = this.batch;
    batch[this.used] = 0x2e;
    batch[this.used + 1] = 0x30 + ((frac / 100) | 0);
    batch[this.used + 2] = 0x30 + (((frac / 10) | 0) % 10);
    batch[this.used + 3] = 0x30 + (frac % 10);
    this.used += 4;
  }

  /**
   * A string's JSON form without its quotes, byte for byte what JSON.stringify writes: `"`,
   * `\\` and controls escaped (short forms where JSON has them), other characters as UTF-8,
   * and a lone surrogate as `\\uXXXX`. At most 6 bytes per UTF-16 unit.
   */
  text(s: string): void {
    const batch = this.batch;
    let at = this.used;
    for (let i = 0; i < s.length; i++) {
      let c = s.charCodeAt(i);
      if (c >= 0x20 && c < 0x7f) {
        if (c === 0x22 || c === 0x5c) batch[at++] = 0x5c;
        batch[at++] = c;
      } else if (c < 0x20 || c === 0x7f) {
        if (c === 0x7f) { batch[at++] = c; continue; }
        batch[at++] = 0x5c;
        switch (c) {
          case 0x08: batch[at++] = 0x62; break;
          case 0x09: batch[at++] = 0x74; break;
          case 0x0a: batch[at++] = 0x6e; break;
          case 0x0c: batch[at++] = 0x66; break;
          case 0x0d: batch[at++] = 0x72; break;
          default: at = unicodeEscape(batch, at, c);
        }
      } else if (c < 0x800) {
        batch[at++] = 0xc0 | (c >> 6);
        batch[at++] = 0x80 | (c & 0x3f);
      } else if (c >= 0xd800 && c <= 0xdfff) {
        const next = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
          i++;
          batch[at++] = 0xf0 | (c >> 18);
          batch[at++] = 0x80 | ((c >> 12) & 0x3f);
          batch[at++] = 0x80 | ((c >> 6) & 0x3f);
          batch[at++] = 0x80 | (c & 0x3f);
        } else {
          batch[at++] = 0x5c;
          at = unicodeEscape(batch, at, c);
        }
      } else {
        batch[at++] = 0xe0 | (c >> 12);
        batch[at++] = 0x80 | ((c >> 6) & 0x3f);
        batch[at++] = 0x80 | (c & 0x3f);
      }
    }
    this.used = at;
  }

  /** Hands the batch to sonic-boom, which writes it asynchronously (the next batch is a new
   * buffer: the write holds this one). */
  flush(): void {
    if (this.used === 0) return;
    const full = this.batch.subarray(0, this.used);
    this.batch = Buffer.allocUnsafe(this.maxBatchBytes);
    this.used = 0;
    this.oneOff = false;
    this.dest.write(full as never);
  }
}

/** `uXXXX` (the backslash is written by the caller). */
function unicodeEscape(batch: Buffer, at: number, c: number): number {
  batch[at++] = 0x75;
  batch[at++] = HEX.charCodeAt(c >> 12);
  batch[at++] = HEX.charCodeAt((c >> 8) & 15);
  batch[at++] = HEX.charCodeAt((c >> 4) & 15);
  batch[at++] = HEX.charCodeAt(c & 15);
  return at;
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
