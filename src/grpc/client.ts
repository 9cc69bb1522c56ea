// The gRPC upstream client on the dispatch shape (src/data/upstream/dispatch.ts), written on
// node:http2 (the gRPC over HTTP/2 protocol, grpc/grpc doc/PROTOCOL-HTTP2.md): one HTTP/2
// session per target per worker, shared across generations while the target's settings
// stay, raw request and response messages (the transcoder encodes and decodes), every call
// a server-streaming call (a unary call is the same bytes on the wire: one request message,
// at most one response).
//
// Why not @grpc/grpc-js for the data plane: its call stack (interceptors, filters, Metadata
// objects, a resolving/load-balancing call per call) cost about 120-160 µs of CPU per unary
// call over the same node:http2 session this client uses directly (docs/grpc.md#speed).
// grpc-js stays for server reflection (reflection.ts) and the demo / test servers.
//
// How a call maps onto the handler, so upstream policies (issue 14's breakers, retries)
// wrap gRPC services unchanged:
//   onResponseStart(200, initial metadata)   with the first response message, or
//   onResponseStart(HTTP status of the gRPC status, initial metadata)  for an error before one;
//   onResponseData(message) per message;
//   onResponseEnd(trailers)  with `grpc-status`, `grpc-message` and the rest of the trailers:
//     a server's grpc-message as the bytes it percent-encoded (a Buffer, decoded once here;
//     text only where it goes into JSON), the client's own message as a string.
// Every failure is a gRPC status, as grpc-js reported it (onResponseError is never called): a
// connect failure, a dead session or a refused stream is UNAVAILABLE (a 503 to a breaker), a
// deadline DEADLINE_EXCEEDED, an answer that is not gRPC the status the mapping doc gives.
// A breaker thus reads an UNAVAILABLE before any message as a 503; retries decide on the
// gRPC status itself (runtime.ts GrpcCall, through retry.ts's retryDelay).
//
// Sessions: calls go on the first open session of the target with a free stream under the
// peer's SETTINGS_MAX_CONCURRENT_STREAMS; when all are full another session is opened, up to
// MAX_SESSIONS per target; past that, calls wait in nghttp2's queue of the least loaded
// session, up to MAX_QUEUED_PER_SESSION each, and beyond it fail UNAVAILABLE at once (the
// retry policy may send them to another target). A session that closes, errs or gets a
// GOAWAY takes no new calls; its calls in flight fail UNAVAILABLE (those it finishes after a
// graceful GOAWAY complete), and the next call opens a new session. There is one connect
// attempt at a time per target (calls made meanwhile wait on it), no reconnect backoff and
// no keepalive pings.
import { performance } from 'node:perf_hooks';
import type * as grpcTypes from '@grpc/grpc-js';
import type * as http2Types from 'node:http2';
import { isIP } from 'node:net';
import { lazily } from '../shared/lazy-require.js';
import { logRequestFault } from '../data/faults.js';
import { firedLate } from '../data/deadlines.js';
import type { DispatchController, DispatchFn, DispatchHandler, DispatchOptions, HeaderField } from '../data/upstream/dispatch.js';
import type { CompiledGrpcService } from './compiled.js';
import { GRPC_CODE, httpStatusOf } from './status.js';
import { decodeGrpcMessage } from './percent.js';
import { isBinaryMetadataValue, isCustomMetadata } from './metadata.js';

/** grpc-js, for what still uses it (reflection.ts, demo-service.ts); loaded on first use. */
export const grpc = lazily<typeof grpcTypes>('@grpc/grpc-js');
const http2 = lazily<typeof http2Types>('node:http2');

/** What the transcoder adds to the dispatch options for a gRPC call. */
export interface GrpcDispatchOptions extends DispatchOptions {
  /** Absolute grpc deadline (Date.now() ms; sent as grpc-timeout), or 0 for none. */
  readonly deadline: number;
}

