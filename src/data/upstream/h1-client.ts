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
// It drives the same handler protocol as undici's dispatch (onConnect / onHeaders /
// onData / onComplete / onError), so UpstreamCall serves both clients. Streamed request
// bodies still go through undici. Request heads arrive as bytes built and checked by
// request-head.ts; this client writes them as they are.
//
// A socket is reused only when it is in sync: a byte outside an exchange (after the last
// response, on an idle socket) or a status outside 100-599 closes it, so one client's
// stray bytes can never become the next client's response.
//
// Stale keep-alive connections: a request sent on a reused connection that closes before
// any response byte arrived is retried once on a new connection, for idempotent methods
// only (what undici and browsers do).
import { connect, type Socket } from 'node:net';
import { createRequire } from 'node:module';
import type { RequestHead } from './request-head.js';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const { HTTPParser } = require('_http_common') as { HTTPParser: any };
const kOnMessageBegin: number = HTTPParser.kOnMessageBegin;
const kOnHeaders: number = HTTPParser.kOnHeaders;
const kOnHeadersComplete: number = HTTPParser.kOnHeadersComplete;
const kOnBody: number = HTTPParser.kOnBody;
const kOnMessageComplete: number = HTTPParser.kOnMessageComplete;
const kOnExecute: number = HTTPParser.kOnExecute;

/** The handler protocol (undici's dispatch handler, legacy callbacks). */
export interface H1Handler {
  onConnect(abort: (err?: Error) => void): void;
  onHeaders(statusCode: number, rawHeaders: string[], resume: () => void, statusText: string): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(trailers: string[] | null): void;
  onError(err: Error): void;
}

export interface H1PoolOptions {
  /** Max sockets to the target. */
  connections: number;
  /** A connection attempt that takes longer fails with UND_ERR_CONNECT_TIMEOUT. */
  connectTimeoutMs: number;
  /** Idle keep-alive sockets are closed after this long. */
  keepAliveTimeoutMs: number;
  /** Requests waiting for a socket beyond this are refused (code LOBBY_UPSTREAM_QUEUE_FULL). */
  maxQueue: number;
  /**
   * Max requests in flight per socket (HTTP/1.1 pipelining), for GET/HEAD without a body
   * only; 1 (the default) = no pipelining. Once every socket is open, a GET/HEAD goes behind
   * the least busy one instead of waiting: fewer syscalls per request on both sides, at the
   * price of head-of-line blocking behind a slow response.
   */
  pipelining?: number;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

function codedError(code: string, message: string): Error & { code: string } {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0; // expected outcomes: no stack capture on the request path
  const err = new Error(message) as Error & { code: string };
  Error.stackTraceLimit = limit;
  err.code = code;
  return err;
}

class Exchange {
  attempts = 0;
  conn: H1Connection | null = null;
  /** Aborted while pipelined behind another response: its response is read and dropped. */
  discarded = false;
  constructor(
    readonly method: string,
    /** The request head, as checked and encoded by request-head.ts. */
    readonly head: RequestHead,
    readonly body: Buffer | null,
    readonly handler: H1Handler,
  ) {}

  /**
   * Aborting the exchange whose response is being read destroys its socket (a half-read
   * response cannot be reused); one still waiting behind it on a pipelined socket is only
   * marked, and its response is read and dropped when it comes.
   */
  abort(): void {
    const conn = this.conn;
    if (conn === null) return;
    if (conn.exchange === this) conn.destroy(null);
    else this.discarded = true;
  }

  get pipelinable(): boolean {
    return this.body === null && (this.method === 'GET' || this.method === 'HEAD');
  }
}

/** Handler of a discarded exchange: the response is parsed (the socket stays in sync) and dropped. */
const DISCARD: H1Handler = {
  onConnect() {},
  onHeaders() { return true; },
  onData() { return true; },
  onComplete() {},
  onError() {},
};

class H1Connection {
  readonly socket: Socket;
  readonly parser = new HTTPParser();
  /**
   * Exchanges written on this socket, in order; responses come back in the same order
   * (HTTP/1.1 pipelining). The head is the one whose response is being read. Without
   * pipelining there is at most one.
   */
  readonly exchanges: Exchange[] = [];
  connected = false;
  closed = false;
  /** Responses completed on this socket (0 = never reused). */
  completed = 0;
  idleSince = 0;
  /** A response byte has been parsed for the current exchange. */
  responseStarted = false;
  keepAlive = true;
  interim = false;
  paused = false;
  /** Inside parser.execute: completing the last exchange waits until the read is parsed. */
  executing = false;
  /** The last exchange in flight completed during this read: its completion (and the
   * socket's release) wait until the rest of the read proved to hold no stray bytes. */
  completedInRead: Exchange | null = null;
  /** A response began with no exchange waiting for it. */
  strayBytes = false;
  readonly resume = (): void => {
    if (this.paused && !this.closed) { this.paused = false; this.socket.resume(); }
  };

  /** The exchange whose response is being read, or null. */
  get exchange(): Exchange | null {
    return this.exchanges.length > 0 ? this.exchanges[0] : null;
  }

