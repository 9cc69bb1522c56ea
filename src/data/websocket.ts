// WebSocket proxying (docs/websocket.md). An upgrade request is an exchange like any other
// until the upstream accepts it: uWS's upgrade handler (server.ts) takes it through the front
// door, routing and the route's filter chain, so auth, rate limits and IP rules refuse it with
// their usual HTTP answers before anything is upgraded. On a route with `websocket`, forward()
// hands it to the route's hook here, which checks the upgrade (version, Origin, the route's
// connection cap), opens a WebSocket to a target with `ws` (the client's subprotocols and
// permessage-deflate offer, its end-to-end headers, the gateway's forwarding headers and the
// correlation id), and only once the upstream said 101 upgrades the client, with the
// upstream's subprotocol. A refused or failed handshake is a local reply (the upstream's
// 4xx/5xx, 502, 503, 504) on the still-HTTP connection.
//
// Then the exchange relays messages both ways until one side closes, and ends (its onEnd
// filters: the access log's line, the metrics) when the connection does.
//   - Messages are relayed whole: uWS and ws both hand over complete messages, so a fragmented
//     message arrives at the other side as one message with the same payload.
//   - Close codes and reasons are relayed as they came; an upstream gone without a close frame
//     closes the client with 1001 (its TCP connection closed) or 1011 (an error; 1009 for a
//     message over the route's limit); a client gone without one closes the upstream with 1001.
//   - Pings are relayed both ways; each side's pongs are answered where the ping arrived (uWS
//     and ws answer them themselves), a client's unsolicited pong is relayed upstream.
//   - Backpressure: an upstream that sends faster than the client reads is paused (ws.pause)
//     while the client's buffer is over max_buffered_bytes and resumed when it drained to half.
//     This uWS build cannot stop reading a client, so a client message that arrives while the
//     upstream's send buffer is over max_buffered_bytes closes the connection with 1013.
import { performance } from 'node:perf_hooks';
import { randomFillSync } from 'node:crypto';
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { WebSocket as UpstreamSocket } from 'ws';
import { uWS, type HttpRequest, type SocketContext, type WebSocket as ClientSocket, type WebSocketBehavior } from './uws.js';
import {
  CLOSED_BY, PHASE, RESPONSE_FLAG, type RequestContext, type RuntimeTarget, type UpstreamLeg, type WebSocketHook, type WebSocketLeg,
} from './request-context.js';
import { GW_ERR, type GatewayErrorSpec } from '../shared/errors.js';
import { isSendable } from './upstream/request-head.js';
import { pushForwardingHeaders } from './upstream/proxy.js';
import { endExchange, lowerEquals, sendLocalReply, writeUpgrade } from './exchange.js';
import { coarseNow, forEachOpen } from './deadlines.js';
import { logRequestFault } from './faults.js';
import { lazily } from '../shared/lazy-require.js';
import { WS_MESSAGE_CEILING, type CompiledWebSocket } from '../shared/websocket-config.js';
import { WS_SLOT } from '../shared/metrics-layout.js';
import type { UpstreamTlsOptions } from './upstream/h1-client.js';
import { CORRELATION_HEADER } from './correlation-id.js';

const wsPackage = lazily<typeof import('ws')>('ws');

const HANDSHAKE = 0, OPEN = 1, CLOSED = 2;

// --- masks ----------------------------------------------------------------------------------
// A client's frames are masked. ws draws each mask with randomFillSync (a call into OpenSSL per
// frame); these come from a pool filled 1 KiB at a time. A mask is never all zeros: ws would
// then send the payload unmasked and unmerged, a view of uWS's message memory that uWS frees
// when the message handler returns; a non-zero mask makes ws copy it into the frame.
const maskPool = Buffer.allocUnsafe(1024);
let maskAt = maskPool.length;
function generateMask(mask: Buffer): void {
  if (maskAt === maskPool.length) { randomFillSync(maskPool); maskAt = 0; }
  mask[0] = maskPool[maskAt] | 1; // never zero
  mask[1] = maskPool[maskAt + 1];
  mask[2] = maskPool[maskAt + 2];
  mask[3] = maskPool[maskAt + 3];
  maskAt += 4;
}

