// The data-plane HTTP server of one worker: a uWebSockets.js app whose single handler takes
// every request through, in order:
//   front door (sizes, framing, Host)  → correlation id → path normalization → route match
//   → the route's filter chain → upstream forward (upstream/proxy.ts).
// Everything the request needs from uWS's HttpRequest is copied here, synchronously,
// because that object dies when the handler returns.
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { uWS, type HttpRequest, type HttpResponse, type ListenSocket, type SocketContext, type TemplatedApp } from './uws.js';
import { RequestContext, PHASE, RESPONSE_FLAG, type GenerationView } from './request-context.js';
import { readRequestHead } from './front-door.js';
import { correlationIdFor } from './correlation-id.js';
import { normalizePath, hadEscapedSlash } from '../shared/path-normalize.js';
import { escapedPathError, matchEscapedPath } from './escaped-slashes.js';
import { methodBit, methodsInMask } from '../shared/methods.js';
import { preflightRoute } from '../filters/cors/preflight-route.js';
import { GW_ERR } from '../shared/errors.js';
import { NO_ROUTE, METHOD_NOT_ALLOWED, VERSION_NOT_SERVED } from './route-match.js';
import { endExchange, sendLocalReply } from './exchange.js';
import { logRequestFault } from './faults.js';
import { runChain } from './chain.js';
import { BUFFERED_BODY_MAX, expireRequest, upstreamPath } from './upstream/proxy.js';
import { WebSocketExchange, expireWebSocket, openUpstreamSockets, shutdownWebSockets, webSocketBehavior } from './websocket.js';
import { coarseNow, forEachOpen, openCount, startDeadlines, stopDeadlines, trackOpen } from './deadlines.js';
import { TlsListener } from './tls-listener.js';
import { MtlsListener } from './mtls-listener.js';
import { sendHttpsRedirect } from './tls-redirect.js';
import { LISTENER, type TlsListenerConfig } from '../shared/tls-config.js';
import { overloadOn, shouldShed } from './overload.js';

export interface DataPlaneServerOptions {
  /** Returns the generation new requests use (one Atomics.load in the common case). */
  currentGeneration(): GenerationView;
  /** Test hooks: `x-lobby-test-crash: 1` throws an uncaught error in this worker;
   * `x-lobby-test-fault: 1` throws inside the request handler (a bug it must survive). */
  testHooks: boolean;
  /** Which worker this is: only worker 0 opens the mTLS listener (mtls-listener.ts). Default 0. */
  workerIndex?: number;
}

const decoder = new TextDecoder();
const OPTIONS_BIT = methodBit('OPTIONS');

export class DataPlaneServer {
  private readonly app: TemplatedApp;
  private listenSocket: ListenSocket | null = null;
  /** The HTTPS listener (server.tls), same handlers, requests marked LISTENER.TLS. */
  private readonly tls = new TlsListener((res, req) => this.onRequest(res, req, LISTENER.TLS),
    webSocketBehavior((res, req, context) => this.onUpgrade(res, req, context, LISTENER.TLS)));
  /** The HTTPS listener with client certificates (server.tls.client_auth), instead of `tls`. */
  private readonly mtls = new MtlsListener((res, req) => this.onRequest(res, req, LISTENER.MTLS),
    webSocketBehavior((res, req, context) => this.onUpgrade(res, req, context, LISTENER.MTLS)));

  constructor(private readonly opts: DataPlaneServerOptions) {
    this.app = uWS.App();
    // An upgrade exchange with an upstream side has its own deadlines (handshake, idle).
    startDeadlines((ctx) => (ctx.websocket !== null && ctx.upstream !== null ? expireWebSocket(ctx) : expireRequest(ctx)));
  }

  /** A new certificate set (message `tls`); an error message when uWS refused it. */
  applyTls(config: TlsListenerConfig): Promise<string | null> {
    return config.clientAuthMode !== null ? this.mtls.apply(config) : this.tls.apply(config);
  }

