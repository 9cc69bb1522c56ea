// Target `fastify`: @fastify/http-proxy, the best-known Node peer, as a small keep-alive reverse proxy.
//   node dist/loadtest/fastify-server.js --host 127.0.0.1 --port 18084 --upstream http://127.0.0.1:18081 --connections 64
// One process, one event loop (pinned like Lobby's worker), no logging; the upstream client is
// reply-from's default undici Pool, sized like Lobby's `connections` and nginx's `keepalive`.

import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import httpProxy from '@fastify/http-proxy';

const { values } = parseArgs({
  options: { host: { type: 'string' }, port: { type: 'string' }, upstream: { type: 'string' }, connections: { type: 'string' } },
  strict: true,
});
const port = Number(values.port);
const connections = Number(values.connections);
if (!values.host || !values.upstream || !Number.isInteger(port) || !Number.isInteger(connections) || connections < 1) {
  process.stderr.write('usage: fastify-server.js --host H --port P --upstream URL --connections N (started by loadtest/run.js)\n');
  process.exit(2);
}

// keepAliveTimeout and the request limit well above a run: reconnects are not what is measured.
const app = Fastify({ logger: false, keepAliveTimeout: 75_000, bodyLimit: 64 * 1024 * 1024 });
await app.register(httpProxy, {
  upstream: values.upstream,
  undici: { connections, pipelining: 1, keepAliveTimeout: 75_000 },
});
await app.listen({ host: values.host, port, backlog: 4096 });
const stop = (): void => { void app.close().then(() => process.exit(0)); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
