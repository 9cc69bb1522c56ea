// Real upstream HTTP servers for tests (node:http on loopback). Each records what it
// received so a test can assert what the gateway forwarded.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { freePort } from './ports.js';

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  bodyBytes: number;
  /** Source port of the connection it came on (tells the gateway's sockets apart). */
  remotePort: number;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, received: ReceivedRequest) => void;

export interface Upstream {
  readonly port: number;
  readonly origin: string;
  readonly name: string;
  readonly received: ReceivedRequest[];
  readonly server: Server;
  /** Sockets the server has accepted (to count upstream connections). */
  connections: number;
  close(): Promise<void>;
}

/** Default handler: answers JSON describing the request (name, method, url, headers). */
export function echoHandler(name: string): UpstreamHandler {
  return (req, res, received) => {
    const json = JSON.stringify({ upstream: name, method: received.method, url: received.url, headers: received.headers, bodyBytes: received.bodyBytes });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
    res.end(json);
  };
}

export async function startUpstream(name: string, handler: UpstreamHandler = echoHandler(name), opts: { consumeBody?: boolean } = {}): Promise<Upstream> {
  const received: ReceivedRequest[] = [];
  const server = createServer((req, res) => {
    const rec: ReceivedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: 0, remotePort: req.socket.remotePort ?? 0 };
    received.push(rec);
    if (opts.consumeBody === false) { handler(req, res, rec); return; }
    req.on('data', (c: Buffer) => { rec.bodyBytes += c.length; });
    req.on('end', () => handler(req, res, rec));
  });
  server.keepAliveTimeout = 30_000;
  const up: Upstream = {
    port: 0, origin: '', name, received, server, connections: 0,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
  server.on('connection', () => { up.connections++; });
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve(); });
      });
      Object.assign(up, { port, origin: `http://127.0.0.1:${port}` });
      return up;
    } catch (err) {
      if (attempt > 10) throw err;
    }
  }
}