  /** Opens the plain listener (unless server.tls.plain_http is off) and the HTTPS one; the port of the first. */
  async listen(host: string, port: number): Promise<number | null> {
    const tls = this.opts.currentGeneration().config.server.tls;
    const plain = tls === null || tls.plainHttp !== 'off'
      ? await this.listenPlain(host, port, tls?.plainHttp === 'redirect' ? LISTENER.REDIRECT : LISTENER.PLAIN) : 0;
    if (plain === null || tls === null) return plain;
    if (this.mtls.configured) {
      // Node 20 cannot share a port between threads (mtls-listener.ts): worker 0 serves it.
      const secure = (this.opts.workerIndex ?? 0) === 0 ? await this.mtls.listen(host, tls.port) : tls.port;
      return secure === null ? null : plain || secure;
    }
    if (!this.tls.configured) return null; // the supervisor sends `tls` before `listen`; never serve HTTPS-less

    const secure = await this.tls.listen(host, tls.port);
    return secure === null ? null : plain || secure;
  }

  private listenPlain(host: string, port: number, listener: number): Promise<number | null> {
    // Upgrade requests (GET with a Sec-WebSocket-Key) reach the ws handler first; the others
    // pass it by (uWS yields them to the next handler).
    this.app.ws('/*', webSocketBehavior((res, req, context) => this.onUpgrade(res, req, context, listener)));
    this.app.any('/*', (res, req) => this.onRequest(res, req, listener));
    return new Promise((resolve) => {
      this.app.listen(host, port, (socket) => {
        if (!socket) { resolve(null); return; }
        this.listenSocket = socket;
        resolve(uWS.us_socket_local_port(socket as never));
      });
    });
  }

  /** Stops accepting connections; in-flight requests go on. */
  stopListening(): void {
    if (this.listenSocket) {
      uWS.us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
    }
    this.tls.stopListening();
    this.mtls.stopListening();
  }

  /** Closes every connection (after a drain or on a fatal error); the worker may then exit. */
  closeAll(): void {
    this.stopListening();
    // Requests still open at the drain deadline (or on a fatal error) end here: each one's
    // onEnd runs, and its connection closes with the app.
    forEachOpen((ctx) => endExchange(ctx, RESPONSE_FLAG.DRAINED));
    stopDeadlines();
    // close() exists in this uWS build but is missing from its type definitions.
    (this.app as TemplatedApp & { close(): void }).close();
    this.tls.closeAll();
    this.mtls.closeAll();
  }

  private onRequest(res: HttpResponse, req: HttpRequest, listener: number): void {
    // A throw here would take the worker down (uWS aborts on an exception in a handler): it
    // is a bug, answered 500 and logged, never a crash. (The chain has its own handler.)
    let ctx: RequestContext | null = null;
    try {
      ctx = new RequestContext(res, this.opts.currentGeneration(), performance.now());
      ctx.listener = listener;
      trackOpen(ctx);
      this.accept(ctx, req);
    } catch (err) {
      onHandlerFault(res, ctx, err);
    }
  }

  /**
   * A WebSocket upgrade request: with no route relaying them, it goes to the HTTP handler as
   * before (served as a plain GET); otherwise it is accepted like any request, its handshake
   * copied first (src/data/websocket.ts takes it on at forward()).
   */
  private onUpgrade(res: HttpResponse, req: HttpRequest, context: SocketContext, listener: number): void {
    const gen = this.opts.currentGeneration();
    if (gen.config.websocketRoutes !== true) { req.setYield(true); return; }
    let ctx: RequestContext | null = null;
    try {
      ctx = new RequestContext(res, gen, performance.now());
      ctx.listener = listener;
      ctx.websocket = new WebSocketExchange(ctx, req, context);
      trackOpen(ctx);
      this.accept(ctx, req);
    } catch (err) {
      onHandlerFault(res, ctx, err);
    }
  }

