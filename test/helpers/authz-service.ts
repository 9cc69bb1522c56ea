// A small external authorization service speaking the Envoy ext_authz HTTP contract, for the
// ext-authz tests: a real node:http server on loopback that records every check it gets and
// decides with a few fixed rules (OPA does not run here: no Debian or npm package ships its
// binary). Rules, on the check's path after the service's prefix:
//   .../slow...                 held open until release() (or the connection closes);
//   ...admin...                 allowed when X-User-Role is `admin`, else 403 with a JSON body,
//                               WWW-Authenticate and X-Internal-Debug;
//   ...redirect...              302 to /login;  ...boom... 500;
//   ...big-deny...              403 with a body past the gateway's 64 KiB bound;
//   ...empty-deny...            401, WWW-Authenticate, no body;
//   Authorization `Bearer deny` 401 with a text body;
//   anything else               200 with X-Authz-User (the subject, else the Authorization,
//                               else `anonymous`) and X-Authz-Secret (which no test allows).
// startRawAuthzService answers every check with fixed bytes (answers node:http cannot write).
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { freePort } from './ports.js';

export interface Check {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  bodyBytes: number;
}

export interface AuthzService {
  readonly origin: string;
  readonly port: number;
  /** Every check received, in order. */
  readonly checks: Check[];
  /** Checks held open by the `slow` rule right now. */
  held(): number;
  /** Answers every held check 200. */
  release(): void;
  close(): Promise<void>;
}

function decide(check: Check, res: ServerResponse, hold: (res: ServerResponse) => void): void {
  const path = check.url;
  const h = check.headers;
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers }).end(text);
  };
  if (path.includes('slow')) return hold(res);
  if (path.includes('admin') && h['x-user-role'] !== 'admin') {
    return json(403, { reason: 'admins only' }, { 'www-authenticate': 'Policy realm="test"', 'x-internal-debug': 'rule 7' });
  }
  if (path.includes('redirect')) { res.writeHead(302, { location: '/login', 'content-length': 0 }).end(); return; }
  if (path.includes('boom')) return json(500, { oops: true });
  if (path.includes('big-deny')) { res.writeHead(403, { 'content-type': 'text/plain' }).end('x'.repeat(70 * 1024)); return; }
  if (path.includes('empty-deny')) { res.writeHead(401, { 'www-authenticate': 'Policy realm="test"', 'content-length': 0 }).end(); return; }
  if (h.authorization === 'Bearer deny') { res.writeHead(401, { 'content-type': 'text/plain' }).end('denied by policy'); return; }
  const user = String(h['x-lobby-subject'] ?? h.authorization ?? 'anonymous');
  res.writeHead(200, { 'x-authz-user': user, 'x-authz-secret': 'leak', 'content-length': 0 }).end();
}

export async function startAuthzService(): Promise<AuthzService> {
  const checks: Check[] = [];
  const holding = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    const check: Check = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyBytes: 0 };
    checks.push(check);
    req.on('data', (c: Buffer) => { check.bodyBytes += c.length; });
    req.on('end', () => decide(check, res, (held) => {
      holding.add(held);
      held.on('close', () => holding.delete(held));
    }));
  });
  server.keepAliveTimeout = 30_000;
  const port = await freePort();
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, '127.0.0.1', () => resolve()); });
  return {
    origin: `http://127.0.0.1:${port}`, port, checks,
    held: () => holding.size,
    release() {
      for (const res of holding) res.writeHead(200, { 'x-authz-user': 'late', 'content-length': 0 }).end();
      holding.clear();
    },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

export interface RawAuthzService {
  readonly origin: string;
  /** Checks received (request heads seen). */
  checks(): number;
  close(): Promise<void>;
}

/** A service that answers every request head it reads with `answer`, as bytes. */
export async function startRawAuthzService(answer: Buffer): Promise<RawAuthzService> {
  let checks = 0;
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let seen = '';
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString('latin1');
      while (seen.includes('\r\n\r\n')) {
        seen = seen.slice(seen.indexOf('\r\n\r\n') + 4);
        checks++;
        socket.write(answer);
      }
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, '127.0.0.1', () => resolve()); });
  return {
    origin: `http://127.0.0.1:${port}`,
    checks: () => checks,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}
