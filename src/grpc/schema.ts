// Config keys of the gRPC transcoder (docs/grpc.md#configuration): the `grpc` and
// `descriptors` keys of a service, and `transcode` under a route. config-schema.ts spreads
// them in; the checks between values are in compile.ts of this folder.
import { z } from 'zod';
import { rule, section } from '../control/schema-kit.js';
import { HEADER_NAME_TOKEN } from '../control/schema-kit.js';

/** `host:port` (a name or IPv4 address, or `[v6]`), nothing else: gRPC channels take no path. */
export function checkGrpcTarget(raw: string): string | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(raw);
  if (m === null) return 'must be "host:port", like "127.0.0.1:50051" (no scheme: tls says whether it is TLS)';
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return 'port must be 1..65535';
  return null;
}

const grpcTlsSchema = section({
  /** PEM file of the CA that signed the targets' certificates (default: the system's). */
  ca_file: z.string().min(1).optional(),
  /** Name checked against the certificate, and sent as SNI (default: the target's host). */
  server_name: z.string().min(1).optional(),
});

export const grpcServiceKeys = {
  grpc: section({
    targets: z.array(z.string().superRefine(rule(checkGrpcTarget))).min(1, { error: 'must list at least one target' }),
    tls: z.union([z.boolean(), grpcTlsSchema]).default(false),
  }).optional(),
  descriptors: z.union([
    section({
      protos: z.array(z.string().min(1)).min(1, { error: 'must list at least one .proto file' }),
      include: z.array(z.string().min(1)).default([]),
    }),
    section({ reflection: z.literal(true) }),
  ]).optional(),
};

const headerName = z.string().regex(HEADER_NAME_TOKEN, 'must be a header name');

export const transcodeSchema = section({
  /** Full names of the gRPC services this route serves (`shop.v1.BookstoreService`). */
  services: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/, 'must be a full service name like "shop.v1.BookstoreService"')).min(1),
  print: section({
    emit_defaults: z.boolean().default(false),
    proto_field_names: z.boolean().default(false),
    enums_as: z.enum(['name', 'number']).default('name'),
  }).prefault({}),
  unknown_query_parameters: z.enum(['reject', 'ignore']).default('reject'),
  auto_mapping: z.boolean().default(false),
  /** Request headers forwarded as metadata besides the built-in ones. */
  request_headers: z.array(headerName).default([]),
  /** Initial metadata returned as response headers. */
  response_headers: z.array(headerName).default([]),
  /** Messages (request or response) of at least this many bytes are transcoded in the pool. */
  // 16 KiB: from native-bench/grpc-offload.bench.ts (inline ~165 µs vs ~33 µs of the caller per pool task).
  offload_bytes: z.number().int().min(0).default(16384),
});

export type RawTranscode = z.output<typeof transcodeSchema>;
export type RawGrpcService = { grpc?: z.output<typeof grpcServiceKeys.grpc>; descriptors?: z.output<typeof grpcServiceKeys.descriptors> };
