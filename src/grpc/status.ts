// gRPC status ⇄ HTTP, and google.rpc.Status JSON: the body of every error on a transcoded
// route, the upstream's (details decoded from grpc-status-details-bin) and the gateway's own.
import type protobuf from 'protobufjs';
import type { GatewayErrorSpec } from '../shared/errors.js';
import { pb, rpcRoot } from './descriptors.js';
import { protoToJson, type JsonPrintOptions } from './json/index.js';

const DETAIL_PRINT: JsonPrintOptions = { emitDefaults: false, protoFieldNames: false, enumsAs: 'name' };

export const GRPC_CODE = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5,
  ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9,
  ABORTED: 10, OUT_OF_RANGE: 11, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14,
  DATA_LOSS: 15, UNAUTHENTICATED: 16,
} as const;

// The table of Envoy's grpc_json_transcoder and grpc-gateway v2 (runtime/errors.go).
const HTTP_OF_CODE = [200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401];

/** The HTTP status for a gRPC status code (codes outside 0..16: 500). */
export function httpStatusOf(code: number): number {
  return code >= 0 && code < HTTP_OF_CODE.length ? HTTP_OF_CODE[code] : 500;
}

/** The gRPC code a gateway error stands for (its HTTP status read the other way). */
export function grpcCodeOfHttp(status: number): number {
  switch (status) {
    case 400: case 413: case 414: case 431: return GRPC_CODE.INVALID_ARGUMENT;
    case 401: return GRPC_CODE.UNAUTHENTICATED;
    case 403: return GRPC_CODE.PERMISSION_DENIED;
    case 404: return GRPC_CODE.NOT_FOUND;
    case 405: case 501: return GRPC_CODE.UNIMPLEMENTED;
    case 408: case 504: return GRPC_CODE.DEADLINE_EXCEEDED;
    case 409: return GRPC_CODE.ABORTED;
    case 429: return GRPC_CODE.RESOURCE_EXHAUSTED;
    case 499: return GRPC_CODE.CANCELLED;
    case 502: case 503: return GRPC_CODE.UNAVAILABLE;
    default: return GRPC_CODE.INTERNAL;
  }
}

const TYPE_PREFIX = 'type.googleapis.com/';

/** One Any of Status.details as proto3 JSON: `@type` and the message's fields. A type neither
 * the service's descriptors nor google/rpc/error_details.proto know keeps its bytes (base64). */
function printAny(any: { type_url?: string; value?: Uint8Array }, registry: protobuf.Root | null): Record<string, unknown> {
  const url = any.type_url ?? '';
  const name = url.slice(url.lastIndexOf('/') + 1);
  const value = any.value ?? new Uint8Array(0);
  const type = lookupType(registry, name) ?? lookupType(rpcRoot(), name);
  if (type === null) return { '@type': url, value: Buffer.from(value).toString('base64') };
  try {
    const obj = JSON.parse(protoToJson(type, value, DETAIL_PRINT)) as Record<string, unknown>;
    return { '@type': url, ...obj };
  } catch {
    return { '@type': url, value: Buffer.from(value).toString('base64') };
  }
}

function lookupType(root: protobuf.Root | null, name: string): protobuf.Type | null {
  if (root === null || name === '') return null;
  try {
    const found = root.lookup(name);
    return found instanceof pb().Type ? found : null;
  } catch {
    return null;
  }
}

/** The Status JSON of an upstream status: `details` from grpc-status-details-bin when sent
 * (its code and message win over the headers', as the spec says they must agree). */
export function upstreamStatusJson(code: number, message: string, detailsBin: Buffer | null, registry: protobuf.Root | null): string {
  let details: Record<string, unknown>[] = [];
  if (detailsBin !== null) {
    try {
      const type = rpcRoot().lookupType('google.rpc.Status');
      const status = type.toObject(type.decode(detailsBin), { defaults: true }) as { details: { type_url: string; value: Uint8Array }[] };
      details = status.details.map((d) => printAny(d, registry));
    } catch {
      details = []; // undecodable details: the code and message still go out
    }
  }
  return JSON.stringify({ code, message, details });
}

/** The Status JSON of a gateway error: the gRPC code its status stands for, the message (and
 * what exactly was wrong), and an ErrorInfo with the gateway's code and the correlation id. */
export function gatewayStatusJson(spec: GatewayErrorSpec, correlationId: string, detail = ''): string {
  return JSON.stringify({
    code: grpcCodeOfHttp(spec.status),
    message: detail === '' ? spec.message : `${spec.message} ${detail}`,
    details: [{
      '@type': `${TYPE_PREFIX}google.rpc.ErrorInfo`,
      reason: spec.code,
      domain: 'lobby',
      metadata: { correlation_id: correlationId },
    }],
  });
}
