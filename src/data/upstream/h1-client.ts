// A purpose-built HTTP/1.1 upstream client: the fast path for requests without a streamed
// body (GET/HEAD/DELETE and small buffered bodies), which is nearly all API traffic.
//
// Why not undici here: undici's general machinery (Request objects, header validation,
// kQueue/kResume scheduling, stream plumbing) costs several µs of CPU per request, more than
// everything else the gateway does (docs/performance.md). This client keeps only what a
// reverse proxy needs: a keep-alive pool of sockets per target, one pre-assembled request
// string per request, and Node's own llhttp parser (the `_http_common` HTTPParser that
// node:http uses), so response framing is exactly as strict as node:http's: ambiguous
// lengths, bad chunking, obs-fold and bare LF are parse errors, not guesses.
//
// It is one of the two clients behind the dispatch shape (dispatch.ts: undici's handler
// API, flat raw headers, coded UpstreamErrors); streamed request bodies go through undici.
// Request heads arrive as bytes built and checked by request-head.ts; this client writes
// them as they are.
//
// A socket is reused only when it is in sync: a byte outside a request (after the last
// response, on an idle socket) or a status outside 100-599 closes it, so one client's
// stray bytes can never become the next client's response.
//
// It never retries by itself. A request that met a stale keep-alive connection (a reused
// socket that closed before any byte of the response, or a request pipelined behind one
// that failed) fails with `stale_connection`: it was not processed, and the
// stale-connection interceptor (interceptors.ts) decides whether to send it again.
import { performance } from 'node:perf_hooks';
import { connect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { createRequire } from 'node:module';
import type { UpstreamErrorCode } from '../../shared/errors.js';
import { upstreamError, type DispatchController, type DispatchHandler, type DispatchOptions } from './dispatch.js';
import { firedLate } from '../deadlines.js';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const { HTTPParser } = require('_http_common') as { HTTPParser: any };
const kOnMessageBegin: number = HTTPParser.kOnMessageBegin;
const kOnHeaders: number = HTTPParser.kOnHeaders;
const kOnHeadersComplete: number = HTTPParser.kOnHeadersComplete;
const kOnBody: number = HTTPParser.kOnBody;
const kOnMessageComplete: number = HTTPParser.kOnMessageComplete;
const kOnExecute: number = HTTPParser.kOnExecute;

// Reads land in one buffer per worker (net's `onread` option), not in a fresh Buffer pushed
// through a Readable per read: the parser copies what it keeps (header strings, body
// chunks), so the next read may overwrite it. Reads are sequential on the worker's thread.
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

// Request heads are written straight to the socket's handle, the way net's own
// writeGeneric does it but without the Writable machinery around it (write -> _write ->
// writeOrBuffer -> writeGeneric: about 1 µs a request). One WriteWrap serves every write
// that completes at once (nearly all on a keep-alive socket); a write that the kernel
// could not take whole keeps its WriteWrap until it completes, and the next write gets a
// new one. Node 20 only exposes WriteWrap through process.binding('stream_wrap'); where it
// is missing, socket.write is used.
interface StreamHandle {
  writeLatin1String(req: object, data: string): number;
}
interface WriteWrapLike {
  handle: StreamHandle | null;
  oncomplete: (status: number) => void;
  async: boolean;
  bytes: number;
  buffer: null;
  conn: H1Connection | null;
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const streamWrap = (() => { try { return (process as any).binding('stream_wrap'); } catch { return null; } })() as
  { WriteWrap: new () => WriteWrapLike; streamBaseState: Int32Array; kLastWriteWasAsync: number } | null;
const kLastWriteWasAsync = streamWrap?.kLastWriteWasAsync ?? -1;
let sharedWriteReq: WriteWrapLike | null = null;
function onDirectWriteComplete(this: WriteWrapLike, status: number): void {
  const conn = this.conn;
  this.conn = null;
  if (status < 0 && conn !== null) conn.destroy(null);
}
function newWriteReq(): WriteWrapLike {
  const req = new streamWrap!.WriteWrap();
  req.handle = null;
  req.oncomplete = onDirectWriteComplete;
  req.async = false;
  req.bytes = 0;
  req.buffer = null;
  req.conn = null;
  return req;
}

export interface H1PoolOptions {
  /** Max sockets to the target. */
  connections: number;
  /** A connection attempt that takes longer fails with `connect_timeout`. */
  connectTimeoutMs: number;
  /** Idle keep-alive sockets are closed after this long. */
  keepAliveTimeoutMs: number;
  /** Requests waiting for a socket beyond this are refused (`queue_full`). */
  maxQueue: number;
  /**
   * Max requests in flight per socket (HTTP/1.1 pipelining), for GET/HEAD without a body
   * only; 1 (the default) = no pipelining. Once every socket is open, a GET/HEAD goes behind
   * the least busy one instead of waiting: fewer syscalls per request on both sides, at the
   * price of head-of-line blocking behind a slow response.
   */
  pipelining?: number;
  /** https:// target: connect with TLS (verification on unless rejectUnauthorized is false). */
  tls?: UpstreamTlsOptions | null;
}

export type UpstreamTlsOptions = Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'passphrase' | 'servername' | 'rejectUnauthorized'>;

/** The socket to a target: plain TCP, or TLS (HTTP/1.1 by ALPN); `ready` is the event after which requests may be written. */
function openSocket(pool: H1Pool, onData: (chunk: Uint8Array) => void): { socket: Socket; ready: 'connect' | 'secureConnect' } {
  if (pool.tls === null) {
    const socket = connect({
      host: pool.host, port: pool.port, noDelay: true,
      onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => { onData(buf.subarray(0, n)); return true; } },
    });
    return { socket, ready: 'connect' };
  }
  // TLS sockets read through their own stream (net's onread is for plain sockets).
  const socket = tlsConnect({
    host: pool.host, port: pool.port, ALPNProtocols: ['http/1.1'],
    servername: isIP(pool.host) === 0 ? pool.host : undefined, ...pool.tls,
  });
  socket.setNoDelay(true);
  socket.on('data', onData);
  return { socket, ready: 'secureConnect' };
}

/**
 * One request on this client; it is also the request's dispatch controller (no extra
 * object per request).
 */
class H1Request implements DispatchController {
  conn: H1Connection | null = null;
  /** Aborted while queued or pipelined behind another response: never started, or its
   * response is read and dropped (the socket stays in sync). */
  discarded = false;
  aborted = false;
  paused = false;
  constructor(
    readonly opts: DispatchOptions,
    readonly handler: DispatchHandler,
  ) {}

  get method(): string {
    return this.opts.method;
  }

  /**
   * Aborting the request whose response is being read destroys its socket (a half-read
   * response cannot be reused); one queued or waiting behind it on a pipelined socket is
   * only marked.
   */
  abort(_reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    const conn = this.conn;
    if (conn !== null && conn.current === this) conn.destroy(null);
    else this.discarded = true;
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    if (this.conn !== null && this.conn.current === this) this.conn.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.conn !== null && this.conn.current === this) this.conn.resume();
  }

  get pipelinable(): boolean {
    return this.opts.body === null && (this.opts.method === 'GET' || this.opts.method === 'HEAD');
  }

  /** Reports a failure to the handler (once; an aborted request is not told). */
  fail(code: UpstreamErrorCode, message: string): void {
    if (this.aborted) return;
    this.aborted = true;
    this.handler.onResponseError?.(this, upstreamError(code, message));
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function closeParser(parser: any): void {
  parser.unconsume(); // a no-op unless it consumed the socket's handle
  parser.close();
}

class H1Connection {
  readonly socket: Socket;
  readonly parser = new HTTPParser();
  /**
   * Exchanges written on this socket, in order; responses come back in the same order
   * (HTTP/1.1 pipelining). The head is the one whose response is being read. Without
   * pipelining there is at most one.
   */
  readonly requests: H1Request[] = [];
  connected = false;
  closed = false;
  /** Responses completed on this socket (0 = never reused). */
  completed = 0;
  idleSince = 0;
  /** A response byte has been parsed for the current request. */
  responseStarted = false;
  keepAlive = true;
  interim = false;
  paused = false;
  /** Inside parser.execute: completing the last request waits until the read is parsed. */
  executing = false;
  /** The last request in flight completed during this read: its completion (and the
   * socket's release) wait until the rest of the read proved to hold no stray bytes. */
  completedInRead: H1Request | null = null;
  /** A response began with no request waiting for it. */
  strayBytes = false;
  /** The request whose response is being read, or null. */
  get current(): H1Request | null {
    return this.requests.length > 0 ? this.requests[0] : null;
  }

  /** Another pipelinable request may be written behind the ones in flight. */
  canPipeline(limit: number): boolean {
    const n = this.requests.length;
    return n > 0 && n < limit && this.keepAlive && !this.closed && this.requests[n - 1].pipelinable;
  }

  resume(): void {
    if (this.paused && !this.closed) { this.paused = false; this.socket.resume(); }
  }

  constructor(private readonly pool: H1Pool) {
    this.parser.initialize(HTTPParser.RESPONSE, {}, 0, HTTPParser.kLenientNone);
    this.parser[kOnMessageBegin] = this.onMessageBegin;
    this.parser[kOnHeaders] = this.onHeaders;
    this.parser[kOnHeadersComplete] = this.onHeadersComplete;
    this.parser[kOnBody] = this.onBody;
    this.parser[kOnMessageComplete] = this.onMessageComplete;
    this.parser[kOnExecute] = () => {};
    const { socket, ready } = openSocket(pool, (chunk) => this.onSocketData(chunk));
    this.socket = socket;
    // One timer per connection attempt (not per request): a target that never accepts
    // must not hold a pool slot forever.
    const armedAt = performance.now();
    const connectTimer = setTimeout(() => {
      // Fired stall-late (deadlines.ts firedLate): the connect may be waiting in this turn's
      // poll phase; it gets that turn before the attempt is called timed out.
      if (!firedLate(armedAt, pool.connectTimeoutMs)) this.destroy('connect_timeout');
      else setImmediate(() => { if (!this.connected) this.destroy('connect_timeout'); });
    }, pool.connectTimeoutMs);
    socket.on(ready, () => {
      clearTimeout(connectTimer);
      this.connected = true;
      this.consumeHandle();
      for (const ex of this.requests.slice()) this.begin(ex);
    });
    socket.on('close', () => clearTimeout(connectTimer));
    socket.on('end', () => this.onSocketEnd());
    socket.on('error', () => this.destroy(null));
    socket.on('close', () => this.destroy(null));
  }

  /** Starts a request on this socket (connected or not yet), behind any in flight. */
  start(ex: H1Request): void {
    if (this.requests.length === 0) {
      this.responseStarted = false;
      this.interim = false;
      this.keepAlive = true;
    }
    this.requests.push(ex);
    ex.conn = this;
    if (this.connected) this.begin(ex); // otherwise on 'connect'
  }

  private begin(ex: H1Request): void {
    if (ex.conn !== this || this.closed) return; // moved to another socket meanwhile
    ex.handler.onRequestStart?.(ex, null);
    if (ex.conn === this && !this.closed && !ex.aborted) this.write(ex);
  }

  private write(ex: H1Request): void {
    const socket = this.socket;
    const { head, body } = ex.opts;
    if (body === null) {
      // A checked byte string (request-head.ts): 'latin1' writes exactly its bytes.
      const handle = (socket as unknown as { _handle: StreamHandle | null })._handle;
      if (streamWrap !== null && handle !== null && this.pool.tls === null && socket.writableLength === 0) {
        const req = sharedWriteReq ??= newWriteReq();
        req.handle = handle;
        req.conn = this;
        const err = handle.writeLatin1String(req, head!);
        if (streamWrap.streamBaseState[kLastWriteWasAsync] !== 0) sharedWriteReq = null; // in use until oncomplete
        else req.conn = null;
        if (err !== 0) this.destroy(null);
        return;
      }
      socket.write(head!, 'latin1');
      return;
    }
    socket.cork();
    socket.write(head!, 'latin1');
    socket.write(body as Buffer);
    socket.uncork();
  }

  private onSocketData(chunk: Uint8Array): void {
    if (this.requests.length === 0) {
      // Bytes on an idle connection are a protocol error: the socket is not reusable.
      this.destroy('bad_response');
      return;
    }
    this.executing = true;
    const ret = this.parser.execute(chunk);
    this.executing = false;
    this.afterRead(ret);
  }

  /**
   * Plain sockets: the parser reads the socket's handle itself (llhttp's consume(), as
   * node:http's server does), so a read goes from libuv into the parser in C++ with no JS
   * in between (no onStreamRead, no view of the read buffer, no execute() call); onExecute
   * ends each read. Every parser callback then runs inside a read, so `executing` stays set.
   */
  private consumeHandle(): void {
    const handle = (this.socket as unknown as { _handle: { isStreamBase?: boolean } | null })._handle;
    if (this.pool.tls !== null || handle === null || handle.isStreamBase !== true) return;
    this.parser[kOnExecute] = this.onExecute;
    this.parser.consume(handle);
    this.executing = true;
  }

  private readonly onExecute = (ret: number | Error): void => {
    // A byte on an idle connection starts a message with no request (onMessageBegin) or
    // fails to parse: either way afterRead closes the socket.
    this.afterRead(ret);
  };

  /** After a read is parsed: a parse error or stray bytes close the socket; the last
   * request completed in the read finishes now. */
  private afterRead(ret: number | Error): void {
    const completed = this.completedInRead;
    this.completedInRead = null;
    if (ret instanceof Error || this.strayBytes) {
      const message = ret instanceof Error
        ? `invalid upstream response: ${(ret as Error & { reason?: string }).reason ?? ret.message}`
        : 'upstream sent bytes after the end of its response';
      // The read that completed the last request went on past its end: that response is
      // suspect (its client gets 502 unless its answer already went out in full).
      if (completed !== null && !completed.discarded) completed.fail('bad_response', message);
      this.destroy('bad_response', message);
      return;
    }
    if (completed !== null) this.complete(completed);
  }

  private onSocketEnd(): void {
    if (this.closed) return;
    // A close-delimited body ends here; finish() completes it (or reports a truncation).
    if (this.current !== null && this.responseStarted) {
      const ret = this.parser.finish();
      if (ret instanceof Error) { this.destroy('reset', 'upstream closed mid-response'); return; }
      const completed = this.completedInRead; // deferred when the parser consumes the handle
      this.completedInRead = null;
      if (completed !== null) this.complete(completed);
    }
    this.destroy(null);
  }

  // Parser callbacks (called by llhttp with `this` = the parser; arrow functions keep the connection).
  /** Headers llhttp flushed early (a response with more than 32 header pairs). */
  private flushedHeaders: string[] | null = null;

  private readonly onMessageBegin = (): void => {
    // A response starting while no request waits for one is stray (e.g. a second head
    // after a 204, or a body longer than its Content-Length).
    if (this.requests.length === 0) this.strayBytes = true;
  };

  private readonly onHeaders = (headers: string[]): void => {
    // Only called for responses with many headers; onHeadersComplete then gets none.
    if (this.flushedHeaders === null) this.flushedHeaders = headers.slice();
    else for (const h of headers) this.flushedHeaders.push(h);
  };

  private readonly onHeadersComplete = (
    _maj: number, _min: number, headers: string[], _method: unknown, _url: unknown,
    statusCode: number, statusMessage: string, upgrade: boolean, shouldKeepAlive: boolean,
  ): number => {
    const ex = this.current;
    if (headers === undefined) headers = this.flushedHeaders ?? [];
    this.flushedHeaders = null;
    if (ex === null || this.closed) return 0;
    this.responseStarted = true;
    if (statusCode < 100 || statusCode > 599) {
      this.destroy('bad_response', `upstream sent status ${statusCode}, outside 100-599`);
      return 0;
    }
    if (statusCode < 200 && statusCode !== 101) { this.interim = true; return 0; }
    if (upgrade || statusCode === 101) {
      this.destroy('bad_response', 'upstream switched protocols; not supported');
      return 0;
    }
    this.interim = false;
    this.keepAlive = shouldKeepAlive;
    if (!ex.discarded) {
      ex.handler.onResponseStart?.(ex, statusCode, headers, statusMessage);
      if (ex.paused) this.pause();
    }
    // 1 tells llhttp there is no body to read (HEAD), whatever the headers say.
    return ex.method === 'HEAD' ? 1 : 0;
  };

  private readonly onBody = (chunk: Buffer): void => {
    const ex = this.current;
    if (ex === null || this.closed || ex.discarded) return;
    ex.handler.onResponseData?.(ex, chunk);
    if (ex.paused) this.pause();
  };

  private readonly onMessageComplete = (): void => {
    const ex = this.current;
    if (ex === null || this.closed) return;
    if (this.interim) { this.interim = false; this.responseStarted = false; return; }
    this.requests.shift();
    ex.conn = null;
    this.completed++;
    this.responseStarted = false;
    // The last request in flight: finish it once the whole read is parsed (onSocketData),
    // so that the socket goes back to the pool only if nothing followed the response.
    if (this.requests.length === 0 && this.executing) { this.completedInRead = ex; return; }
    this.complete(ex);
  };

  /** Hands a finished response to its handler; an idle, in-sync socket goes back to the pool. */
  private complete(ex: H1Request): void {
    if (!ex.discarded) { ex.aborted = true; ex.handler.onResponseEnd?.(ex, null); }
    if (!this.keepAlive || this.closed) { this.destroy(null); return; }
    if (this.requests.length === 0) this.pool.release(this);
  }

  pause(): void {
    if (!this.paused) { this.paused = true; this.socket.pause(); }
  }

  /**
   * Closes the socket. Every request on it fails: with `code` when given, else by what it
   * met: `connect_failed` before the connection was up, `stale_connection` when nothing of
   * its response arrived on a reused socket (or it was pipelined behind the one read),
   * `reset` otherwise.
   */
  destroy(code: UpstreamErrorCode | null, message = 'upstream connection closed'): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    // The native parser holds its JS object (and through its callbacks this connection and
    // its socket) until close(): without it every connection ever opened stays in memory
    // (1 GB in 20 s against an upstream that refuses connections). Closed once the stack
    // has unwound, as node:http does: destroy() may run inside one of its callbacks.
    setImmediate(closeParser, this.parser);
    this.pool.forget(this);
    const pending = this.requests.splice(0);
    for (let i = 0; i < pending.length; i++) {
      const ex = pending[i];
      ex.conn = null;
      if (ex.discarded) continue;
      const untouched = i > 0 || (!this.responseStarted && this.completed > 0);
      const met: UpstreamErrorCode = !this.connected ? 'connect_failed' : untouched ? 'stale_connection' : 'reset';
      ex.fail(code !== null && (i === 0 || code === 'connect_timeout' || code === 'connect_failed') ? code : met, message);
    }
  }
}

/** A keep-alive pool of HTTP/1.1 connections to one target (`host:port`). */
export class H1Pool {
  readonly host: string;
  readonly port: number;
  private readonly all = new Set<H1Connection>();
  private readonly idle: H1Connection[] = [];
  private readonly queue: H1Request[] = [];
  private queueHead = 0;
  private readonly sweeper: NodeJS.Timeout;
  closing = false;
  readonly connectTimeoutMs: number;
  private readonly pipelining: number;
  readonly tls: UpstreamTlsOptions | null;

  constructor(origin: string, private readonly opts: H1PoolOptions) {
    this.connectTimeoutMs = opts.connectTimeoutMs;
    this.tls = opts.tls ?? null;
    this.pipelining = Math.max(1, opts.pipelining ?? 1);
    const url = new URL(origin);
    this.host = url.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    this.sweeper = setInterval(() => this.sweepIdle(), Math.min(1000, opts.keepAliveTimeoutMs)).unref();
  }

  /**
   * Sends a request (the dispatch shape, dispatch.ts). `options.head` is the request head
   * from request-head.ts `encodeRequestHead` (Host included); a buffered body is sent with
   * its Content-Length, which must be in the head. Hot path: one H1Request object.
   */
  readonly dispatch = (options: DispatchOptions, handler: DispatchHandler): void => {
    const ex = new H1Request(options, handler);
    if (this.closing) { ex.fail('pool_closed', 'upstream pool is closed'); return; }
    this.enqueue(ex);
  };

  /** Open sockets, idle ones among them, and requests waiting for one (GET /upstreams). */
  stats(): { connections: number; idle: number; queued: number } {
    return { connections: this.all.size, idle: this.idle.length, queued: this.queue.length - this.queueHead };
  }

  /** Places a request on an idle socket, a new socket, or the bounded queue. */
  enqueue(ex: H1Request): void {
    const conn = this.idle.pop();
    if (conn !== undefined) { conn.start(ex); return; }
    if (this.all.size < this.opts.connections) {
      const fresh = new H1Connection(this);
      this.all.add(fresh);
      fresh.start(ex);
      return;
    }
    if (this.pipelining > 1 && ex.pipelinable) {
      const busy = this.leastBusyPipelinable();
      if (busy !== null) { busy.start(ex); return; }
    }
    if (this.queue.length - this.queueHead >= this.opts.maxQueue) {
      ex.fail('queue_full', 'too many requests waiting for an upstream connection');
      return;
    }
    this.queue.push(ex);
  }

  /** A socket finished a response and may serve the next request. */
  release(conn: H1Connection): void {
    this.skipDiscarded();
    if (this.queueHead < this.queue.length) {
      const next = this.queue[this.queueHead];
      this.queue[this.queueHead++] = undefined as unknown as H1Request;
      if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
        this.queue.splice(0, this.queueHead);
        this.queueHead = 0;
      }
      conn.start(next);
      return;
    }
    if (this.closing) { conn.destroy(null); return; }
    conn.idleSince = performance.now();
    this.idle.push(conn);
  }

  /** A socket closed: drop it, and open a replacement if requests are waiting. */
  forget(conn: H1Connection): void {
    this.all.delete(conn);
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    this.skipDiscarded();
    if (this.queueHead < this.queue.length && !this.closing) {
      const next = this.queue[this.queueHead];
      this.queue[this.queueHead++] = undefined as unknown as H1Request;
      this.enqueue(next);
    } else if (this.closing && this.all.size === 0) {
      clearInterval(this.sweeper);
    }
  }

  /** Queued requests aborted before they got a socket are dropped, never sent. */
  private skipDiscarded(): void {
    while (this.queueHead < this.queue.length && this.queue[this.queueHead].discarded) {
      this.queue[this.queueHead++] = undefined as unknown as H1Request;
    }
  }

  private leastBusyPipelinable(): H1Connection | null {
    let best: H1Connection | null = null;
    for (const conn of this.all) {
      if (conn.connected && conn.canPipeline(this.pipelining) && (best === null || conn.requests.length < best.requests.length)) best = conn;
    }
    return best;
  }

  private sweepIdle(): void {
    const cutoff = performance.now() - this.opts.keepAliveTimeoutMs;
    for (let i = this.idle.length - 1; i >= 0; i--) {
      if (this.idle[i].idleSince < cutoff) this.idle[i].destroy(null);
    }
  }

  get size(): number {
    return this.all.size;
  }

  /** Graceful close: requests in flight finish; idle sockets close now, busy ones after. */
  close(): Promise<void> {
    this.closing = true;
    for (const conn of [...this.idle]) conn.destroy(null);
    return new Promise((resolve) => {
      const check = () => {
        if (this.all.size === 0) { clearInterval(this.sweeper); resolve(); return; }
        setTimeout(check, 50).unref();
      };
      check();
    });
  }
}
