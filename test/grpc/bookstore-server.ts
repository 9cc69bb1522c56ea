// A real @grpc/grpc-js server of test/fixtures/protos/grpc/bookstore/v1/bookstore.proto for
// the transcoder tests, with optional server reflection (v1 and/or v1alpha) written here with
// protobufjs (no @grpc/reflection on this machine).
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { createRequire } from 'node:module';
import type { Http2Server, IncomingHttpHeaders } from 'node:http2';
import { fileURLToPath } from 'node:url';
import { loadProtoFiles, rpcRoot, LOBBY_PROTOS_DIR } from '../../src/grpc/descriptors.js';
import { freePort } from '../helpers/ports.js';

const require = createRequire(import.meta.url);
export const FIXTURE_DIR = fileURLToPath(new URL('../../../test/fixtures/protos/grpc', import.meta.url));
export const BOOKSTORE_PROTO = 'bookstore/v1/bookstore.proto';

export function bookstoreRoot(): protobuf.Root {
  return loadProtoFiles([BOOKSTORE_PROTO], [FIXTURE_DIR], FIXTURE_DIR);
}

type Obj = Record<string, unknown>;
const TO_OBJECT = { longs: String, enums: Number, defaults: false, oneofs: true } as const;

export interface BookstoreServer {
  port: number;
  address: string;
  /** Metadata of the last call, lower-case names. */
  lastMetadata: Record<string, string>;
  /** Calls received, by method name. */
  calls: Record<string, number>;
  /** Every call's HTTP/2 request as it arrived: its path and raw `grpc-timeout` header (grpc-js
   * takes that header out of the metadata a handler sees). */
  received: { path: string; timeout: string | undefined }[];
  /** Calls the client (or the grpc-timeout it sent) cancelled before the handler answered. */
  cancelled: number;
  /** HTTP/2 sessions (connections) the server accepted. */
  sessions: number;
  stop(): Promise<void>;
}

export interface BookstoreOptions {
  reflection?: ('v1' | 'v1alpha')[];
  credentials?: grpc.ServerCredentials;
  /** Listen port (default: a free one). */
  port?: number;
  /** Every unary call fails with this gRPC status code (a target that is down or overloaded). */
  failWith?: number;
  /** With failWith: the `grpc-retry-pushback-ms` trailer to send along. */
  pushbackMs?: string;
  /** Every unary call is answered this many ms late (a slow target). */
  delayMs?: number;
}

function statusDetails(code: number, message: string): Buffer {
  const root = rpcRoot();
  const any = (name: string, obj: Obj) => {
    const t = root.lookupType(name);
    return { type_url: `type.googleapis.com/${name}`, value: t.encode(t.fromObject(obj)).finish() };
  };
  const status = root.lookupType('google.rpc.Status');
  return Buffer.from(status.encode(status.fromObject({
    code, message,
    details: [
      any('google.rpc.ErrorInfo', { reason: 'SHELF_LOCKED', domain: 'bookstore.example', metadata: { shelf: '7' } }),
      any('google.rpc.BadRequest', { field_violations: [{ field: 'shelf', description: 'must be positive' }] }),
      any('google.rpc.RetryInfo', { retry_delay: { seconds: 2, nanos: 500000000 } }),
    ],
  })).finish());
}