  // Hot path: runs once per request; allocates the context, one abort closure and the
  // forwarded headers array, nothing per header or per filter.
  private accept(ctx: RequestContext, req: HttpRequest): void {
    const gen = ctx.gen;
    const res = ctx.res;
    const url = req.getUrl();
    ctx.method = req.getCaseSensitiveMethod();
    ctx.methodBit = methodBit(ctx.method);
    ctx.query = req.getQuery() ?? '';
    const headError = readRequestHead(ctx, req, gen.config.server.limits, url);
    ctx.correlationId = correlationIdFor(ctx.clientCorrelationId);
    if (this.opts.testHooks) {
      if (req.getHeader('x-lobby-test-crash') === '1') setImmediate(() => { throw new Error('test hook: worker crash requested'); });
      if (req.getHeader('x-lobby-test-fault') === '1') throw new Error('test hook: request handler fault requested');
      // A stalled worker thread (a loaded machine), for the late-timer tests: this turn blocks.
      const stallMs = Number(req.getHeader('x-lobby-test-stall-ms'));
      if (stallMs > 0) { const until = performance.now() + Math.min(stallMs, 10_000); while (performance.now() < until); }
    }
    res.onAborted(() => onClientAborted(ctx));
    // Before any reply: refused and unrouted requests are logged with their client too.
    ctx.clientIp = decoder.decode(res.getRemoteAddressAsText());
    // From the mTLS bridge: the client and its certificate are those of its TLS connection.
    if (ctx.listener === LISTENER.MTLS && !this.mtls.resolve(ctx)) { res.close(); return; }
    const hasBody = ctx.contentLength > 0 || ctx.chunked;
    if (headError !== null) {
      sendLocalReply(ctx, headError, hasBody || headError === GW_ERR.invalid_framing);
      return;
    }
    // Overload protection (overload.ts): one comparison when it is off. The connection closes.
    if (overloadOn && shouldShed()) {
      ctx.responseFlags |= RESPONSE_FLAG.OVERLOADED;
      sendLocalReply(ctx, GW_ERR.gateway_overloaded, true);
      return;
    }
    const path = normalizePath(url);
    if (path === null) { sendLocalReply(ctx, GW_ERR.invalid_path, hasBody); return; }
    ctx.path = path;
    if (ctx.listener === LISTENER.REDIRECT) { sendHttpsRedirect(ctx, hasBody); return; }

    const matcher = gen.matcher;
    const versioning = gen.versioning ?? null;
    // A path with %2F/%5C (rare) is routed by its route's escaped_slashes (may change ctx.path).
    // With versioned routes, the request's API version constrains the match (api-version.ts).
    let routeIndex = versioning !== null ? versioning.route(ctx, url)
      : hadEscapedSlash() ? matchEscapedPath(ctx, url) : matcher.match(ctx.methodBit, ctx.hostName, path);
    // A CORS preflight is routed by the method it asks about (src/filters/cors/preflight-route.ts).
    if (ctx.methodBit === OPTIONS_BIT && gen.config.corsPreflights === true && !hadEscapedSlash()) routeIndex = preflightRoute(ctx, req, gen, routeIndex);
    if (routeIndex < 0) {
      if (routeIndex === VERSION_NOT_SERVED) {
        sendLocalReply(ctx, versioning!.versionError(ctx), hasBody, versioning!.varyFor(ctx));
      } else if (routeIndex === METHOD_NOT_ALLOWED) {
        sendLocalReply(ctx, GW_ERR.method_not_allowed, hasBody, ['allow', methodsInMask(matcher.allowMask).join(', ')]);
      } else {
        sendLocalReply(ctx, routeIndex === NO_ROUTE ? GW_ERR.route_not_found : escapedPathError(routeIndex), hasBody);
      }
      return;
    }
    const route = gen.route(routeIndex);
    ctx.route = route;
    // An upgrade on a route that relays none is a plain GET (its Upgrade headers were dropped).
    if (ctx.websocket !== null) {
      if (route.websocket === null) ctx.websocket = null;
      else if (hasBody) { sendLocalReply(ctx, GW_ERR.invalid_framing, true); return; }
    }
    if (route.deadlineMs !== 0) ctx.exchangeDeadline = ctx.startTime + route.deadlineMs;
    // The rewrite reads the matcher's param spans, valid only until the next match.
    const target = upstreamPath(ctx, route);
    if (target === null) { sendLocalReply(ctx, GW_ERR.invalid_path, hasBody); return; }
    ctx.upstreamPath = target;

    if (!hasBody) runChain(ctx);
    else if (!ctx.chunked && ctx.contentLength <= BUFFERED_BODY_MAX) readBufferedBody(ctx);
    else streamBody(ctx);
  }

