// A gRPC server reflection client (grpc.reflection.v1, falling back to v1alpha), written with
// protobufjs over the reflection protos Lobby ships (src/grpc/protos/grpc/reflection): lists
// the services, fetches the files that define them and their imports, and builds one Root.
// protobufjs's descriptor converter drops method options, so each method's
// (google.api.http) rule is read from the same FileDescriptorProto bytes, decoded with
// descriptor.proto and annotations.proto, and put back as the option protobufjs parses.
import type protobuf from 'protobufjs';
import type * as grpcTypes from '@grpc/grpc-js';
import { createRequire } from 'node:module';
import { grpc } from './client.js';
import { LOBBY_PROTOS_DIR, loadProtoFiles, pb } from './descriptors.js';
import type { CompiledGrpcService } from './compiled.js';

const require = createRequire(import.meta.url);
const REFLECTION_VERSIONS = ['v1', 'v1alpha'] as const;
const identity = (b: Buffer): Buffer => b;

let protos: protobuf.Root | null = null;
function reflectionRoot(): protobuf.Root {
  protos ??= loadProtoFiles(
    ['grpc/reflection/v1/reflection.proto', 'grpc/reflection/v1alpha/reflection.proto', 'google/api/annotations.proto'],
    [], LOBBY_PROTOS_DIR,
  );
  return protos;
}

interface ReflectionResponse {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Uint8Array[] };
  error_response?: { error_code: number; error_message: string };
}

/** One reflection stream: send requests one at a time, each answered in order. */
class ReflectionStream {
  private readonly call: grpcTypes.ClientDuplexStream<Buffer, Buffer>;
  private readonly waiting: { resolve: (r: ReflectionResponse) => void; reject: (e: Error) => void }[] = [];
  private failed: Error | null = null;

  constructor(client: grpcTypes.Client, private readonly version: string, deadline: number) {
    const req = reflectionRoot().lookupType(`grpc.reflection.${version}.ServerReflectionRequest`);
    const res = reflectionRoot().lookupType(`grpc.reflection.${version}.ServerReflectionResponse`);
    this.encode = (obj) => Buffer.from(req.encode(req.fromObject(obj)).finish());
    this.call = client.makeBidiStreamRequest(`/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`, identity, identity, new (grpc().Metadata)(), { deadline });
    this.call.on('data', (b: Buffer) => this.waiting.shift()?.resolve(res.toObject(res.decode(b), { defaults: true }) as ReflectionResponse));
    this.call.on('error', (err: Error) => { this.failed = err; for (const w of this.waiting.splice(0)) w.reject(err); });
  }
  private readonly encode: (obj: Record<string, unknown>) => Buffer;

  ask(request: Record<string, unknown>): Promise<ReflectionResponse> {
    if (this.failed !== null) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.call.write(this.encode(request));
    });
  }
  end(): void { this.call.end(); }
  get name(): string { return this.version; }
}

/** Fetches every service's descriptors from `address` (10 s at most). */
export async function fetchDescriptors(address: string, tls: CompiledGrpcService['tls']): Promise<protobuf.Root> {
  const g = grpc();
  const creds = tls === null ? g.credentials.createInsecure() : g.credentials.createSsl(tls.caPem === null ? null : Buffer.from(tls.caPem));
  const options: grpcTypes.ChannelOptions = tls?.serverName ? { 'grpc.ssl_target_name_override': tls.serverName } : {};
  const client = new g.Client(address, creds, options);
  try {
    let lastError: Error | null = null;
    for (const version of REFLECTION_VERSIONS) {
      const stream = new ReflectionStream(client, version, Date.now() + 10_000);
      try {
        return await fetchWith(stream);
      } catch (err) {
        lastError = err as Error;
        // UNIMPLEMENTED: the server has no reflection of this version; try the next.
        if ((err as { code?: number }).code !== g.status.UNIMPLEMENTED) break;
      } finally {
        stream.end();
      }
    }
    throw new Error(`server reflection on ${address} failed: ${lastError?.message ?? 'unknown error'}`);
  } finally {
    client.close();
  }
}

async function fetchWith(stream: ReflectionStream): Promise<protobuf.Root> {
  const listed = await stream.ask({ list_services: '' });
  if (listed.error_response) throw new Error(listed.error_response.error_message);
  const services = (listed.list_services_response?.service ?? []).map((s) => s.name).filter((n) => !n.startsWith('grpc.reflection.'));
  const files = new Map<string, Uint8Array>();
  const descriptorType = reflectionRoot().lookupType('google.protobuf.FileDescriptorProto');
  const addFiles = (r: ReflectionResponse) => {
    if (r.error_response) throw new Error(r.error_response.error_message);
    for (const bytes of r.file_descriptor_response?.file_descriptor_proto ?? []) {
      const name = (descriptorType.decode(bytes) as unknown as { name: string }).name;
      if (!files.has(name)) files.set(name, bytes);
    }
  };
  for (const name of services) addFiles(await stream.ask({ file_containing_symbol: name }));
  // Imports the server did not send along.
  for (let changed = true; changed;) {
    changed = false;
    for (const bytes of [...files.values()]) {
      for (const dep of (descriptorType.decode(bytes) as unknown as { dependency: string[] }).dependency) {
        if (files.has(dep) || isBuiltIn(dep)) continue;
        addFiles(await stream.ask({ file_by_filename: dep }));
        changed = true;
      }
    }
  }
  return rootFromFiles([...files.values()]);
}

/** Files protobufjs has itself (the well-known types and descriptor.proto). */
function isBuiltIn(name: string): boolean {
  return name in pb().common || name === 'google/protobuf/descriptor.proto';
}

/** A Root from FileDescriptorProtos, with each method's (google.api.http) option restored. */
export function rootFromFiles(files: readonly Uint8Array[]): protobuf.Root {
  const descriptorExt = require('protobufjs/ext/descriptor') as { FileDescriptorSet: protobuf.Type };
  const set = descriptorExt.FileDescriptorSet;
  const P = pb();
  const fileType = set.lookupType('FileDescriptorProto');
  // Extensions are left out: the transcoder reads none but (google.api.http), restored below,
  // and protobufjs's converter refuses some it cannot name.
  const decoded = files.map((f) => { const d = fileType.decode(f) as unknown as { extension?: unknown[] }; d.extension = []; return d; });
  const message = set.fromObject({ file: decoded });
  const root = (P.Root as unknown as { fromDescriptor(m: unknown): protobuf.Root }).fromDescriptor(message);
  const withOptions = reflectionRoot().lookupType('google.protobuf.FileDescriptorProto');
  for (const bytes of files) {
    const file = withOptions.toObject(withOptions.decode(bytes), { defaults: true }) as {
      package: string; service: { name: string; method: { name: string; options?: Record<string, unknown> }[] }[];
    };
    for (const s of file.service) {
      const service = root.lookupService(`${file.package ? file.package + '.' : ''}${s.name}`);
      for (const m of s.method) {
        const rule = m.options?.['.google.api.http'];
        const method = service.methods[m.name];
        if (rule !== undefined && method !== undefined) method.parsedOptions = [{ '(google.api.http)': rule }];
      }
    }
  }
  root.resolveAll();
  return root;
}
