// A real WebSocket upstream for tests (the `ws` package's server on a Node HTTP server): every
// connection is kept with its handshake request, what it received and how it closed, so a test
// drives the upstream's side of a relayed connection and checks what reached it.
//   /refuse/<status>  answers the upgrade with that status (and Retry-After: 7), no WebSocket;
//   /echo...          echoes every message back as it came (text or binary);
//   anything else     accepts, and does only what the test does with the connection.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { freePort } from './ports.js';

export interface UpstreamConnection {
  readonly ws: WebSocket;
  readonly request: IncomingMessage;
  readonly messages: { data: Buffer; isBinary: boolean }[];
  readonly pings: Buffer[];
  readonly pongs: Buffer[];
  /** The close the upstream saw (code, reason), once it closed. */
  closed: { code: number; reason: string } | null;
  /** Resolves with the close. */
  readonly whenClosed: Promise<{ code: number; reason: string }>;
}

export interface WsUpstream {
  readonly port: number;
  readonly origin: string;
  readonly connections: UpstreamConnection[];
  /** The next connection (or the n-th, counting from 0), once it is open. */
  connection(n?: number): Promise<UpstreamConnection>;
  close(): Promise<void>;
}

export interface WsUpstreamOptions {
  /** Picks the subprotocol (default: the last one offered, so a test sees it is the upstream's choice). */
  chooseProtocol?: (offered: string[]) => string | false;
  /** permessage-deflate (default off). */
  perMessageDeflate?: boolean;
  /** Largest message the upstream takes (ws default 100 MiB). */
  maxPayload?: number;
  /** Serve wss: with this certificate (PEM files). */
  tls?: { cert: string; key: string };
}

export async function startWsUpstream(opts: WsUpstreamOptions = {}): Promise<WsUpstream> {
  const connections: UpstreamConnection[] = [];
  const waiters: { n: number; resolve: (c: UpstreamConnection) => void }[] = [];
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: opts.perMessageDeflate ?? false,
    maxPayload: opts.maxPayload ?? 100 * 1024 * 1024,
    handleProtocols: (offered) => (opts.chooseProtocol ?? ((o) => o[o.length - 1] ?? false))([...offered]),
  });
  const onRequest = (_req: IncomingMessage, res: import('node:http').ServerResponse) => { res.statusCode = 426; res.end('websocket only'); };
  // A header of the upstream's own on every 101 (the gateway relays the end-to-end ones).
  wss.on('headers', (headers) => { headers.push('X-Upstream-Hello: 1'); });
  const server: Server = opts.tls === undefined ? createServer(onRequest)
    : createTlsServer({ cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }, onRequest);
  const sockets = new Set<Duplex>();
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refuse = /^\/refuse\/(\d{3})/.exec(request.url ?? '');
    if (refuse !== null) {
      socket.end(`HTTP/1.1 ${refuse[1]} Refused\r\nRetry-After: 7\r\nContent-Type: text/plain\r\nContent-Length: 7\r\nConnection: close\r\n\r\nrefused`);
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      let closedResolve!: (c: { code: number; reason: string }) => void;
      const conn: UpstreamConnection = {
        ws, request, messages: [], pings: [], pongs: [], closed: null,
        whenClosed: new Promise((resolve) => { closedResolve = resolve; }),
      };
      ws.on('message', (data, isBinary) => {
        conn.messages.push({ data, isBinary });
        if (request.url?.startsWith('/echo')) ws.send(data, { binary: isBinary });
      });
      ws.on('ping', (d) => conn.pings.push(d));
      ws.on('pong', (d) => conn.pongs.push(d));
      ws.on('error', () => { /* a test's abrupt close */ });
      ws.on('close', (code, reason) => { conn.closed = { code, reason: reason.toString() }; closedResolve(conn.closed); });
      connections.push(conn);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i].n < connections.length) { waiters[i].resolve(connections[waiters[i].n]); waiters.splice(i, 1); }
      }
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    origin: `${opts.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    connections,
    connection(n = connections.length) {
      if (n < connections.length) return Promise.resolve(connections[n]);
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
    async close() {
      for (const c of connections) c.ws.terminate();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface ClientEvents {
  readonly ws: WebSocket;
  /** The 101's headers, once upgraded. */
  upgradeHeaders: Record<string, string | string[] | undefined> | null;
  readonly messages: { data: Buffer; isBinary: boolean }[];
  readonly pings: Buffer[];
  readonly pongs: Buffer[];
  whenClosed: Promise<{ code: number; reason: string }>;
}

/** Records a client's events from its creation (before open, so nothing is missed). */
export function recordClient(ws: WebSocket): ClientEvents {
  const messages: { data: Buffer; isBinary: boolean }[] = [];
  const pings: Buffer[] = [];
  const pongs: Buffer[] = [];
  ws.on('message', (data, isBinary) => messages.push({ data, isBinary }));
  ws.on('ping', (d) => pings.push(d));
  ws.on('pong', (d) => pongs.push(d));
  ws.on('error', () => { /* reported through close or the test's own listener */ });
  const events: ClientEvents = { ws, upgradeHeaders: null, messages, pings, pongs, whenClosed: null as never };
  ws.on('upgrade', (res) => { events.upgradeHeaders = res.headers; });
  const whenClosed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  return Object.assign(events, { whenClosed });
}

/** Resolves when `ws` opens; rejects with the handshake's HTTP status (and body) when it is refused. */
export function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => reject(Object.assign(new Error(`refused: ${res.statusCode}`), { status: res.statusCode, headers: res.headers, body })));
    });
    ws.once('error', (err) => reject(err));
  });
}
