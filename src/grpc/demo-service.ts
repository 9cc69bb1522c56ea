// The demo's gRPC service (`npm start`, src/demo.ts): shop.v1.BookstoreService of
// config/protos/shop/v1/bookstore.proto on a real @grpc/grpc-js server, shelves kept in memory.
import { fileURLToPath } from 'node:url';
import type * as grpcTypes from '@grpc/grpc-js';
import { grpc } from './client.js';
import { loadProtoFiles } from './descriptors.js';

export const DEMO_PROTOS_DIR = fileURLToPath(new URL('../../../config/protos', import.meta.url));

type Obj = Record<string, unknown>;

export async function startDemoBookstore(port: number, host = '127.0.0.1'): Promise<grpcTypes.Server> {
  const g = grpc();
  const root = loadProtoFiles(['shop/v1/bookstore.proto'], [DEMO_PROTOS_DIR], DEMO_PROTOS_DIR);
  const service = root.lookupService('shop.v1.BookstoreService');
  const now = () => ({ seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 });
  const shelves = new Map<string, Obj>([['1', { id: '1', theme: 'fiction', created: now() }], ['2', { id: '2', theme: 'history', created: now() }]]);
  let nextId = 3;
  const notFound = (id: unknown) => Object.assign(new Error(`shelf ${String(id)} does not exist`), { code: g.status.NOT_FOUND });
  const unary: Record<string, (r: Obj) => Obj> = {
    ListShelves: (r) => ({ shelves: [...shelves.values()].slice(0, Number(r.page_size) || undefined) }),
    GetShelf: (r) => { const s = shelves.get(String(r.shelf ?? '0')); if (!s) throw notFound(r.shelf); return s; },
    CreateShelf: (r) => { const id = String(nextId++); const s = { ...(r.shelf as Obj | undefined), id, created: now() }; shelves.set(id, s); return s; },
    DeleteShelf: (r) => { if (!shelves.delete(String(r.shelf ?? '0'))) throw notFound(r.shelf); return {}; },
  };
  const definition: Record<string, grpcTypes.MethodDefinition<Obj, Obj>> = {};
  const handlers: grpcTypes.UntypedServiceImplementation = {};
  for (const m of service.methodsArray) {
    m.resolve();
    const req = m.resolvedRequestType!;
    const res = m.resolvedResponseType!;
    definition[m.name] = {
      path: `/shop.v1.BookstoreService/${m.name}`, requestStream: false, responseStream: m.responseStream === true,
      requestDeserialize: (b: Buffer) => req.toObject(req.decode(b), { longs: String }),
      requestSerialize: (o: Obj) => Buffer.from(req.encode(req.fromObject(o)).finish()),
      responseSerialize: (o: Obj) => Buffer.from(res.encode(res.fromObject(o)).finish()),
      responseDeserialize: (b: Buffer) => res.toObject(res.decode(b), { longs: String }),
    };
    if (m.responseStream) continue;
    handlers[m.name] = (call: grpcTypes.ServerUnaryCall<Obj, Obj>, cb: grpcTypes.sendUnaryData<Obj>) => {
      try { cb(null, unary[m.name](call.request)); } catch (err) { cb(err as grpcTypes.ServiceError); }
    };
  }
  handlers.ListBooks = (call: grpcTypes.ServerWritableStream<Obj, Obj>) => {
    const shelf = String(call.request.shelf ?? '0');
    if (!shelves.has(shelf)) { call.emit('error', notFound(shelf)); return; }
    for (let i = 1; i <= 3; i++) call.write({ name: `shelves/${shelf}/books/${i}`, title: `Book ${i}`, isbn: `978000000000${i}` });
    call.end();
  };
  const server = new g.Server();
  server.addService(definition, handlers);
  await new Promise<void>((resolve, reject) => server.bindAsync(`${host}:${port}`, g.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  return server;
}