  /** Shuts this server down gracefully: stop accepting, wait for in-flight up to the deadline. */
  async drain(deadlineMs: number): Promise<number> {
    this.stopListening();
    const until = Date.now() + deadlineMs;
    // WebSocket connections would never end on their own: they are closed (1001), and their
    // upstream close handshakes waited for like requests.
    shutdownWebSockets();
    // Every accepted request counts, also those still reading their body or waiting on a
    // filter (e.g. token verification), not only those already sent upstream.
    while ((openCount() > 0 || openUpstreamSockets() > 0) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    const unfinished = openCount();
    this.closeAll();
    return unfinished;
  }
}

function onHandlerFault(res: HttpResponse, ctx: RequestContext | null, err: unknown): void {
  logRequestFault(ctx, err);
  if (ctx !== null) {
    sendLocalReply(ctx, GW_ERR.internal_error, true);
    return;
  }
  // Failed before the context existed: answer without one.
  res.cork(() => res.writeStatus('500 Internal Server Error').end('{"error":{"status":500,"code":"internal_error"}}', true));
}

/** Small bodies with a Content-Length: collected into one buffer, then forwarded. */
function readBufferedBody(ctx: RequestContext): void {
  const body = Buffer.allocUnsafe(ctx.contentLength);
  let received = 0;
  ctx.res.onData((chunk, isLast) => {
    if (ctx.aborted || ctx.phase === PHASE.DONE) return;
    const bytes = new Uint8Array(chunk);
    if (received + bytes.length > body.length) { sendLocalReply(ctx, GW_ERR.invalid_framing, true); return; }
    body.set(bytes, received);
    received += bytes.length;
    ctx.bytesIn = received;
    if (!isLast) return;
    ctx.body = body;
    runChain(ctx);
  });
}

/** Large or chunked bodies: streamed upstream with backpressure, size-capped. */
function streamBody(ctx: RequestContext): void {
  // The route's limit once its route-limits filter ran (at the chain's start, below), else the server's.
  ctx.bodyLimit = ctx.gen.config.server.limits.maxBodyBytes;
  const res = ctx.res;
  const stream = new Readable({
    highWaterMark: 256 * 1024,
    read() {
      if (ctx.clientPaused && !ctx.aborted && !ctx.ended) {
        ctx.clientPaused = false;
        res.resume();
      }
    },
  });
  ctx.body = stream;
  res.onData((chunk, isLast) => {
    if (ctx.aborted || ctx.ended) return;
    ctx.bytesIn += chunk.byteLength;
    if (ctx.bytesIn > ctx.bodyLimit) {
      // Streamed past the limit (chunked, or a lying Content-Length): 413 if nothing was
      // answered yet, and the connection closes since the rest of the body is unread.
      if (!ctx.responseStarted) sendLocalReply(ctx, GW_ERR.payload_too_large, true);
      else { endExchange(ctx); res.close(); }
      return;
    }
    if (ctx.phase === PHASE.SENDING) ctx.deadline = coarseNow + ctx.route!.service.idleMs;
    const more = stream.push(Buffer.from(new Uint8Array(chunk)));
    if (isLast) {
      stream.push(null);
      if (ctx.phase === PHASE.SENDING) {
        ctx.phase = PHASE.WAITING;
        ctx.deadline = coarseNow + ctx.route!.service.responseMs;
      }
    } else if (!more && !ctx.clientPaused) {
      ctx.clientPaused = true;
      res.pause();
    }
  });
  runChain(ctx);
}

function onClientAborted(ctx: RequestContext): void {
  ctx.aborted = true;
  endExchange(ctx, ctx.ended ? 0 : RESPONSE_FLAG.DOWNSTREAM_CLOSED);
}