/** The largest response message taken (grpc-js's `grpc.max_receive_message_length` before). */
export const MAX_RECEIVE_BYTES = 64 * 1024 * 1024;
/** Sessions per target at most (each to the peer's max concurrent streams). */
export const MAX_SESSIONS = 4;
/** Calls past a full session's stream limit that nghttp2 may hold for a free stream. */
export const MAX_QUEUED_PER_SESSION = 1024;
/** Streams a session opens before it is drained for a new one (stream ids end at 2^31). */
const STREAMS_PER_SESSION = 1 << 30;
/** Before a first session's SETTINGS arrive nghttp2 assumes 100 (Node's peerMaxConcurrentStreams). */
const ASSUMED_STREAM_LIMIT = 100;
/** Request messages larger than this are written as prefix + message (no copy), else one buffer. */
const COPY_BODY_BYTES = 64 * 1024;

// HTTP/2 error codes (RFC 9113 §7).
const NO_ERROR = 0;
const REFUSED_STREAM = 7;
const CANCEL = 8;
const ENHANCE_YOUR_CALM = 0xb;
const INADEQUATE_SECURITY = 0xc;

const USER_AGENT = 'lobby-grpc/0.1';
// Constant request options, read (and copied) by Node. The priority fields are Node's defaults
// given here so request() only checks them: setting them on its copy of the options cost
// about 5 µs of CPU per call (measured, client CPU per unary call 56-66 → 49-59 µs).
const REQUEST_OPTIONS: http2Types.ClientSessionRequestOptions & { silent: boolean } = { endStream: false, weight: 16, parent: 0, exclusive: false, silent: false };
const CONNECT_SETTINGS: http2Types.Settings = { enablePush: false };
/** The grpc-message of a status sent without one (shared: nobody writes into it). */
const NO_MESSAGE = Buffer.alloc(0);

/** `grpc-timeout` for `ms` left: at most 8 digits, the finest unit that fits (as grpc-js). */
export function grpcTimeout(ms: number): string {
  const m = Math.max(Math.ceil(ms), 1);
  if (m < 1e8) return `${m}m`;
  if (m / 1000 < 1e8) return `${Math.ceil(m / 1000)}S`;
  if (m / 60_000 < 1e8) return `${Math.ceil(m / 60_000)}M`;
  return `${Math.min(Math.ceil(m / 3_600_000), 99_999_999)}H`;
}

/** The gRPC status of an HTTP status, for responses without grpc-status (doc/http-grpc-status-mapping.md). */
export function grpcCodeOfHttpStatus(status: number): number {
  switch (status) {
    case 400: return GRPC_CODE.INTERNAL;
    case 401: return GRPC_CODE.UNAUTHENTICATED;
    case 403: return GRPC_CODE.PERMISSION_DENIED;
    case 404: return GRPC_CODE.UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return GRPC_CODE.UNAVAILABLE;
    default: return GRPC_CODE.UNKNOWN;
  }
}

/** The gRPC status of a RST_STREAM the server sent (PROTOCOL-HTTP2.md "Errors"). */
export function grpcCodeOfRstStream(code: number): number {
  switch (code) {
    case CANCEL: return GRPC_CODE.CANCELLED;
    case REFUSED_STREAM: return GRPC_CODE.UNAVAILABLE;
    case ENHANCE_YOUR_CALM: return GRPC_CODE.RESOURCE_EXHAUSTED;
    case INADEQUATE_SECURITY: return GRPC_CODE.PERMISSION_DENIED;
    default: return GRPC_CODE.INTERNAL;
  }
}

/** Response metadata from Node's raw header list: pseudo-headers and the protocol's own
 * headers left out, -bin values decoded (comma-joined duplicates split, as the spec says).
 * Text values stay byte strings (node:http2 reads them as latin1). */
