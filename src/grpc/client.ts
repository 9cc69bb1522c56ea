// The gRPC upstream client on the dispatch shape (src/data/upstream/dispatch.ts): one
// @grpc/grpc-js channel per target per worker (shared across generations while the target's
// settings stay), raw Buffer (de)serializers (the transcoder encodes and decodes), every call
// a server-streaming call (a unary call is the same bytes on the wire: one request message,
// at most one response).
//
// How a call maps onto the handler, so upstream policies (issue 14's breakers, retries)
// wrap gRPC services unchanged:
//   onResponseStart(200, initial metadata)   with the first response message, or
//   onResponseStart(HTTP status of the gRPC status, initial metadata)  for an error before one;
//   onResponseData(message) per message;
//   onResponseEnd(trailers)  with `grpc-status`, `grpc-message` and the rest of the trailers.
// A breaker thus reads an UNAVAILABLE before any message as a 503; retries decide on the
// gRPC status itself (runtime.ts GrpcCall, through retry.ts's retryDelay).
import type * as grpcTypes from '@grpc/grpc-js';
import { lazily } from '../shared/lazy-require.js';
import type { DispatchController, DispatchFn, DispatchOptions, HeaderField } from '../data/upstream/dispatch.js';
import type { CompiledGrpcService } from './compiled.js';
import { httpStatusOf } from './status.js';

export const grpc = lazily<typeof grpcTypes>('@grpc/grpc-js');

/** What the transcoder adds to the dispatch options for a gRPC call. */
export interface GrpcDispatchOptions extends DispatchOptions {
  /** Absolute grpc deadline (Date.now() ms; sent as grpc-timeout), or 0 for none. */
  readonly deadline: number;
}

const identity = (b: Buffer): Buffer => b;
const channels = new Map<string, grpcTypes.Client>();

function channelKey(address: string, tls: CompiledGrpcService['tls']): string {
  return tls === null ? `h2c:${address}` : `tls:${address}:${tls.serverName ?? ''}:${tls.caPem ?? ''}`;
}

/** The channel of a target, made once per worker. */
function channel(address: string, tls: CompiledGrpcService['tls']): grpcTypes.Client {
  const key = channelKey(address, tls);
  let client = channels.get(key);
  if (client === undefined) {
    const g = grpc();
    const creds = tls === null ? g.credentials.createInsecure()
      : g.credentials.createSsl(tls.caPem === null ? null : Buffer.from(tls.caPem));
    // Retries are the gateway's (issue 14's interceptors), not grpc-js's: its retry wrapper
    // costs every call; channelz bookkeeping too.
    const options: grpcTypes.ChannelOptions = {
      'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.enable_retries': 0, 'grpc.enable_channelz': 0,
    };
    if (tls?.serverName) options['grpc.ssl_target_name_override'] = tls.serverName;
    client = new g.Client(address, creds, options);
    channels.set(key, client);
  }
  return client;
}

/** The pool key of a target (GET /upstreams, and which channels a generation keeps). */
export function grpcPoolKey(address: string, tls: CompiledGrpcService['tls']): string {
  return `grpc:${channelKey(address, tls)}`;
}

/** Closes the channels no live generation uses (called with the keys the live ones use). */
export function closeUnusedChannels(used: ReadonlySet<string>): void {
  for (const [key, client] of channels) {
    if (!used.has(`grpc:${key}`)) { client.close(); channels.delete(key); }
  }
}

function flatMetadata(md: grpcTypes.Metadata | undefined, out: HeaderField[]): HeaderField[] {
  if (md === undefined) return out;
  const map = md.getMap();
  for (const name of Object.keys(map)) {
    for (const value of md.get(name)) out.push(name, typeof value === 'string' ? value : Buffer.from(value));
  }
  return out;
}

/** The dispatch function of one gRPC target (both of its UpstreamTarget clients). */
export function grpcDispatch(address: string, tls: CompiledGrpcService['tls']): DispatchFn {
  return (options, handler) => {
    const o = options as GrpcDispatchOptions;
    const g = grpc();
    const md = new g.Metadata();
    const h = o.headers;
    for (let i = 0; i < h.length; i += 2) md.add(h[i], h[i + 1]);
    const callOptions: grpcTypes.CallOptions = o.deadline > 0 ? { deadline: o.deadline } : {};
    const call = channel(address, tls).makeServerStreamRequest(o.path, identity, identity, o.body as Buffer, md, callOptions);
    let headers: HeaderField[] = [];
    let started = false;
    let done = false;
    const controller: DispatchController = {
      abort() { if (!done) { done = true; call.cancel(); } },
      pause() { call.pause(); },
      resume() { call.resume(); },
      get aborted() { return done; },
      get paused() { return call.isPaused(); },
    };
    call.on('metadata', (m: grpcTypes.Metadata) => { headers = flatMetadata(m, []); });
    call.on('data', (message: Buffer) => {
      if (done) return;
      if (!started) { started = true; handler.onResponseStart?.(controller, 200, headers, 'OK'); }
      handler.onResponseData?.(controller, message);
    });
    call.on('error', () => { /* the status event carries it */ });
    call.on('status', (status: grpcTypes.StatusObject) => {
      if (done) return;
      done = true;
      if (!started) { started = true; handler.onResponseStart?.(controller, httpStatusOf(status.code), headers, ''); }
      const trailers = flatMetadata(status.metadata, ['grpc-status', String(status.code), 'grpc-message', status.details]);
      handler.onResponseEnd?.(controller, trailers);
    });
    handler.onRequestStart?.(controller, null);
  };
}