  /** Another pipelinable exchange may be written behind the ones in flight. */
  canPipeline(limit: number): boolean {
    const n = this.exchanges.length;
    return n > 0 && n < limit && this.keepAlive && !this.closed && this.exchanges[n - 1].pipelinable;
  }

  constructor(private readonly pool: H1Pool) {
    this.parser.initialize(HTTPParser.RESPONSE, {}, 0, HTTPParser.kLenientNone);
    this.parser[kOnMessageBegin] = this.onMessageBegin;
    this.parser[kOnHeaders] = this.onHeaders;
    this.parser[kOnHeadersComplete] = this.onHeadersComplete;
    this.parser[kOnBody] = this.onBody;
    this.parser[kOnMessageComplete] = this.onMessageComplete;
    this.parser[kOnExecute] = () => {};
    const socket = connect({ host: pool.host, port: pool.port, noDelay: true });
    this.socket = socket;
    // One timer per connection attempt (not per request): a target that never accepts
    // must not hold a pool slot forever.
    const connectTimer = setTimeout(() => {
      this.destroy(codedError('UND_ERR_CONNECT_TIMEOUT', 'connecting to the upstream timed out'));
    }, pool.connectTimeoutMs);
    socket.on('connect', () => {
      clearTimeout(connectTimer);
      this.connected = true;
      for (const ex of this.exchanges.slice()) this.begin(ex);
    });
    socket.on('close', () => clearTimeout(connectTimer));
    socket.on('data', (chunk: Buffer) => this.onSocketData(chunk));
    socket.on('end', () => this.onSocketEnd());
    socket.on('error', (err: Error) => this.destroy(err));
    socket.on('close', () => this.destroy(null));
  }

  /** Starts an exchange on this socket (connected or not yet), behind any in flight. */
  start(ex: Exchange): void {
    if (this.exchanges.length === 0) {
      this.responseStarted = false;
      this.interim = false;
      this.keepAlive = true;
    }
    this.exchanges.push(ex);
    ex.conn = this;
    if (this.connected) this.begin(ex); // otherwise on 'connect'
  }

  private begin(ex: Exchange): void {
    if (ex.conn !== this || this.closed) return; // moved to another socket meanwhile
    ex.handler.onConnect(() => ex.abort());
    if (ex.conn === this && !this.closed) this.write(ex);
  }

  private write(ex: Exchange): void {
    const socket = this.socket;
    if (ex.body === null) {
      socket.write(ex.head, 'latin1'); // a checked byte string: exact (request-head.ts)
      return;
    }
    socket.cork();
    socket.write(ex.head, 'latin1');
    socket.write(ex.body);
    socket.uncork();
  }

  private onSocketData(chunk: Buffer): void {
    if (this.exchanges.length === 0) {
      // Bytes on an idle connection are a protocol error: the socket is not reusable.
      this.destroy(null);
      return;
    }
    this.executing = true;
    const ret = this.parser.execute(chunk);
    this.executing = false;
    const completed = this.completedInRead;
    this.completedInRead = null;
    if (ret instanceof Error || this.strayBytes) {
      const err = ret instanceof Error
        ? codedError((ret as Error & { code?: string }).code ?? 'HPE_INVALID', `invalid upstream response: ${(ret as Error & { reason?: string }).reason ?? ret.message}`)
        : codedError('HPE_DATA_AFTER_RESPONSE', 'upstream sent bytes after the end of its response');
      // The read that completed the last exchange went on past its end: that response is
      // suspect (its client gets 502 unless its answer already went out in full).
      if (completed !== null && !completed.discarded) completed.handler.onError(err);
      this.destroy(err);
      return;
    }
    if (completed !== null) this.complete(completed);
  }

  private onSocketEnd(): void {
    // A close-delimited body ends here; finish() completes it (or reports a truncation).
    if (this.exchange !== null && this.responseStarted) {
      const ret = this.parser.finish();
      if (ret instanceof Error) { this.destroy(codedError('ECONNRESET', 'upstream closed mid-response')); return; }
    }
    this.destroy(null);
  }

  // Parser callbacks (called by llhttp with `this` = the parser; arrow functions keep the connection).
  /** Headers llhttp flushed early (a response with more than 32 header pairs). */
  private flushedHeaders: string[] | null = null;

  private readonly onMessageBegin = (): void => {
    // A response starting while no exchange waits for one is stray (e.g. a second head
    // after a 204, or a body longer than its Content-Length).
    if (this.exchanges.length === 0) this.strayBytes = true;
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
    const ex = this.exchange;
    if (headers === undefined) headers = this.flushedHeaders ?? [];
    this.flushedHeaders = null;
    if (ex === null || this.closed) return 0;
    this.responseStarted = true;
    if (statusCode < 100 || statusCode > 599) {
      this.destroy(codedError('HPE_INVALID_STATUS', `upstream sent status ${statusCode}, outside 100-599`));
      return 0;
    }
    if (statusCode < 200 && statusCode !== 101) { this.interim = true; return 0; }
    if (upgrade || statusCode === 101) {
      this.destroy(codedError('HPE_UNEXPECTED_UPGRADE', 'upstream switched protocols; not supported'));
      return 0;
    }
    this.interim = false;
    this.keepAlive = shouldKeepAlive;
    const handler = ex.discarded ? DISCARD : ex.handler;
    if (!handler.onHeaders(statusCode, headers, this.resume, statusMessage)) this.pause();
    // 1 tells llhttp there is no body to read (HEAD), whatever the headers say.
    return ex.method === 'HEAD' ? 1 : 0;
  };