function pushMetadata(raw: readonly string[], out: HeaderField[], skipStatus: boolean): HeaderField[] {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.charCodeAt(0) === 0x3a /* : */ || name === 'content-type' || name === 'grpc-encoding' || name === 'grpc-accept-encoding') continue;
    if (skipStatus && (name === 'grpc-status' || name === 'grpc-message')) continue;
    const value = raw[i + 1];
    if (name.endsWith('-bin')) {
      // A part that is not base64 as the spec allows it is left out (Node's decoder would
      // skip what it cannot read and hand on other bytes).
      for (const part of value.split(',')) {
        const b64 = part.trim();
        if (isBinaryMetadataValue(b64)) out.push(name, Buffer.from(b64, 'base64'));
      }
    } else {
      out.push(name, value);
    }
  }
  return out;
}

function rawValue(raw: readonly string[], lower: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i] === lower) return raw[i + 1];
  return undefined;
}

// --- sessions ---------------------------------------------------------------------------

interface Session {
  readonly h2: http2Types.ClientHttp2Session;
  /** Streams opened and not closed (nghttp2's queued ones included). */
  active: number;
  opened: number;
  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS. */
  limit: number;
  /** false once it closed, erred or got a GOAWAY: no new calls. */
  open: boolean;
}

/** A target's sessions in one worker (what a grpc-js channel was). */
class Target {
  readonly sessions: Session[] = [];
  closed = false;
  /** Sessions opened so far (tests read it through grpcSessionCounts). */
  sessionsOpened = 0;
  /** The peer's last SETTINGS_MAX_CONCURRENT_STREAMS: what a new session assumes until its own
   * SETTINGS arrive (else a burst would all go on the new session, past the peer's limit). */
  private streamLimit = ASSUMED_STREAM_LIMIT;
  private readonly url: string;
  private readonly connectOptions: http2Types.SecureClientSessionOptions;
  readonly scheme: string;

  constructor(readonly key: string, readonly authority: string, tls: CompiledGrpcService['tls']) {
    this.scheme = tls === null ? 'http' : 'https';
    this.url = `${this.scheme}://${authority}`;
    const options: http2Types.SecureClientSessionOptions = { settings: CONNECT_SETTINGS };
    if (tls !== null) {
      if (tls.caPem !== null) options.ca = tls.caPem;
      if (tls.serverName !== null) options.servername = tls.serverName;
      else {
        // Node sends no SNI for an IP literal; the certificate is checked against the host.
        const host = authority.startsWith('[') ? authority.slice(1, authority.indexOf(']')) : authority.slice(0, authority.lastIndexOf(':'));
        if (isIP(host) === 0) options.servername = host;
      }
    }
    this.connectOptions = options;
  }

  /** The session a new call goes on, or null: every session is full past its queue. */
  session(): Session | null {
    const list = this.sessions;
    let least: Session | null = null;
    for (let i = 0; i < list.length; i++) {
      const s = list[i];
      if (!s.open) continue;
      if (s.active < s.limit) return s;
      if (least === null || s.active < least.active) least = s;
    }
    // Only when every open session is full (a connecting one assumes the peer's last limit).
    if (list.length < MAX_SESSIONS) return this.connect();
    return least !== null && least.active < least.limit + MAX_QUEUED_PER_SESSION ? least : null;
  }

  private connect(): Session {
    // nghttp2 holds streams past peerMaxConcurrentStreams until the peer's SETTINGS say more:
    // the limit the target last told, so a burst on a new session does not overrun it.
    const h2 = http2().connect(this.url, { ...this.connectOptions, peerMaxConcurrentStreams: Math.min(this.streamLimit, 0xffffffff) });
    const s: Session = { h2, active: 0, opened: 0, limit: this.streamLimit, open: true };
    this.sessionsOpened++;
    this.sessions.push(s);
    const retire = () => this.retire(s);
    h2.on('error', retire); // ECONNREFUSED, TLS failures, protocol errors: its streams fail too
    h2.on('goaway', retire);
    h2.on('close', retire);
    h2.on('remoteSettings', (settings: http2Types.Settings) => { s.limit = this.streamLimit = settings.maxConcurrentStreams ?? 0xffffffff; });
    h2.on('frameError', () => { /* the stream's close event reports it */ });
    // An idle session does not keep a worker's loop alive (grpc-js's channels neither).
    h2.unref();
    return s;
  }