// --- the worker's connections ----------------------------------------------------------------

/** Open connections (and handshakes in progress) by route name in this worker, across
 * generations: what `max_connections` counts. */
const openByRoute = new Map<string, number>();
/** Upstream sockets whose close has not finished: a drain waits for them too. */
let upstreamsClosing = 0;
/** The worker is draining: a handshake that completes now is closed with 1001 at once. */
let draining = false;

/** Upstream WebSocket connections not yet closed (a drain waits for their close handshakes). */
export function openUpstreamSockets(): number {
  return upstreamsClosing;
}

/** Drain: every open connection is closed with 1001 (both sides), handshakes that complete later too. */
export function shutdownWebSockets(): void {
  draining = true;
  forEachOpen((ctx) => {
    const x = ctx.websocket;
    if (x instanceof WebSocketExchange && x.state === OPEN) {
      ctx.responseFlags |= RESPONSE_FLAG.DRAINED;
      x.closeByGateway(1001, 'gateway shutting down');
    }
  });
}

// --- close codes ----------------------------------------------------------------------------

/** Codes an endpoint may put in a close frame (RFC 6455 §7.4; ws refuses the others). */
function isSendableCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** The close code an upstream error becomes on the client's side. */
function clientCodeOfError(err: Error & { code?: string }): number {
  switch (err.code) {
    case 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH': return 1009;
    case 'WS_ERR_INVALID_UTF8': return 1007;
    default: return 1011;
  }
}

// --- handshake --------------------------------------------------------------------------------

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The client's Sec-WebSocket-Protocol offer as a list, or null when it is not a list of distinct tokens. */
function offeredProtocols(header: string): string[] | null {
  if (header === '') return [];
  const out: string[] = [];
  for (const raw of header.split(',')) {
    const p = raw.trim();
    if (!TOKEN.test(p) || out.includes(p)) return null;
    out.push(p);
  }
  return out;
}

/** The request's Origin when it is allowed (no Origin is: only browsers send one, and they always do). */
function originAllowed(headers: readonly string[], origins: readonly string[]): boolean {
  let origin: string | null = null;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'origin') continue;
    if (origin !== null) return false; // two Origins: neither is believed
    origin = headers[i + 1];
  }
  return origin === null || origins.includes(origin.toLowerCase());
}

/** Upstream 101 headers not relayed: the handshake's own (uWS writes the client's), hop-by-hop ones, Date. */
function isHandshakeHeader(name: string): boolean {
  if (name.length > 14 && lowerEquals(name.slice(0, 14), 'sec-websocket-')) return true;
  switch (name.length) {
    case 2: return lowerEquals(name, 'te');
    case 4: return lowerEquals(name, 'date');
    case 7: return lowerEquals(name, 'upgrade') || lowerEquals(name, 'trailer');
    case 10: return lowerEquals(name, 'connection') || lowerEquals(name, 'keep-alive') || lowerEquals(name, 'uwebsockets');
    case 14: return lowerEquals(name, 'content-length');
    case 16: return lowerEquals(name, 'proxy-connection') || lowerEquals(name, CORRELATION_HEADER);
    case 17: return lowerEquals(name, 'transfer-encoding');
    default: return false;
  }
}

/** Upstream refusals by status (their specs are memoized: exchange.ts keeps a body prefix per spec). */
const refusals = new Map<number, GatewayErrorSpec>();
function refusalSpec(status: number): GatewayErrorSpec {
  let spec = refusals.get(status);
  if (spec === undefined) { spec = { ...GW_ERR.upstream_refused_upgrade, status }; refusals.set(status, spec); }
  return spec;
}

/** The route's hook (RuntimeRoute.websocket): built once per route per generation. */
class RouteWebSocket implements WebSocketHook {
  /** This worker's share of the route's max_connections (0: no cap). */
  private readonly workerCap: number;

  constructor(private readonly policy: CompiledWebSocket, private readonly tls: UpstreamTlsOptions | null, workers: number) {
    this.workerCap = policy.maxConnections === 0 ? 0 : Math.max(1, Math.ceil(policy.maxConnections / workers));
  }