  private readonly onBody = (chunk: Buffer): void => {
    const ex = this.exchange;
    if (ex === null || this.closed) return;
    if (!(ex.discarded ? DISCARD : ex.handler).onData(chunk)) this.pause();
  };

  private readonly onMessageComplete = (): void => {
    const ex = this.exchange;
    if (ex === null || this.closed) return;
    if (this.interim) { this.interim = false; this.responseStarted = false; return; }
    this.exchanges.shift();
    ex.conn = null;
    this.completed++;
    this.responseStarted = false;
    // The last exchange in flight: finish it once the whole read is parsed (onSocketData),
    // so that the socket goes back to the pool only if nothing followed the response.
    if (this.exchanges.length === 0 && this.executing) { this.completedInRead = ex; return; }
    this.complete(ex);
  };

  /** Hands a finished response to its handler; an idle, in-sync socket goes back to the pool. */
  private complete(ex: Exchange): void {
    if (!ex.discarded) ex.handler.onComplete(null);
    if (!this.keepAlive || this.closed) { this.destroy(null); return; }
    if (this.exchanges.length === 0) this.pool.release(this);
  }

  private pause(): void {
    if (!this.paused) { this.paused = true; this.socket.pause(); }
  }

  /** Closes the socket; the exchange in flight (if any) fails or is retried. */
  destroy(err: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.pool.forget(this);
    const pending = this.exchanges.splice(0);
    for (let i = 0; i < pending.length; i++) {
      const ex = pending[i];
      ex.conn = null;
      if (ex.discarded) continue;
      // Nothing of its response arrived: the head on a reused socket (stale keep-alive), or
      // any exchange pipelined behind it. Idempotent ones are retried once.
      const untouched = i > 0 || (!this.responseStarted && this.completed > 0);
      if (untouched && ex.attempts === 0 && IDEMPOTENT.has(ex.method) && !this.pool.closing) {
        ex.attempts++;
        this.pool.enqueue(ex);
        continue;
      }
      ex.handler.onError(err ?? codedError(this.connected ? 'ECONNRESET' : 'ECONNREFUSED', 'upstream connection closed'));
    }
  }
}

/** A keep-alive pool of HTTP/1.1 connections to one target (`host:port`). */
export class H1Pool {
  readonly host: string;
  readonly port: number;
  private readonly all = new Set<H1Connection>();
  private readonly idle: H1Connection[] = [];
  private readonly queue: Exchange[] = [];
  private queueHead = 0;
  private readonly sweeper: NodeJS.Timeout;
  closing = false;
  readonly connectTimeoutMs: number;
  private readonly pipelining: number;

  constructor(origin: string, private readonly opts: H1PoolOptions) {
    this.connectTimeoutMs = opts.connectTimeoutMs;
    this.pipelining = Math.max(1, opts.pipelining ?? 1);
    const url = new URL(origin);
    this.host = url.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(url.port || 80);
    this.sweeper = setInterval(() => this.sweepIdle(), Math.min(1000, opts.keepAliveTimeoutMs)).unref();
  }

  /**
   * Sends a request. `head` is the request head from request-head.ts `encodeRequestHead`
   * (Host included); a body is sent with its Content-Length, which must be in the head.
   * Hot path: one Exchange object.
   */
  dispatch(method: string, head: RequestHead, body: Buffer | null, handler: H1Handler): void {
    const ex = new Exchange(method, head, body, handler);
    if (this.closing) { handler.onError(codedError('LOBBY_UPSTREAM_CLOSED', 'upstream pool is closed')); return; }
    this.enqueue(ex);
  }

  /** Places an exchange on an idle socket, a new socket, or the bounded queue. */
  enqueue(ex: Exchange): void {
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
      ex.handler.onError(codedError('LOBBY_UPSTREAM_QUEUE_FULL', 'too many requests waiting for an upstream connection'));
      return;
    }
    this.queue.push(ex);
  }

  /** A socket finished a response and may serve the next request. */
  release(conn: H1Connection): void {
    if (this.queueHead < this.queue.length) {
      const next = this.queue[this.queueHead];
      this.queue[this.queueHead++] = undefined as unknown as Exchange;
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
    if (this.queueHead < this.queue.length && !this.closing) {
      const next = this.queue[this.queueHead];
      this.queue[this.queueHead++] = undefined as unknown as Exchange;
      this.enqueue(next);
    } else if (this.closing && this.all.size === 0) {
      clearInterval(this.sweeper);
    }
  }

  private leastBusyPipelinable(): H1Connection | null {
    let best: H1Connection | null = null;
    for (const conn of this.all) {
      if (conn.connected && conn.canPipeline(this.pipelining) && (best === null || conn.exchanges.length < best.exchanges.length)) best = conn;
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