  /** The session takes no new calls; the ones it has finish or fail on their own. */
  retire(s: Session): void {
    if (!s.open) return;
    s.open = false;
    const i = this.sessions.indexOf(s);
    if (i >= 0) this.sessions.splice(i, 1);
    if (s.active === 0 && !s.h2.closed) s.h2.close();
  }

  close(): void {
    this.closed = true;
    for (const s of this.sessions.slice()) { this.retire(s); if (!s.h2.closed) s.h2.close(); }
  }
}

const targets = new Map<string, Target>();

function channelKey(address: string, tls: CompiledGrpcService['tls']): string {
  return tls === null ? `h2c:${address}` : `tls:${address}:${tls.serverName ?? ''}:${tls.caPem ?? ''}`;
}

function targetOf(address: string, tls: CompiledGrpcService['tls']): Target {
  const key = channelKey(address, tls);
  let t = targets.get(key);
  if (t === undefined) { t = new Target(key, address, tls); targets.set(key, t); }
  return t;
}

/** The pool key of a target (GET /upstreams, and which sessions a generation keeps). */
export function grpcPoolKey(address: string, tls: CompiledGrpcService['tls']): string {
  return `grpc:${channelKey(address, tls)}`;
}

/** Closes the sessions no live generation uses (called with the keys the live ones use);
 * their calls in flight finish first (a graceful close). */
export function closeUnusedChannels(used: ReadonlySet<string>): void {
  for (const [key, t] of targets) {
    if (!used.has(`grpc:${key}`)) { t.close(); targets.delete(key); }
  }
}

/** Sessions this worker opened to a target so far, and how many are open (tests). */
export function grpcSessionCounts(address: string, tls: CompiledGrpcService['tls']): { opened: number; open: number } {
  const t = targets.get(channelKey(address, tls));
  return { opened: t?.sessionsOpened ?? 0, open: t?.sessions.length ?? 0 };
}

// --- calls ------------------------------------------------------------------------------

const kCall = Symbol('grpcCall');
type CallStream = http2Types.ClientHttp2Stream & { [kCall]: ClientCall };

/**
 * One call: its controller, the response parser and the stream's listeners' state. The
 * listeners are shared functions reading the call from the stream (no closures per call).
 */
class ClientCall implements DispatchController {
  stream: CallStream | null = null;
  session: Session | null = null;
  done = false;
  /** onResponseStart was called. */
  private started = false;
  private initial: HeaderField[] = [];
  timer: NodeJS.Timeout | null = null;
  // The length-prefixed message being read: its 5-byte prefix (so far) and its bytes.
  private prefixLen = 0;
  private flag = 0;
  private length = 0;
  private message: Buffer | null = null;
  private filled = 0;

  constructor(readonly handler: DispatchHandler, readonly deadline: number) {}

  abort(): void {
    if (this.done) return;
    this.done = true;
    this.clearTimer();
    this.cancelStream();
  }
  pause(): void { this.stream?.pause(); }
  resume(): void { this.stream?.resume(); }
  get aborted(): boolean { return this.done; }
  get paused(): boolean { return this.stream?.isPaused() ?? false; }

  private clearTimer(): void {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
  }

  cancelStream(): void {
    const s = this.stream;
    if (s !== null && !s.closed && !s.destroyed) s.close(CANCEL);
  }

  /** The call ends with a status of the client's making (no trailers from the server). */
  fail(code: number, message: string): void {
    this.finish(code, message, null);
  }