export async function startBookstore(opts: BookstoreOptions = {}): Promise<BookstoreServer> {
  const root = bookstoreRoot();
  const service = root.lookupService('bookstore.v1.Bookstore');
  const state: BookstoreServer = { port: 0, address: '', lastMetadata: {}, calls: {}, received: [], cancelled: 0, sessions: 0, stop: async () => {} };
  const impl: Record<string, (req: Obj, call: grpc.ServerUnaryCall<Obj, Obj> | grpc.ServerWritableStream<Obj, Obj>) => Obj | Promise<Obj> | null> = {
    ListShelves: (r) => ({ shelves: [{ id: '1', theme: 'fiction' }, { id: '9007199254740993', theme: 'big' }], next_page_token: `${r.page_size ?? 0}:${r.page_token ?? ''}` }),
    CreateShelf: (r) => ({ id: '9007199254740993', ...(r.shelf as Obj) }),
    GetShelf: (r, call) => {
      const md = new grpc.Metadata();
      md.set('x-shelf-source', 'db');
      md.set('x-internal', 'secret');
      call.sendMetadata(md);
      return { id: r.shelf ?? '0', theme: (r.store as string) || 'default' };
    },
    DeleteShelf: () => ({}),
    ArchiveShelf: (r) => ({ id: r.shelf, theme: 'archived' }),
    GetBook: (r) => ({ name: r.name, title: 'Dune', author: { display_name: 'Frank Herbert', author_id: '9007199254740993' }, genre: 1, tags: ['sf'], ratings: { a: 5 }, pages: 412 }),
    UpdateBook: (r) => ({ ...(r.book as Obj), title: `${(r.book as Obj).title ?? ''} (mask ${((r.update_mask as Obj | undefined)?.paths as string[] | undefined)?.join(',') ?? ''})` }),
    PutBook: (r) => r,
    GetBookTitle: () => ({ name: 'x', title: 'The Title' }),
    GetFile: (r) => r,
    Echo: (r) => r,
    Unmapped: (r) => r,
    Large: (r) => r,
    Tag: (r) => r, // raw bytes (see RAW below)
    Slow: (r, call) => new Promise<Obj>((resolve) => {
      const timer = setTimeout(() => resolve({ ms: r.ms }), Number(r.ms ?? 0));
      call.on('cancelled', () => { clearTimeout(timer); state.cancelled++; });
    }),
    Fail: (r) => {
      const code = Number(r.code ?? 2);
      const message = (r.message as string) ?? 'shelf 7 is locked: 100% sure, ünïcode';
      const metadata = new grpc.Metadata();
      if (r.with_details) metadata.set('grpc-status-details-bin', statusDetails(code, message));
      if (message.startsWith('rawhex:')) {
        // Sent as these bytes, not percent-encoded (grpc-js encodes a status message; a server
        // that does not sends raw bytes): the status metadata's grpc-message wins over grpc-js's
        // own (server-interceptors.js merges it in after), set past Metadata's ASCII-only check.
        const repr = (metadata as unknown as { internalRepr?: Map<string, (string | Buffer)[]> }).internalRepr;
        if (!(repr instanceof Map)) throw new Error('grpc-js Metadata.internalRepr is gone: the raw grpc-message hook needs updating');
        repr.set('grpc-message', [Buffer.from(message.slice(7), 'hex').toString('latin1')]);
      }
      throw Object.assign(new Error(message), { code, details: message, metadata });
    },
  };
  // Methods whose request bytes are answered back as they came: what the gateway encoded is
  // what it prints (protobufjs's objects would not keep int64 map keys).
  const RAW = new Set(['Tag']);
  const raw = (b: unknown) => b as Buffer;
  const definition: Record<string, grpc.MethodDefinition<Obj, Obj>> = {};
  for (const m of service.methodsArray) {
    m.resolve();
    const req = m.resolvedRequestType!;
    const res = m.resolvedResponseType!;
    if (RAW.has(m.name)) {
      definition[m.name] = {
        path: `/bookstore.v1.Bookstore/${m.name}`, requestStream: false, responseStream: false,
        requestDeserialize: raw as never, requestSerialize: raw as never, responseSerialize: raw as never, responseDeserialize: raw as never,
      };
      continue;
    }
    definition[m.name] = {
      path: `/bookstore.v1.Bookstore/${m.name}`,
      requestStream: false,
      responseStream: m.responseStream === true,
      requestDeserialize: (b: Buffer) => req.toObject(req.decode(b), TO_OBJECT),
      requestSerialize: (o: Obj) => Buffer.from(req.encode(req.fromObject(o)).finish()),
      responseSerialize: (o: Obj) => Buffer.from(res.encode(res.fromObject(o)).finish()),
      responseDeserialize: (b: Buffer) => res.toObject(res.decode(b), TO_OBJECT),
    };
  }
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const m of service.methodsArray) {
    if (m.responseStream) continue;
    handlers[m.name] = (call: grpc.ServerUnaryCall<Obj, Obj>, callback: grpc.sendUnaryData<Obj>) => {
      state.calls[m.name] = (state.calls[m.name] ?? 0) + 1;
      state.lastMetadata = Object.fromEntries(Object.entries(call.metadata.getMap()).map(([k, v]) => [k, String(v)]));
      if (opts.failWith !== undefined) {
        const metadata = new grpc.Metadata();
        if (opts.pushbackMs !== undefined) metadata.set('grpc-retry-pushback-ms', opts.pushbackMs);
        callback(Object.assign(new Error('failing on purpose'), { code: opts.failWith, details: `${state.address} fails on purpose`, metadata }));
        return;
      }
      const answer = () => new Promise<Obj>((resolve) => resolve(impl[m.name](call.request, call) as Obj | Promise<Obj>)).then(
        (out) => callback(null, out),
        (err) => callback(err as grpc.ServiceError),
      );
      if (opts.delayMs === undefined) { void answer(); return; }
      const timer = setTimeout(answer, opts.delayMs);
      call.on('cancelled', () => { clearTimeout(timer); state.cancelled++; });
    };
  }
  handlers.StreamBooks = (call: grpc.ServerWritableStream<Obj, Obj>) => {
    state.calls.StreamBooks = (state.calls.StreamBooks ?? 0) + 1;
    if (opts.failWith !== undefined) {
      call.emit('error', Object.assign(new Error('failing on purpose'), { code: opts.failWith, details: `${state.address} fails on purpose` }));
      return;
    }
    const r = call.request;
    const count = Number(r.count ?? 0);
    const failAfter = r.fail_code === undefined ? -1 : Number(r.fail_after ?? 0); // proto3 sends no 0s
    const pauseMs = Number(r.pause_ms ?? 0); // before the second message
    let i = 0;
    const next = () => {
      if (call.cancelled) return;
      if (i === failAfter) {
        call.emit('error', Object.assign(new Error('the shelf caught fire'), { code: Number(r.fail_code ?? 14), details: 'the shelf caught fire' }));
        return;
      }
      if (i >= count) { call.end(); return; }
      const ok = call.write({ name: `shelves/${r.shelf}/books/${i}`, title: `Book ${i}`, author: { author_id: '9007199254740993' } });
      i++;
      const go = i === 1 && pauseMs > 0 ? () => setTimeout(next, pauseMs) : () => setImmediate(next);
      if (ok) go(); else call.once('drain', go);
    };
    next();
  };
  const server = new grpc.Server();
  server.addService(definition, handlers);
  if (opts.reflection) addReflection(server, root, opts.reflection);
  const port = opts.port ?? await freePort();
  await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, opts.credentials ?? grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  // grpc-js has no public hook on the raw request headers: its HTTP/2 servers are reached
  // through a private field (checked, so a grpc-js that renamed it fails here, not silently).
  const h2 = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
  if (!(h2 instanceof Map) || h2.size === 0) throw new Error('grpc-js Server.http2Servers is gone: the raw-header hook needs updating');
  for (const s of h2.keys()) {
    s.prependListener('session', () => { state.sessions++; });
    s.prependListener('stream', (_stream: unknown, headers: IncomingHttpHeaders) => {
      state.received.push({ path: String(headers[':path']), timeout: headers['grpc-timeout'] as string | undefined });
    });
  }
  state.port = port;
  state.address = `127.0.0.1:${port}`;
  state.stop = () => new Promise((resolve) => server.tryShutdown(() => resolve()));
  return state;
}