  forward(ctx: RequestContext): void {
    const x = ctx.websocket as WebSocketExchange;
    const policy = this.policy;
    if (x.version !== '13') { sendLocalReply(ctx, GW_ERR.websocket_version_unsupported, false, ['sec-websocket-version', '13']); return; }
    if (policy.origins !== null && !originAllowed(ctx.headers, policy.origins)) { sendLocalReply(ctx, GW_ERR.websocket_origin_forbidden); return; }
    const protocols = offeredProtocols(x.offeredProtocols);
    if (protocols === null) { sendLocalReply(ctx, GW_ERR.invalid_header); return; }
    const route = ctx.route!;
    const open = openByRoute.get(route.name) ?? 0;
    if (this.workerCap !== 0 && open >= this.workerCap) { sendLocalReply(ctx, GW_ERR.websocket_connection_limit); return; }
    const service = route.service;
    const target = service.pick(service.targets);
    if (target === null) {
      ctx.responseFlags |= RESPONSE_FLAG.NO_HEALTHY_UPSTREAM;
      sendLocalReply(ctx, GW_ERR.no_healthy_upstream);
      return;
    }
    const h = ctx.headers;
    pushForwardingHeaders(ctx, route, target, h);
    // Every byte of the handshake is checked as a request's would be (request-head.ts).
    if (!isSendable('GET', ctx.upstreamPath, h)) { sendLocalReply(ctx, GW_ERR.invalid_header); return; }
    openByRoute.set(route.name, open + 1);
    x.connect(policy, target, protocols, this.tls);
  }
}

/** The hook of a route with `websocket` (generation.ts buildRoute). */
export function webSocketHook(policy: CompiledWebSocket, tls: UpstreamTlsOptions | null, workers: number): WebSocketHook {
  return new RouteWebSocket(policy, tls, workers);
}

/** uWS's user data of a client socket: uWS copies the object's own properties (not its
 * prototype), so the exchange travels in one. */
interface ClientData { readonly x: WebSocketExchange }

const TEXT = { binary: false, compress: false };
const BINARY = { binary: true, compress: false };
const TEXT_DEFLATE = { binary: false, compress: true };
const BINARY_DEFLATE = { binary: true, compress: true };

/**
 * One upgrade request, from the upgrade handler to the connection's close: the exchange's
 * WebSocket leg (what logs and metrics read), its upstream leg (what the exchange stops), and
 * uWS's user data of the client's socket.
 */
export class WebSocketExchange implements WebSocketLeg, UpstreamLeg {
  // --- WebSocketLeg ---
  opened = false;
  messagesIn = 0;
  messagesOut = 0;
  closeCode = 0;
  closedBy: number = CLOSED_BY.NONE;
  // --- UpstreamLeg ---
  complete = false;

  state = HANDSHAKE;
  /** The client's handshake: copied in the upgrade handler (uWS's request dies with it). */
  readonly key: string;
  readonly offeredProtocols: string;
  readonly offeredExtensions: string;
  readonly version: string;
  private readonly context: SocketContext;
  private policy: CompiledWebSocket | null = null;
  private upstream: UpstreamSocket | null = null;
  private client: ClientSocket<ClientData> | null = null;
  private target: RuntimeTarget | null = null;
  private routeName = '';
  /** The upstream's connection is up (a failure after it is not a connect failure). */
  private connected = false;
  private secure = false;
  private upstreamHead: string[] | null = null;
  private upstreamPaused = false;
  /** permessage-deflate on both legs: the client offered it and the upstream accepted it. */
  private deflate = false;
  /** Pings relayed to the client whose pong the upstream already had from ws. */
  private clientPongsOwed = 0;
  /** The client's close code for an upstream that failed (0: none). */
  private upstreamFailure = 0;
  /** The route's live counters (countInto), or null when metrics are off. */
  private counters: Float64Array | null = null;
  private countersAt = 0;

  constructor(readonly ctx: RequestContext, req: HttpRequest, context: SocketContext) {
    this.key = req.getHeader('sec-websocket-key');
    this.offeredProtocols = req.getHeader('sec-websocket-protocol');
    this.offeredExtensions = req.getHeader('sec-websocket-extensions');
    this.version = req.getHeader('sec-websocket-version');
    this.context = context;
  }