  /** The call ends: onResponseStart if nothing was started, then onResponseEnd. `message`:
   * the client's own text, or the server's grpc-message as its bytes (decodeGrpcMessage). */
  finish(code: number, message: string | Buffer, raw: readonly string[] | null): void {
    if (this.done) return;
    this.done = true;
    this.clearTimer();
    const h = this.handler;
    if (!this.started) { this.started = true; h.onResponseStart?.(this, httpStatusOf(code), this.initial, ''); }
    const trailers: HeaderField[] = ['grpc-status', String(code), 'grpc-message', message];
    h.onResponseEnd?.(this, raw === null ? trailers : pushMetadata(raw, trailers, true));
  }

  /** The HEADERS of the response: initial metadata, or a whole answer (trailers-only, not gRPC). */
  onHeaders(headers: http2Types.IncomingHttpHeaders & http2Types.IncomingHttpStatusHeader, raw: readonly string[]): void {
    if (this.done) return;
    const status = headers[':status'] ?? 0;
    if (headers['grpc-status'] !== undefined) {
      // Trailers-only (an immediate error), whatever :status says: grpc-status must be used.
      // Its metadata are trailers, not initial metadata (as grpc-js reported them).
      this.onTrailers(raw);
      return;
    }
    const type = headers['content-type'];
    if (status !== 200) {
      this.fail(grpcCodeOfHttpStatus(status), `the upstream answered HTTP status ${status} without a grpc-status`);
    } else if (typeof type !== 'string' || !type.startsWith('application/grpc')) {
      this.fail(GRPC_CODE.UNKNOWN, `the upstream answered with content-type ${JSON.stringify(type ?? '')}, not application/grpc`);
    } else {
      this.initial = pushMetadata(raw, [], false);
      return;
    }
    this.cancelStream();
  }

  /** DATA: length-prefixed messages, split over chunks or several in one. */
  onData(chunk: Buffer): void {
    let off = 0;
    const end = chunk.length;
    while (off < end && !this.done) {
      if (this.message === null) {
        // Hot path: a whole prefix and message inside this chunk go out as a view of it.
        if (this.prefixLen === 0 && end - off >= 5) {
          this.flag = chunk[off];
          this.length = chunk.readUInt32BE(off + 1);
          off += 5;
        } else {
          const b = chunk[off++];
          if (this.prefixLen === 0) this.flag = b;
          else this.length = this.length * 256 + b;
          if (++this.prefixLen < 5) continue;
        }
        this.prefixLen = 0;
        if (!this.checkPrefix()) return;
        if (end - off >= this.length) {
          const message = chunk.subarray(off, off + this.length);
          off += this.length;
          this.length = 0;
          this.deliver(message);
          continue;
        }
        this.message = Buffer.allocUnsafe(this.length);
        this.filled = 0;
      }
      const take = Math.min(end - off, this.message.length - this.filled);
      chunk.copy(this.message, this.filled, off, off + take);
      this.filled += take;
      off += take;
      if (this.filled === this.message.length) {
        const message = this.message;
        this.message = null;
        this.length = 0;
        this.deliver(message);
      }
    }
  }

  private checkPrefix(): boolean {
    if (this.flag !== 0) {
      // No grpc-accept-encoding is sent, so a compressed message was never negotiated.
      this.fail(GRPC_CODE.INTERNAL, this.flag === 1 ? 'the upstream sent a compressed message, which was not negotiated' : `the upstream sent a message with compressed-flag ${this.flag}`);
    } else if (this.length > MAX_RECEIVE_BYTES) {
      this.fail(GRPC_CODE.RESOURCE_EXHAUSTED, `the upstream sent a message larger than the maximum (${this.length} vs ${MAX_RECEIVE_BYTES} bytes)`);
    } else {
      return true;
    }
    this.cancelStream();
    return false;
  }