/** Server reflection of `root`'s files: list_services, file_containing_symbol, file_by_filename. */
function addReflection(server: grpc.Server, root: protobuf.Root, versions: readonly string[]): void {
  const refl = loadProtoFiles(['grpc/reflection/v1/reflection.proto', 'grpc/reflection/v1alpha/reflection.proto', 'google/api/annotations.proto'], [], LOBBY_PROTOS_DIR);
  const fdp = refl.lookupType('google.protobuf.FileDescriptorProto');
  const ext = require('protobufjs/ext/descriptor') as { FileDescriptorSet: protobuf.Type };
  void ext;
  const set = (root as unknown as { toDescriptor(syntax: string): protobuf.Message }).toDescriptor('proto3');
  const files = (ext.FileDescriptorSet.toObject(set, { defaults: false }) as { file: Obj[] }).file;
  // protobufjs's converter writes camelCase objects and drops method options: each file is
  // encoded with its own types, read back with descriptor.proto's (snake_case, which knows
  // the google.api.http extension), given its (google.api.http) options, and encoded again.
  const extFdp = (ext.FileDescriptorSet as protobuf.Type).lookupType('FileDescriptorProto');
  const encoded = new Map<string, Buffer>();
  for (const f of files) {
    const plain = fdp.toObject(fdp.decode(extFdp.encode(extFdp.fromObject(f)).finish()), { defaults: false }) as Obj;
    for (const s of (plain.service as Obj[] | undefined) ?? []) {
      const svc = root.lookupService(`${plain.package ? `${String(plain.package)}.` : ''}${String(s.name)}`);
      for (const m of (s.method as Obj[] | undefined) ?? []) {
        const rule = (svc.methods[String(m.name)].parsedOptions ?? []).find((o) => '(google.api.http)' in o)?.['(google.api.http)'];
        if (rule !== undefined) {
          const r = { ...(rule as Obj) };
          if (r.additional_bindings !== undefined && !Array.isArray(r.additional_bindings)) r.additional_bindings = [r.additional_bindings];
          m.options = { '.google.api.http': r };
        }
      }
    }
    encoded.set(String(plain.name), Buffer.from(fdp.encode(fdp.fromObject(plain)).finish()));
  }
  const fileOf = (symbol: string): Buffer[] => {
    const found = root.lookup(symbol);
    if (found === null) return [];
    const target = found.filename ?? '';
    return [...encoded.entries()].filter(([name]) => target.endsWith(name)).map(([, b]) => b).concat(
      [...encoded.entries()].filter(([name]) => !target.endsWith(name)).map(([, b]) => b), // every other file: its imports
    );
  };
  for (const version of versions) {
    const req = refl.lookupType(`grpc.reflection.${version}.ServerReflectionRequest`);
    const res = refl.lookupType(`grpc.reflection.${version}.ServerReflectionResponse`);
    server.addService({
      ServerReflectionInfo: {
        path: `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
        requestStream: true, responseStream: true,
        requestDeserialize: (b: Buffer) => req.toObject(req.decode(b)),
        requestSerialize: (o: Obj) => Buffer.from(req.encode(req.fromObject(o)).finish()),
        responseSerialize: (o: Obj) => Buffer.from(res.encode(res.fromObject(o)).finish()),
        responseDeserialize: (b: Buffer) => res.toObject(res.decode(b)),
      },
    }, {
      ServerReflectionInfo: (call: grpc.ServerDuplexStream<Obj, Obj>) => {
        call.on('data', (r: Obj) => {
          if (r.list_services !== undefined) {
            call.write({ list_services_response: { service: [{ name: 'bookstore.v1.Bookstore' }, { name: `grpc.reflection.${version}.ServerReflection` }] } });
          } else if (r.file_containing_symbol !== undefined) {
            call.write({ file_descriptor_response: { file_descriptor_proto: fileOf(String(r.file_containing_symbol)) } });
          } else if (r.file_by_filename !== undefined) {
            const b = encoded.get(String(r.file_by_filename));
            call.write(b ? { file_descriptor_response: { file_descriptor_proto: [b] } } : { error_response: { error_code: 5, error_message: 'not found' } });
          } else {
            call.write({ error_response: { error_code: 12, error_message: 'unimplemented' } });
          }
        });
        call.on('end', () => call.end());
      },
    });
  }
}