  // --- the upstream handshake ---------------------------------------------------------------

  connect(policy: CompiledWebSocket, target: RuntimeTarget, protocols: string[], tls: UpstreamTlsOptions | null): void {
    const ctx = this.ctx;
    const service = ctx.route!.service;
    this.policy = policy;
    this.target = target;
    this.routeName = ctx.route!.name;
    ctx.target = target;
    target.inFlight++;
    ctx.upstream = this;
    ctx.phase = PHASE.CONNECTING;
    ctx.deadline = coarseNow + service.connectMs;
    // The client's end-to-end headers and the gateway's, checked (forward); its own handshake
    // headers (Sec-WebSocket-*) are ws's to write. A name seen twice is sent twice.
    const headers: Record<string, string | string[]> = Object.create(null);
    const h = ctx.headers;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i];
      if (name.startsWith('sec-websocket-')) continue;
      const had = headers[name];
      headers[name] = had === undefined ? h[i + 1] : typeof had === 'string' ? [had, h[i + 1]] : [...had, h[i + 1]];
    }
    const secure = target.origin.startsWith('https:');
    this.secure = secure;
    // The path is set on the request itself (finishRequest): a URL would re-encode it.
    const url = (secure ? 'wss:' : 'ws:') + target.origin.slice(target.origin.indexOf('//')) + '/';
    let up: UpstreamSocket;
    try {
      up = new (wsPackage().WebSocket)(url, protocols, {
        headers,
        perMessageDeflate: this.offeredExtensions.includes('permessage-deflate') ? {} : false,
        maxPayload: policy.maxMessageBytes,
        followRedirects: false,
        generateMask,
        finishRequest: (request: ClientRequest) => this.sendHandshake(request),
        ...(secure && tls !== null ? tls : {}),
      });
    } catch (err) {
      logRequestFault(ctx, err);
      sendLocalReply(ctx, GW_ERR.internal_error);
      return;
    }
    this.upstream = up;
    upstreamsClosing++;
    // ws calls these from the socket's data and close events: a throw would be uncaught and take
    // the worker down, so each has its try block (relayFault), the message one without a closure.
    up.on('upgrade', (res: IncomingMessage) => { this.upstreamHead = res.rawHeaders; });
    up.on('open', () => { try { this.onUpstreamOpen(); } catch (err) { relayFault(this, err); } });
    up.on('unexpected-response', (_req: ClientRequest, res: IncomingMessage) => { try { this.onUpstreamRefused(res); } catch (err) { relayFault(this, err); } });
    up.on('error', (err: Error & { code?: string }) => { try { this.onUpstreamError(err); } catch (e) { relayFault(this, e); } });
    up.on('close', (code: number, reason: Buffer) => { try { this.onUpstreamClose(code, reason); } catch (err) { relayFault(this, err); } });
    up.on('message', (data: Buffer, isBinary: boolean) => { try { this.onUpstreamMessage(data, isBinary); } catch (err) { relayFault(this, err); } });
    up.on('ping', (data: Buffer) => { try { this.onUpstreamPing(data); } catch (err) { relayFault(this, err); } });
    // The upstream's pongs answer pings ws relayed for the client, which uWS answered already
    // (and this uWS build cannot send a pong): they stop here.
    up.on('pong', () => { if (this.state === OPEN) this.touch(); });
  }

  private sendHandshake(request: ClientRequest): void {
    // The request-target exactly as an HTTP request of the route gets it (checked by forward).
    request.path = this.ctx.upstreamPath;
    // Connected: TCP up, and for wss: the TLS handshake done (a certificate the service does not
    // trust is a connect failure, as for HTTP requests).
    request.on('socket', (socket: Socket) => {
      if (this.secure) socket.once('secureConnect', () => this.onUpstreamConnected());
      else if (socket.connecting) socket.once('connect', () => this.onUpstreamConnected());
      else this.onUpstreamConnected();
    });
    request.end();
  }

  private onUpstreamConnected(): void {
    const ctx = this.ctx;
    if (this.state !== HANDSHAKE || ctx.ended) return;
    this.connected = true;
    ctx.upstreamStartTime = performance.now();
    ctx.phase = PHASE.WAITING;
    ctx.deadline = coarseNow + ctx.route!.service.responseMs;
  }

  private onUpstreamOpen(): void {
    const ctx = this.ctx;
    const up = this.upstream!;
    if (this.state !== HANDSHAKE || ctx.ended || ctx.aborted) { up.terminate(); return; }
    ctx.upstreamFirstByteTime = performance.now();
    this.deflate = this.offeredExtensions !== '' && up.extensions.includes('permessage-deflate');
    const head = this.upstreamHead ?? [];
    const headers: string[] = [];
    for (let i = 0; i < head.length; i += 2) if (!isHandshakeHeader(head[i])) headers.push(head[i], head[i + 1]);
    this.state = OPEN;
    // The client gets the upstream's choice: its subprotocol (ws checked it is one the client
    // offered), and permessage-deflate only when the upstream took it too.
    writeUpgrade(ctx, headers, () => ctx.res.upgrade<ClientData>({ x: this }, this.key, up.protocol, this.deflate ? this.offeredExtensions : '', this.context));
    // uWS ran onClientOpen inside upgrade(): the client's socket is this.client from here.
    if (this.client === null) { this.closeByGateway(1011, 'upgrade failed'); return; }
    ctx.phase = PHASE.STREAMING;
    ctx.exchangeDeadline = 0; // a route's deadline_ms bounds the handshake, not the connection
    ctx.deadline = 0;
    this.touch();
    const filters = ctx.route!.filters;
    for (let i = 0; i < filters.length; i++) {
      const f = filters[i];
      if (f.onWebSocketOpen === undefined) continue;
      try { f.onWebSocketOpen(ctx); } catch (err) { logRequestFault(ctx, err); }
    }
    if (draining) this.closeByGateway(1001, 'gateway shutting down');
  }

  /** The upstream answered the upgrade with another status: its 4xx/5xx goes to the client. */
  private onUpstreamRefused(res: IncomingMessage): void {
    const status = res.statusCode ?? 0;
    res.resume();
    if (this.state !== HANDSHAKE) return;
    const extra: string[] = [];
    const retryAfter = res.headers['retry-after'];
    if (typeof retryAfter === 'string') extra.push('retry-after', retryAfter);
    const challenge = res.headers['www-authenticate'];
    if (typeof challenge === 'string') extra.push('www-authenticate', challenge);
    if (status >= 400 && status <= 599) this.failHandshake(refusalSpec(status), 0, extra);
    else this.failHandshake(GW_ERR.upstream_bad_response, RESPONSE_FLAG.UPSTREAM_PROTOCOL_ERROR);
  }

  private onUpstreamError(err: Error & { code?: string }): void {
    if (this.state === OPEN) { this.upstreamFailure = clientCodeOfError(err); return; } // 'close' follows
    if (this.state !== HANDSHAKE) return;
    if (!this.connected) this.failHandshake(GW_ERR.upstream_unavailable, RESPONSE_FLAG.UPSTREAM_CONNECT_FAILURE);
    else if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.message === 'socket hang up') this.failHandshake(GW_ERR.upstream_reset, RESPONSE_FLAG.UPSTREAM_RESET);
    else this.failHandshake(GW_ERR.upstream_bad_response, RESPONSE_FLAG.UPSTREAM_PROTOCOL_ERROR);
  }

  /** The handshake failed: the client gets `spec` (nothing if it left) and the exchange ends. */
  private failHandshake(spec: GatewayErrorSpec, flag: number, extraHeaders: readonly string[] | null = null): void {
    const ctx = this.ctx;
    this.abort();
    if (ctx.ended) return;
    ctx.responseFlags |= flag;
    sendLocalReply(ctx, spec, false, extraHeaders);
  }

  /** A handshake deadline passed (the ticker: server.ts): connect_ms, response_ms or the route's deadline_ms. */
  expired(): void {
    const ctx = this.ctx;
    if (this.state === OPEN) { this.closeByGateway(1001, 'idle timeout'); return; }
    if (this.state !== HANDSHAKE) { ctx.deadline = 0; return; }
    if (ctx.exchangeDeadline !== 0 && coarseNow >= ctx.exchangeDeadline) this.failHandshake(GW_ERR.deadline_exceeded, RESPONSE_FLAG.UPSTREAM_TIMEOUT);
    else if (!this.connected) this.failHandshake(GW_ERR.upstream_connect_timeout, RESPONSE_FLAG.UPSTREAM_CONNECT_FAILURE);
    else this.failHandshake(GW_ERR.upstream_timeout, RESPONSE_FLAG.UPSTREAM_TIMEOUT);
  }

  // --- UpstreamLeg: the exchange ends before the relay did -----------------------------------

  abort(): void {
    if (this.complete) return;
    this.complete = true;
    if (this.state === OPEN) {
      // The drain's deadline (closeAll) or a fault: both sides go.
      this.state = CLOSED;
      this.closeClient(1001, 'gateway shutting down');
      this.closeUpstream(1001, 'gateway shutting down');
    } else if (this.state === HANDSHAKE) {
      this.state = CLOSED;
      this.upstream?.terminate();
    }
    this.release();
  }

  resume(): void { /* the relay's own backpressure: onClientDrain */ }

  settle(): void { /* never called: no HTTP response body is relayed */ }

  // The deadline ticker sends a WebSocket exchange to expired() (server.ts), not to
  // proxy.ts expireRequest; these keep the leg's meaning for any other caller.
  fail(spec: GatewayErrorSpec, flag: number): void {
    if (this.state === HANDSHAKE) this.failHandshake(spec, flag);
    else this.abort();
  }

  timedOut(): void { this.expired(); }

  sendTry(): void { /* no retries of a handshake: the ticker never waits for one */ }

  /** The route's connection count and the target's in-flight count drop once. */
  private release(): void {
    const target = this.target;
    if (target === null) return;
    this.target = null;
    target.inFlight--;
    const open = openByRoute.get(this.routeName) ?? 1;
    if (open <= 1) openByRoute.delete(this.routeName); else openByRoute.set(this.routeName, open - 1);
  }

  /** The relay ended (both sides closed or closing): the exchange ends, its onEnd filters run. */
  private finish(): void {
    const ctx = this.ctx;
    this.state = CLOSED;
    this.complete = true;
    this.release();
    ctx.upstreamLastByteTime = performance.now();
    endExchange(ctx);
  }

  // --- the relay -------------------------------------------------------------------------------

  /** Something went either way: the idle deadline moves. */
  private touch(): void {
    const idle = this.policy!.idleMs;
    if (idle !== 0) this.ctx.deadline = coarseNow + idle;
  }

  countInto(counters: Float64Array, at: number): void {
    this.counters = counters;
    this.countersAt = at;
  }

  onClientOpen(ws: ClientSocket<ClientData>): void {
    this.client = ws;
    this.opened = true;
  }

  onClientMessage(message: ArrayBuffer, isBinary: boolean): void {
    if (this.state !== OPEN) return;
    const policy = this.policy!;
    const n = message.byteLength;
    if (n > policy.maxMessageBytes) { this.closeByGateway(1009, 'message too big'); return; }
    const up = this.upstream!;
    // The client cannot be paused: one that keeps sending to an upstream that does not read
    // is closed rather than buffered without bound.
    if (up.bufferedAmount > policy.maxBufferedBytes) { this.closeByGateway(1013, 'upstream is not reading'); return; }
    this.messagesIn++;
    this.ctx.bytesIn += n;
    const counters = this.counters;
    if (counters !== null) { counters[this.countersAt + WS_SLOT.MESSAGES_IN]++; counters[this.countersAt + WS_SLOT.BYTES_IN] += n; }
    this.touch();
    // A view of uWS's memory, valid until this handler returns: ws copies it into the masked
    // frame at once (generateMask), except when it compresses, which is asynchronous.
    const data = this.deflate ? Buffer.from(new Uint8Array(message)) : Buffer.from(message);
    up.send(data, this.deflate ? (isBinary ? BINARY_DEFLATE : TEXT_DEFLATE) : (isBinary ? BINARY : TEXT));
  }

  onClientPing(message: ArrayBuffer): void {
    if (this.state !== OPEN) return;
    this.touch();
    this.upstream!.ping(Buffer.from(new Uint8Array(message)));
  }

  onClientPong(message: ArrayBuffer): void {
    if (this.state !== OPEN) return;
    this.touch();
    if (this.clientPongsOwed > 0) { this.clientPongsOwed--; return; }
    this.upstream!.pong(Buffer.from(new Uint8Array(message))); // unsolicited: a heartbeat
  }

  onClientDrain(): void {
    const client = this.client;
    if (!this.upstreamPaused || client === null) return;
    if (client.getBufferedAmount() > this.policy!.maxBufferedBytes / 2) return;
    this.upstreamPaused = false;
    this.upstream!.resume();
  }

  private onUpstreamMessage(data: Buffer, isBinary: boolean): void {
    const client = this.client;
    if (this.state !== OPEN || client === null) return;
    this.messagesOut++;
    this.ctx.bytesOut += data.length;
    const counters = this.counters;
    if (counters !== null) { counters[this.countersAt + WS_SLOT.MESSAGES_OUT]++; counters[this.countersAt + WS_SLOT.BYTES_OUT] += data.length; }
    this.touch();
    sendCorked(client, data, isBinary, this.deflate);
    if (!this.upstreamPaused && client.getBufferedAmount() > this.policy!.maxBufferedBytes) {
      this.upstreamPaused = true;
      this.upstream!.pause();
    }
  }

  private onUpstreamPing(data: Buffer): void {
    const client = this.client;
    if (this.state !== OPEN || client === null) return;
    this.touch();
    this.clientPongsOwed++;
    client.cork(() => client.ping(data));
  }

  /** The client's side closed: a close frame, or its connection went. uWS's close handler. */
  onClientClose(code: number, message: ArrayBuffer): void {
    this.client = null;
    if (this.state !== OPEN) return; // the gateway closed it (closeByGateway, an upstream close, abort)
    this.closedBy = CLOSED_BY.CLIENT;
    if (code === 0 || code === 1005) {
      this.closeCode = 1005;
      this.closeUpstream(0, '');
    } else if (isSendableCode(code)) {
      this.closeCode = code;
      this.closeUpstream(code, Buffer.from(new Uint8Array(message)));
    } else {
      this.closeCode = code; // 1006: gone without a close frame
      this.closeUpstream(1001, 'client went away');
    }
    this.finish();
  }

  private onUpstreamClose(code: number, reason: Buffer): void {
    upstreamsClosing--;
    if (this.state === HANDSHAKE) {
      // Closed before the 101 without an error ws reported (it reports them first).
      this.failHandshake(GW_ERR.upstream_reset, RESPONSE_FLAG.UPSTREAM_RESET);
      return;
    }
    if (this.state !== OPEN) return;
    this.state = CLOSED; // before closing the client: its close handler must not echo it back
    this.closedBy = CLOSED_BY.UPSTREAM;
    if (this.upstreamFailure !== 0) {
      this.ctx.responseFlags |= RESPONSE_FLAG.UPSTREAM_RESET;
      this.closeCode = this.upstreamFailure;
      this.closeClient(this.upstreamFailure, this.upstreamFailure === 1009 ? 'message too big' : 'upstream error');
    } else if (code === 1005) {
      this.closeCode = 1005;
      this.closeClient(0, '');
    } else if (code === 1006 || !isSendableCode(code)) {
      this.closeCode = 1001;
      this.closeClient(1001, 'upstream went away');
    } else {
      this.closeCode = code;
      this.closeClient(code, reason);
    }
    this.finish();
  }

  /** The gateway ends the connection (limits, idle, drain): the client gets `code`, the upstream 1001. */
  closeByGateway(code: number, reason: string): void {
    if (this.state !== OPEN) return;
    this.state = CLOSED;
    this.closedBy = CLOSED_BY.GATEWAY;
    this.closeCode = code;
    this.closeClient(code, reason);
    this.closeUpstream(1001, reason);
    this.finish();
  }

  /** Sends the client a close frame (code 0: one without a code); uWS runs its close handler at once. */
  private closeClient(code: number, reason: string | Buffer): void {
    const client = this.client;
    if (client === null) return;
    this.client = null;
    client.cork(() => { if (code === 0) client.end(); else client.end(code, reason); });
  }

  /** Starts the upstream's close handshake (code 0: a close frame without a code). */
  private closeUpstream(code: number, reason: string | Buffer): void {
    const up = this.upstream;
    if (up === null) return;
    try {
      if (code === 0) up.close(); else up.close(code, reason);
    } catch {
      up.terminate(); // a reason ws refuses (over 123 bytes): no frame then
    }
  }
}