  private deliver(message: Buffer): void {
    const h = this.handler;
    if (!this.started) { this.started = true; h.onResponseStart?.(this, 200, this.initial, 'OK'); }
    if (!this.done) h.onResponseData?.(this, message);
  }

  /** Trailers (or trailers-only headers): the call's status. */
  onTrailers(raw: readonly string[]): void {
    if (this.done) return;
    const text = rawValue(raw, 'grpc-status');
    const message = rawValue(raw, 'grpc-message');
    if (text === undefined) {
      this.finish(GRPC_CODE.UNKNOWN, 'the upstream sent trailers without grpc-status', raw);
      return;
    }
    const code = /^\d{1,9}$/.test(text) ? Number(text) : GRPC_CODE.UNKNOWN;
    if (code === GRPC_CODE.OK && (this.message !== null || this.prefixLen !== 0)) {
      this.finish(GRPC_CODE.INTERNAL, 'the upstream ended the stream inside a message', raw);
      return;
    }
    this.finish(code, message === undefined ? NO_MESSAGE : decodeGrpcMessage(message), raw);
  }

  /** The stream closed before a status arrived. */
  onClose(stream: CallStream): void {
    const s = this.session;
    if (s !== null) {
      s.active--;
      if (!s.open && s.active === 0 && !s.h2.closed) s.h2.close();
    }
    if (this.done) return;
    if (s === null || s.h2.destroyed) {
      this.fail(GRPC_CODE.UNAVAILABLE, 'the upstream connection failed or closed');
      return;
    }
    const rst = stream.rstCode ?? NO_ERROR;
    if (rst === NO_ERROR) { this.fail(GRPC_CODE.INTERNAL, 'the upstream ended the stream without trailers'); return; }
    let code = grpcCodeOfRstStream(rst);
    // The spec: a CANCELLED past the deadline is the deadline's.
    if (code === GRPC_CODE.CANCELLED && this.deadline !== 0 && Date.now() >= this.deadline) code = GRPC_CODE.DEADLINE_EXCEEDED;
    this.fail(code, `the upstream reset the stream (HTTP/2 error ${rst})`);
  }

  /** A throw from a handler inside an http2 callback: logged, the call ended, the worker on. */
  fault(err: unknown): void {
    logRequestFault(null, err);
    this.done = true;
    this.clearTimer();
    this.cancelStream();
  }
}

// The stream's listeners: one function each for every call, `this` the stream.
function onStreamResponse(this: CallStream, headers: http2Types.IncomingHttpHeaders & http2Types.IncomingHttpStatusHeader, _flags: number, raw: string[]): void {
  const call = this[kCall];
  try { call.onHeaders(headers, raw); } catch (err) { call.fault(err); }
}
function onStreamData(this: CallStream, chunk: Buffer): void {
  const call = this[kCall];
  if (call.done) return;
  try { call.onData(chunk); } catch (err) { call.fault(err); }
}
function onStreamTrailers(this: CallStream, _headers: unknown, _flags: number, raw: string[]): void {
  const call = this[kCall];
  try { call.onTrailers(raw); } catch (err) { call.fault(err); }
}
function onStreamClose(this: CallStream): void {
  const call = this[kCall];
  try { call.onClose(this); } catch (err) { call.fault(err); }
}
function onStreamError(): void { /* the close event carries it (rstCode, the session's state) */ }

function onDeadline(call: ClientCall, armedAt: number, ms: number): void {
  call.timer = null;
  if (call.done) return;
  // Fired stall-late (src/data/deadlines.ts firedLate): the answer may be waiting in this
  // turn's poll phase; it gets that turn before the call is called late.
  if (armedAt !== 0 && firedLate(armedAt, ms)) { setImmediate(onDeadline, call, 0, 0); return; }
  try {
    call.cancelStream();
    call.fail(GRPC_CODE.DEADLINE_EXCEEDED, 'Deadline exceeded');
  } catch (err) { call.fault(err); }
}

