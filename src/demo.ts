// `npm start`: the demo. Starts two small JSON services on loopback (users on 9001 and
// 9011, orders on 9002), then the gateway on config/gateway.yaml in a child process, so
// that `curl localhost:8080/v1/users/42` answers right after the quick start.
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startDemoBookstore } from './grpc/demo-service.js';

function demoService(name: string, port: number): Promise<Server> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://demo');
      const parts = url.pathname.split('/').filter(Boolean);
      const body = {
        service: name,
        served_by: `${name}@127.0.0.1:${port}`,
        method: req.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        id: parts[1] ?? null,
        correlation_id: req.headers['x-correlation-id'] ?? null,
        forwarded_for: req.headers['x-forwarded-for'] ?? null,
        received_body_bytes: Buffer.concat(chunks).length,
      };
      const json = JSON.stringify(body);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
      res.end(json);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

const services = await Promise.all([
  demoService('users', 9001), demoService('users', 9011), demoService('orders', 9002),
]);
// The gRPC demo (docs/grpc.md): shop.v1.BookstoreService behind /v1/shelves.
const bookstore = await startDemoBookstore(9003);
const mainJs = fileURLToPath(new URL('./main.js', import.meta.url));
const config = process.env.LOBBY_CONFIG ?? 'config/gateway.yaml';
const gateway = spawn(process.execPath, [mainJs, 'start', '--config', config], { stdio: 'inherit' });
process.stderr.write(`demo services on 127.0.0.1:9001, :9011 (users) and :9002 (orders); try:\n` +
  `  curl -i localhost:8080/v1/users/42\n  curl -i localhost:8080/v1/orders/7\n` +
  `and a gRPC bookstore on 127.0.0.1:9003, transcoded from JSON:\n  curl -i localhost:8080/v1/shelves/1\n  curl -N localhost:8080/v1/shelves/1/books\n`);

const stop = (signal: NodeJS.Signals) => { gateway.kill(signal); };
process.on('SIGINT', () => stop('SIGTERM'));
process.on('SIGTERM', () => stop('SIGTERM'));
gateway.on('exit', (code) => {
  for (const s of services) s.close();
  bookstore.forceShutdown();
  process.exit(code ?? 0);
});