// uWS's send takes no closure-free cork: these module-level slots carry one send into one
// function (no closure per message), as exchange.ts does for response chunks.
let corkClient: ClientSocket<ClientData> | null = null;
let corkData: Buffer | null = null;
let corkBinary = false;
let corkCompress = false;
function sendInCork(): void {
  corkClient!.send(corkData!, corkBinary, corkCompress);
}
function sendCorked(client: ClientSocket<ClientData>, data: Buffer, isBinary: boolean, compress: boolean): void {
  corkClient = client;
  corkData = data;
  corkBinary = isBinary;
  corkCompress = compress;
  client.cork(sendInCork);
  corkClient = null;
  corkData = null;
}

/** The ticker's call for an upgrade exchange with an upstream side (server.ts). */
export function expireWebSocket(ctx: RequestContext): void {
  (ctx.websocket as WebSocketExchange).expired();
}

/**
 * The listeners' WebSocket behaviour (server.ts registers it for `/*` before the HTTP
 * handler). uWS's own limits are the ceilings every route's policy fits under: the routes' own
 * apply per message in the relay. Idle timeouts and pings are the relay's (a route's
 * idle_timeout_s; pings are the endpoints'), so uWS's are off; backpressure is bounded by the
 * relay (the upstream pauses), so uWS never drops a message (maxBackpressure 0).
 */