/** A failure before anything was sent, told on the next tick (never inside dispatch()). */
function failLater(call: ClientCall, code: number, message: string): void {
  process.nextTick(() => {
    try { call.fail(code, message); } catch (err) { call.fault(err); }
  });
}

/** The dispatch function of one gRPC target (both of its UpstreamTarget clients). */
export function grpcDispatch(address: string, tls: CompiledGrpcService['tls']): DispatchFn {
  let target = targetOf(address, tls);
  return (options, handler) => {
    const o = options as GrpcDispatchOptions;
    // A target closed by closeUnusedChannels is made again for a generation still using it.
    if (target.closed) target = targetOf(address, tls);
    const call = new ClientCall(handler, o.deadline);
    handler.onRequestStart?.(call, null);
    if (call.done) return; // aborted at once
    let timeout: string | undefined;
    if (o.deadline > 0) {
      const ms = o.deadline - Date.now();
      if (ms <= 0) { failLater(call, GRPC_CODE.DEADLINE_EXCEEDED, 'Deadline exceeded'); return; }
      timeout = grpcTimeout(ms);
      call.timer = setTimeout(onDeadline, ms, call, performance.now(), ms);
    }
    const session = target.session();
    if (session === null) { failLater(call, GRPC_CODE.UNAVAILABLE, 'too many calls in flight to the upstream'); return; }
    // One object literal, the same keys in the same order every call (one hidden class);
    // grpc-timeout right after the pseudo-headers, as the spec asks. Node skips undefined.
    const headers: http2Types.OutgoingHttpHeaders = {
      ':method': 'POST', ':scheme': target.scheme, ':path': o.path, ':authority': target.authority,
      'grpc-timeout': timeout, 'content-type': 'application/grpc', te: 'trailers', 'user-agent': USER_AGENT,
    };
    const md = o.headers;
    for (let i = 0; i < md.length; i += 2) {
      const name = md[i];
      const value = md[i + 1];
      // The one check of the metadata's bytes (runtime.ts only picks the allowlisted headers).
      if (!isCustomMetadata(name, value)) continue;
      // Own keys only: an allowlisted name like `constructor` must not read Object.prototype's.
      const prev = Object.hasOwn(headers, name) ? headers[name] : undefined;
      headers[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value];
    }
    let stream: CallStream;
    try {
      stream = session.h2.request(headers, REQUEST_OPTIONS) as CallStream;
    } catch {
      // No stream was opened. Either the session went away between its events (GOAWAY,
      // destroyed), or Node refused these headers (a name it allows once, such as
      // `authorization`, sent twice by the client): only the first retires the session.
      const h2 = session.h2;
      if (h2.destroyed || h2.closed) {
        target.retire(session);
        failLater(call, GRPC_CODE.UNAVAILABLE, 'the upstream connection closed');
      } else {
        failLater(call, GRPC_CODE.INTERNAL, 'the request metadata cannot be sent');
      }
      return;
    }
    session.active++;
    if (++session.opened >= STREAMS_PER_SESSION) target.retire(session);
    call.session = session;
    call.stream = stream;
    stream[kCall] = call;
    stream.on('response', onStreamResponse);
    stream.on('data', onStreamData);
    stream.on('trailers', onStreamTrailers);
    stream.on('close', onStreamClose);
    stream.on('error', onStreamError);
    const body = o.body as Buffer;
    const prefix = Buffer.allocUnsafe(body.length <= COPY_BODY_BYTES ? 5 + body.length : 5);
    prefix[0] = 0;
    prefix.writeUInt32BE(body.length, 1);
    // Prefix and message in one write with END_STREAM: one DATA frame for a small message.
    if (body.length <= COPY_BODY_BYTES) { body.copy(prefix, 5); stream.end(prefix); }
    else { stream.write(prefix); stream.end(body); }
  };
}
