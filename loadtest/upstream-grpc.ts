// The gRPC upstream of scenarios with `grpc: true`: the demo bookstore (src/grpc/demo-service.ts,
// shop.v1.BookstoreService on a real @grpc/grpc-js server), run as its own process on the
// driver's core. `node dist/loadtest/upstream-grpc.js HOST PORT`.
import { startDemoBookstore } from '../src/grpc/demo-service.js';

const [host = '127.0.0.1', port = '18086'] = process.argv.slice(2);
const server = await startDemoBookstore(Number(port), host);
process.on('SIGTERM', () => { server.forceShutdown(); process.exit(0); });