export function webSocketBehavior(upgrade: WebSocketBehavior<ClientData>['upgrade']): WebSocketBehavior<ClientData> {
  return {
    maxPayloadLength: WS_MESSAGE_CEILING,
    maxBackpressure: 0,
    closeOnBackpressureLimit: 0,
    idleTimeout: 0,
    sendPingsAutomatically: false,
    // Negotiated only for a client whose upstream accepted permessage-deflate too (the
    // extensions upgrade() is given): shared, so a connection holds no compressor of its own.
    compression: uWS.SHARED_COMPRESSOR | uWS.SHARED_DECOMPRESSOR,
    upgrade,
    open: (ws) => ws.getUserData().x.onClientOpen(ws),
    // One try block per handler, no closure per message.
    message: (ws, message, isBinary) => {
      const x = ws.getUserData().x;
      try { x.onClientMessage(message, isBinary); } catch (err) { relayFault(x, err); }
    },
    drain: (ws) => {
      const x = ws.getUserData().x;
      try { x.onClientDrain(); } catch (err) { relayFault(x, err); }
    },
    close: (ws, code, message) => {
      const x = ws.getUserData().x;
      try { x.onClientClose(code, message); } catch (err) { relayFault(x, err); }
    },
    ping: (ws, message) => {
      const x = ws.getUserData().x;
      try { x.onClientPing(message); } catch (err) { relayFault(x, err); }
    },
    pong: (ws, message) => {
      const x = ws.getUserData().x;
      try { x.onClientPong(message); } catch (err) { relayFault(x, err); }
    },
  };
}

/** A throw in a uWS handler would take the worker down: it is a bug, logged, and the connection closes. */
function relayFault(x: WebSocketExchange, err: unknown): void {
  logRequestFault(x.ctx, err);
  try {
    if (x.state === OPEN) x.closeByGateway(1011, 'internal error');
    else sendLocalReply(x.ctx, GW_ERR.internal_error); // a handshake: 500 if nothing was answered yet
  } catch (again) {
    logRequestFault(x.ctx, again);
  }
}
