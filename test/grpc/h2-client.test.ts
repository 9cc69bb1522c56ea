// The gRPC client on node:http2 (src/grpc/client.ts), called through its dispatch shape in
// this process, against real servers: a raw node:http2 server whose every byte the test
// chooses (frames split and packed, trailers-only, not-gRPC answers, RST_STREAM codes, GOAWAY)
// and the real grpc-js bookstore (metadata, TLS, a restart). The transcoder tests
// (transcode, deadline, retry, tls) cover the same client behind the gateway.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { createServer as createNetServer, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { closeUnusedChannels, grpcDispatch, grpcPoolKey, grpcSessionCounts, grpcTimeout, MAX_SESSIONS, type GrpcDispatchOptions } from '../../src/grpc/client.js';
import type { DispatchController, DispatchFn, DispatchHandler, HeaderField } from '../../src/data/upstream/dispatch.js';
import type { CompiledGrpcService } from '../../src/grpc/compiled.js';
import { waitUntil } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';
import { TestPki } from '../helpers/tls-certs.js';
import { BOOKSTORE_PROTO, FIXTURE_DIR, startBookstore, type BookstoreServer } from './bookstore-server.js';
import { request } from 'undici';
import { startGateway } from '../helpers/gateway.js';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INADEQUATE_SECURITY, NGHTTP2_PROTOCOL_ERROR, NGHTTP2_INTERNAL_ERROR } = http2.constants;

/** A length-prefixed message (flag, uint32 BE length, bytes). */
function frame(message: Buffer, flag = 0, length = message.length): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = flag;
  prefix.writeUInt32BE(length, 1);
  return Buffer.concat([prefix, message]);
}

type RawHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, raw: string[], body: Buffer) => void;

// --- a server of HTTP/2 frames written by hand -----------------------------------------
// Node's server cannot send a bare RST_STREAM to a client that has ended its side (its
// stream.close() sends END_STREAM first, and the stream ends cleanly): this one can. It
// answers the preface and SETTINGS, and each request's HEADERS with what `script` writes.

function h2Frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}
/** HPACK: :status 200 (static index 8), content-type: application/grpc (literal, name index 31). */
const GRPC_RESPONSE_HEADERS = Buffer.concat([Buffer.from([0x88, 0x0f, 0x10, 16]), Buffer.from('application/grpc')]);
const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, GOAWAY: 7 } as const;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;

interface FrameServer { address: string; stop(): Promise<void> }

/** HPACK: grpc-status: 0 (literal without indexing, new name). */
const GRPC_OK_TRAILERS = Buffer.from([0x00, 11, ...Buffer.from('grpc-status'), 1, 0x30]);

async function startFrameServer(script: (streamId: number, write: (b: Buffer) => void, connection: number) => void, maxConcurrentStreams = 0): Promise<FrameServer> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createNetServer((socket) => {
    const connection = connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    let prefaceSeen = false;
    const settings = Buffer.alloc(maxConcurrentStreams > 0 ? 6 : 0);
    if (maxConcurrentStreams > 0) { settings.writeUInt16BE(0x3, 0); settings.writeUInt32BE(maxConcurrentStreams, 2); }
    socket.write(h2Frame(FRAME.SETTINGS, 0, 0, settings));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!prefaceSeen) {
        if (buf.length < 24) return;
        buf = buf.subarray(24);
        prefaceSeen = true;
      }
      while (buf.length >= 9) {
        const length = buf.readUIntBE(0, 3);
        if (buf.length < 9 + length) return;
        const type = buf[3];
        const flags = buf[4];
        const streamId = buf.readUInt32BE(5) & 0x7fffffff;
        buf = buf.subarray(9 + length);
        if (type === FRAME.SETTINGS && (flags & 1) === 0) socket.write(h2Frame(FRAME.SETTINGS, 1, 0, Buffer.alloc(0)));
        if (type === FRAME.HEADERS) script(streamId, (b) => socket.write(b), connection);
      }
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return {
    address: `127.0.0.1:${port}`,
    stop: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

function rstStream(streamId: number, code: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code, 0);
  return h2Frame(FRAME.RST_STREAM, 0, streamId, payload);
}

interface RawServer {
  address: string;
  port: number;
  /** Sessions the server accepted. */
  sessions: http2.ServerHttp2Session[];
  /** Each stream's request head as it arrived, and its close code. */
  streams: { raw: string[]; path: string; rstCode?: number }[];
  handlers: Record<string, RawHandler>;
  stop(): Promise<void>;
}

/** A raw h2c server: `handlers[path]` answers once the request body has arrived. */
async function startRawServer(settings: http2.Settings = {}, port?: number): Promise<RawServer> {
  const server = http2.createServer({ settings });
  const state: RawServer = { address: '', port: 0, sessions: [], streams: [], handlers: {}, stop: async () => {} };
  server.on('session', (s) => { state.sessions.push(s); s.on('error', () => {}); });
  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, raw: string[]) => {
    const seen: RawServer['streams'][number] = { raw, path: String(headers[':path']) };
    state.streams.push(seen);
    stream.on('error', () => {});
    stream.on('close', () => { seen.rstCode = stream.rstCode; });
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const handler = state.handlers[seen.path];
      if (handler === undefined) { stream.respond({ ':status': 404 }, { endStream: true }); return; }
      handler(stream, headers, raw, Buffer.concat(chunks));
    });
  });
  state.port = port ?? await freePort();
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(state.port, '127.0.0.1', () => resolve()); });
  state.address = `127.0.0.1:${state.port}`;
  state.stop = () => new Promise((resolve) => {
    for (const s of state.sessions) s.destroy();
    server.close(() => resolve());
  });
  return state;
}

/** An OK unary answer: headers, the given DATA writes (each its own frame), trailers. */
function answer(stream: http2.ServerHttp2Stream, writes: Buffer[], trailers: http2.OutgoingHttpHeaders = { 'grpc-status': '0' }, initial: http2.OutgoingHttpHeaders = {}): void {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...initial }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers(trailers));
  const next = (i: number) => {
    if (stream.destroyed) return;
    if (i === writes.length) { stream.end(); return; }
    // Each write flushed before the next is queued, so each goes out as a DATA frame of its own.
    stream.write(writes[i], () => setTimeout(() => next(i + 1), 5));
  };
  next(0);
}

interface Outcome {
  status: number;
  initial: HeaderField[];
  messages: Buffer[];
  trailers: HeaderField[];
  code: number;
  message: string;
  controller: DispatchController;
}

interface CallOptions { headers?: string[]; body?: Buffer; deadline?: number; handler?: Partial<DispatchHandler>; dispatch?: DispatchFn }

/** One call through the client; resolves with everything the handler was told. */
function call(address: string, path: string, opts: CallOptions = {}, tls: CompiledGrpcService['tls'] = null): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const out: Partial<Outcome> & { messages: Buffer[] } = { messages: [] };
    const handler: DispatchHandler = {
      onRequestStart(c) { out.controller = c; opts.handler?.onRequestStart?.(c, null); },
      onResponseStart(c, status, headers) {
        if (out.status !== undefined) reject(new Error('onResponseStart twice'));
        out.status = status; out.initial = headers;
        opts.handler?.onResponseStart?.(c, status, headers, '');
      },
      onResponseData(c, chunk) {
        if (out.status === undefined) reject(new Error('data before onResponseStart'));
        out.messages.push(Buffer.from(chunk as Uint8Array));
        opts.handler?.onResponseData?.(c, chunk);
      },
      onResponseEnd(_c, trailers) {
        const t = trailers ?? [];
        const value = (n: string) => { for (let i = 0; i < t.length; i += 2) if (t[i] === n) return String(t[i + 1]); return undefined; };
        resolve({ ...(out as Outcome), trailers: t, code: Number(value('grpc-status')), message: value('grpc-message') ?? '' });
      },
      onResponseError(_c, err) { reject(err); },
    };
    const options = {
      target: null, method: 'POST', path, headers: opts.headers ?? [], body: opts.body ?? Buffer.alloc(0), head: null, idempotent: false,
      deadline: opts.deadline ?? 0,
    } as unknown as GrpcDispatchOptions;
    (opts.dispatch ?? grpcDispatch(address, tls))(options, handler);
  });
}

function field(list: readonly HeaderField[], name: string): HeaderField | undefined {
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return undefined;
}

let raw: RawServer;
before(async () => { raw = await startRawServer(); });
after(async () => { await raw?.stop(); });

describe('framing', () => {
  it('a message split over DATA frames, several in one frame, one larger than a frame: each arrives whole', async () => {
    const a = Buffer.from('first message');
    const b = Buffer.alloc(100_000, 7); // > 16 KiB: HTTP/2 splits it over frames by itself
    const c = Buffer.from([1, 2, 3]);
    const d = Buffer.alloc(0);
    const bytes = Buffer.concat([frame(a), frame(b), frame(c), frame(d)]);
    raw.handlers['/t.S/Split'] = (stream) => answer(stream, [
      bytes.subarray(0, 2), // inside the first prefix
      bytes.subarray(2, 9), // the rest of the prefix and part of the message
      bytes.subarray(9, 5 + a.length + 3), // the end of a, part of b's prefix
      bytes.subarray(5 + a.length + 3, 60_000),
      bytes.subarray(60_000), // the end of b, c and the empty d packed in one frame
    ]);
    raw.handlers['/t.S/Packed'] = (stream) => answer(stream, [bytes.subarray(0, 5 + a.length + 5 + 10), Buffer.concat([bytes.subarray(5 + a.length + 5 + 10)])]);
    for (const path of ['/t.S/Split', '/t.S/Packed']) {
      const r = await call(raw.address, path, { body: Buffer.from('x') });
      assert.equal(r.code, 0, r.message);
      assert.equal(r.status, 200);
      assert.equal(r.messages.length, 4, path);
      assert.deepEqual(r.messages[0], a);
      assert.deepEqual(r.messages[1], b);
      assert.deepEqual(r.messages[2], c);
      assert.deepEqual(r.messages[3], d);
    }
  });

  it('sends :method POST, :scheme, :path, :authority, te, content-type, grpc-timeout, and the message prefixed', async () => {
    let body: Buffer = Buffer.alloc(0);
    raw.handlers['/t.S/Echo'] = (stream, _h, _raw, b) => { body = b; answer(stream, [b]); };
    const message = Buffer.from('hello');
    const r = await call(raw.address, '/t.S/Echo', { body: message, deadline: Date.now() + 30_000, headers: ['x-twice', 'one', 'x-twice', 'two'] });
    assert.equal(r.code, 0);
    assert.deepEqual(body, frame(message), 'flag 0, uint32 BE length, the message');
    assert.deepEqual(r.messages, [message]);
    const head = raw.streams.at(-1)!.raw;
    const get = (n: string) => { const i = head.indexOf(n); return i < 0 ? undefined : head[i + 1]; };
    assert.equal(get(':method'), 'POST');
    assert.equal(get(':scheme'), 'http');
    assert.equal(get(':path'), '/t.S/Echo');
    assert.equal(get(':authority'), raw.address);
    assert.equal(get('te'), 'trailers');
    assert.equal(get('content-type'), 'application/grpc');
    const timeout = get('grpc-timeout');
    assert.match(timeout ?? '', /^\d{1,8}m$/);
    assert.ok(Number(timeout!.slice(0, -1)) <= 30_000 && Number(timeout!.slice(0, -1)) > 20_000, timeout);
    assert.equal(head.indexOf('grpc-timeout'), head.findIndex((n, i) => i % 2 === 0 && !n.startsWith(':')), 'right after the pseudo-headers');
    assert.deepEqual(head.flatMap((n, i) => (n === 'x-twice' && i % 2 === 0 ? [head[i + 1]] : [])), ['one', 'two'], 'a repeated name: both values, in order');
    const large = Buffer.alloc(200_000, 3); // past the one-buffer size: prefix and message written apart
    const r2 = await call(raw.address, '/t.S/Echo', { body: large });
    assert.equal(r2.code, 0);
    assert.deepEqual(body, frame(large));
  });

  it('metadata with NUL, CR, LF, bytes above 0x7F or characters above 0xFF: never sent (node:http2 would write a character\'s low byte)', async () => {
    const bad: [string, string][] = [
      ['x-nul', 'a\0b'], ['x-cr', 'a\rb'], ['x-lf', 'a\nx-injected: 1'], ['x-del', 'a\x7fb'], ['x-latin1', 'caf\u00e9'],
      ['x-euro', '\u20ac'], ['x-smuggle', 'a\u010d\u010ax-injected: 1'], ['x-bin-bin', 'QUJD\u20ac'], ['x-\u00e9', 'v'], ['x-\u0100', 'v'],
    ];
    let seen: string[] = [];
    raw.handlers['/t.S/Md'] = (stream, _h, head) => { seen = head; answer(stream, [frame(Buffer.from('ok'))]); };
    const r = await call(raw.address, '/t.S/Md', { headers: [...bad.flat(), 'x-good', 'fine'] });
    assert.equal(r.code, 0, r.message);
    const names = seen.filter((_, i) => i % 2 === 0);
    assert.ok(names.includes('x-good'), 'the call went out with its good metadata');
    const own = new Set(['content-type', 'te', 'user-agent', 'grpc-timeout']);
    assert.deepEqual(names.filter((n) => !n.startsWith(':') && !own.has(n)), ['x-good'], 'no other metadata (nor an x-injected) reached the server');
    for (let i = 1; i < seen.length; i += 2) assert.match(seen[i], /^[\x20-\x7e]*$/, `every value the server got is printable ASCII: ${JSON.stringify(seen[i - 1])}`);
  });

  it('grpc-timeout: at most 8 digits, in a coarser unit when ms do not fit', () => {
    assert.equal(grpcTimeout(700), '700m');
    assert.equal(grpcTimeout(0.2), '1m');
    assert.equal(grpcTimeout(99_999_999), '99999999m');
    assert.equal(grpcTimeout(100_000_000), '100000S');
    assert.equal(grpcTimeout(1e12), '16666667M');
  });
});

describe('statuses', () => {
  it('trailers-only (grpc-status in the response headers): the status, its percent-decoded message and its metadata', async () => {
    raw.handlers['/t.S/TrailersOnly'] = (stream) => stream.respond({
      ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '7', 'grpc-message': 'not%20yours%3A%20%C3%BC%zz', 'x-why': 'locked',
    }, { endStream: true });
    const r = await call(raw.address, '/t.S/TrailersOnly');
    assert.equal(r.status, 403, 'PERMISSION_DENIED before any message: its HTTP status');
    assert.equal(r.code, 7);
    assert.equal(r.message, 'not yours: ü%zz', 'the valid escapes decoded, the broken one kept as its characters (grpc-go, grpc-java)');
    assert.equal(field(r.trailers, 'x-why'), 'locked');
    assert.deepEqual(r.messages, []);
    raw.handlers['/t.S/TrailersOnly2'] = (stream) => stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': '100%25 gone, %C3%BC' }, { endStream: true });
    const r2 = await call(raw.address, '/t.S/TrailersOnly2');
    assert.equal(r2.code, 5);
    assert.equal(r2.message, '100% gone, ü');
  });

  it('grpc-message with raw bytes above 0x7F: decoded once, to the bytes sent (an escape and a raw byte alike)', async () => {
    // node:http2 writes a header string as latin1: one byte per character, so these are the
    // bytes on the wire. "café" raw UTF-8, "%C3" + raw BC (one ü), "%25" (a %), a raw FF (not
    // UTF-8), a raw "%" at the end (not an escape).
    const sent = Buffer.concat([Buffer.from('caf\xc3\xa9 %C3\xbc 100%25 ', 'latin1'), Buffer.from([0xff]), Buffer.from(' %zz 5%', 'latin1')]);
    raw.handlers['/t.S/RawMessage'] = (stream) => answer(stream, [], { 'grpc-status': '9', 'grpc-message': sent.toString('latin1') });
    const r = await call(raw.address, '/t.S/RawMessage');
    assert.equal(r.code, 9);
    const message = field(r.trailers, 'grpc-message');
    assert.ok(Buffer.isBuffer(message), 'the server\'s message is handed on as bytes');
    assert.deepEqual(message, Buffer.concat([Buffer.from('café ü 100% ', 'utf8'), Buffer.from([0xff]), Buffer.from(' %zz 5%')]));
    raw.handlers['/t.S/PlainMessage'] = (stream) => answer(stream, [], { 'grpc-status': '9', 'grpc-message': Buffer.from('naïve', 'utf8').toString('latin1') });
    assert.deepEqual(field((await call(raw.address, '/t.S/PlainMessage')).trailers, 'grpc-message'), Buffer.from('naïve', 'utf8'), 'no escape at all: the same bytes');
  });

  it('-bin metadata from the server: padded and unpadded base64 decoded, a value that is not base64 left out', async () => {
    raw.handlers['/t.S/Bin'] = (stream) => answer(stream, [frame(Buffer.from('m'))], { 'grpc-status': '0', 'x-t-bin': 'QUJD, QQ==,QUI' }, {
      'x-ok-bin': ['QQ', 'QUI='], 'x-bad-bin': ['QQ=', 'QR', 'not base64!', 'QUJD'],
    });
    const r = await call(raw.address, '/t.S/Bin');
    assert.equal(r.code, 0, r.message);
    const all = (list: HeaderField[], name: string) => list.flatMap((v, i) => (i % 2 === 0 && v === name ? [list[i + 1]] : []));
    assert.deepEqual(all(r.initial, 'x-ok-bin'), [Buffer.from('A'), Buffer.from('AB')]);
    assert.deepEqual(all(r.initial, 'x-bad-bin'), [Buffer.from('ABC')], 'only the value that is base64');
    assert.deepEqual(all(r.trailers, 'x-t-bin'), [Buffer.from('ABC'), Buffer.from('A'), Buffer.from('AB')], 'comma-joined values split');
  });

  it('trailers without grpc-status: UNKNOWN; a stream ended without trailers: INTERNAL', async () => {
    raw.handlers['/t.S/NoStatus'] = (stream) => answer(stream, [frame(Buffer.from('m'))], { 'x-other': '1' });
    const r = await call(raw.address, '/t.S/NoStatus');
    assert.equal(r.status, 200, 'the message came first');
    assert.equal(r.messages.length, 1);
    assert.equal(r.code, 2);
    raw.handlers['/t.S/NoTrailers'] = (stream) => { stream.respond({ ':status': 200, 'content-type': 'application/grpc' }); stream.end(frame(Buffer.from('m'))); };
    const r2 = await call(raw.address, '/t.S/NoTrailers');
    assert.equal(r2.code, 13);
    raw.handlers['/t.S/CutMessage'] = (stream) => answer(stream, [frame(Buffer.from('whole message')).subarray(0, 9)]);
    const r3 = await call(raw.address, '/t.S/CutMessage');
    assert.equal(r3.code, 13, 'OK trailers inside a message: INTERNAL');
  });

  it('not a gRPC answer: the HTTP status mapped (doc/http-grpc-status-mapping.md), a wrong content-type UNKNOWN', async () => {
    const cases: [number, string, number][] = [[200, 'text/html', 2], [503, 'text/plain', 14], [404, 'text/plain', 12], [401, 'application/json', 16], [400, 'text/plain', 13], [500, 'text/plain', 2]];
    for (const [status, type, code] of cases) {
      raw.handlers[`/t.S/Http${status}`] = (stream) => { stream.respond({ ':status': status, 'content-type': type }); stream.end('<html>no</html>'); };
      const r = await call(raw.address, `/t.S/Http${status}`);
      assert.equal(r.code, code, `HTTP ${status} ${type}`);
      assert.deepEqual(r.messages, []);
    }
    raw.handlers['/t.S/Http503Grpc'] = (stream) => stream.respond({ ':status': 503, 'content-type': 'application/grpc', 'grpc-status': '8' }, { endStream: true });
    assert.equal((await call(raw.address, '/t.S/Http503Grpc')).code, 8, 'a grpc-status present is used, whatever the HTTP status');
  });

  it('RST_STREAM from the server: CANCEL → CANCELLED, REFUSED_STREAM → UNAVAILABLE, ENHANCE_YOUR_CALM → RESOURCE_EXHAUSTED, INADEQUATE_SECURITY → PERMISSION_DENIED, others INTERNAL', async () => {
    const cases: [number, number][] = [[NGHTTP2_CANCEL, 1], [NGHTTP2_REFUSED_STREAM, 14], [NGHTTP2_ENHANCE_YOUR_CALM, 8], [NGHTTP2_INADEQUATE_SECURITY, 7], [NGHTTP2_PROTOCOL_ERROR, 13], [NGHTTP2_INTERNAL_ERROR, 13]];
    let rst = 0;
    let headersFirst = true;
    const server = await startFrameServer((id, write) => {
      if (headersFirst) {
        write(h2Frame(FRAME.HEADERS, END_HEADERS, id, GRPC_RESPONSE_HEADERS));
        write(h2Frame(FRAME.DATA, 0, id, frame(Buffer.from('one'))));
      }
      write(rstStream(id, rst));
    });
    try {
      for (const [code, grpcCode] of cases) {
        rst = code;
        const r = await call(server.address, '/t.S/Rst');
        assert.equal(r.code, grpcCode, `RST_STREAM ${code}: ${r.message}`);
        assert.equal(r.messages.length, 1, 'the message before the reset was delivered');
      }
      headersFirst = false;
      rst = NGHTTP2_REFUSED_STREAM;
      const r = await call(server.address, '/t.S/Rst');
      assert.equal(r.status, 503, 'UNAVAILABLE before any message: 503 (a breaker counts it)');
      assert.equal(r.code, 14);
      rst = NGHTTP2_CANCEL;
      const late = await call(server.address, '/t.S/Rst', { deadline: Date.now() + 60_000 });
      assert.equal(late.code, 1, 'a server\'s CANCEL before the deadline is CANCELLED');
    } finally {
      await server.stop();
    }
  });

  it('a GOAWAY that refuses a stream (its id past the last one taken): UNAVAILABLE, and the next call reconnects', async () => {
    let goaway = true;
    const server = await startFrameServer((id, write) => {
      if (goaway) {
        const payload = Buffer.alloc(8); // last stream id 0: nothing taken; NO_ERROR
        write(h2Frame(FRAME.GOAWAY, 0, 0, payload));
        return;
      }
      write(h2Frame(FRAME.HEADERS, END_HEADERS, id, GRPC_RESPONSE_HEADERS));
      write(h2Frame(FRAME.DATA, 0, id, frame(Buffer.from('ok'))));
      write(h2Frame(FRAME.HEADERS, END_HEADERS | END_STREAM, id, GRPC_OK_TRAILERS));
    });
    try {
      const r = await call(server.address, '/t.S/Refused');
      assert.equal(r.code, 14, r.message);
      assert.equal(r.status, 503);
      goaway = false;
      const ok = await call(server.address, '/t.S/Ok');
      assert.equal(ok.code, 0, ok.message);
      assert.deepEqual(ok.messages, [Buffer.from('ok')]);
    } finally {
      await server.stop();
    }
  });

  it('a compressed message (flag 1, no encoding negotiated): INTERNAL, and the stream is cancelled', async () => {
    raw.handlers['/t.S/Compressed'] = (stream) => answer(stream, [frame(Buffer.from('zz'), 1)]);
    const r = await call(raw.address, '/t.S/Compressed');
    assert.equal(r.code, 13);
    assert.match(r.message, /compressed/);
    await waitUntil('the server saw the stream reset', () => raw.streams.at(-1)?.rstCode !== undefined);
  });

  it('a message over 64 MiB: RESOURCE_EXHAUSTED on its prefix (its bytes are never waited for)', async () => {
    raw.handlers['/t.S/Huge'] = (stream) => answer(stream, [frame(Buffer.alloc(10), 0, 64 * 1024 * 1024 + 1)]);
    const r = await call(raw.address, '/t.S/Huge');
    assert.equal(r.code, 8);
    assert.deepEqual(r.messages, []);
  });
});

describe('deadlines and cancellation', () => {
  it('past the deadline: DEADLINE_EXCEEDED from the client\'s own timer, and RST_STREAM CANCEL to the server', async () => {
    raw.handlers['/t.S/Never'] = (stream) => stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    const before = raw.streams.length;
    const r = await call(raw.address, '/t.S/Never', { deadline: Date.now() + 200 });
    assert.equal(r.code, 4);
    assert.equal(r.status, 504);
    await waitUntil('the server saw the stream cancelled', () => raw.streams[before]?.rstCode === NGHTTP2_CANCEL);
  });

  it('a deadline already passed: DEADLINE_EXCEEDED without a request', async () => {
    const before = raw.streams.length;
    const r = await call(raw.address, '/t.S/Never', { deadline: Date.now() - 1 });
    assert.equal(r.code, 4);
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(raw.streams.length, before, 'nothing was sent');
  });

  it('controller.abort(): the stream is cancelled at the server, the handler told nothing more', async () => {
    raw.handlers['/t.S/Abort'] = (stream) => answer(stream, [frame(Buffer.from('a')), frame(Buffer.from('b')), frame(Buffer.from('c'))]);
    const before = raw.streams.length;
    let ended = false;
    let messages = 0;
    await new Promise<void>((resolve) => {
      const options = { target: null, method: 'POST', path: '/t.S/Abort', headers: [], body: Buffer.alloc(0), head: null, idempotent: false, deadline: 0 } as unknown as GrpcDispatchOptions;
      grpcDispatch(raw.address, null)(options, {
        onResponseData(c) { messages++; c.abort(new Error('client gone')); resolve(); },
        onResponseEnd() { ended = true; },
      });
    });
    await waitUntil('the server saw the stream cancelled', () => raw.streams[before]?.rstCode === NGHTTP2_CANCEL);
    assert.equal(messages, 1);
    assert.equal(ended, false);
  });

  it('pause() holds a server stream back (flow control), resume() lets the rest come', async () => {
    const chunk = Buffer.alloc(16 * 1024, 1);
    const total = 200; // 3.2 MB: far past the stream's and the session's 64 KiB windows
    let flushed = 0;
    raw.handlers['/t.S/Stream'] = (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      let i = 0;
      const pump = () => {
        while (i < total) {
          i++;
          const more = stream.write(frame(chunk), () => { flushed++; });
          if (!more) { stream.once('drain', pump); return; }
        }
        stream.end();
      };
      pump();
    };
    let controller: DispatchController | null = null;
    const done = call(raw.address, '/t.S/Stream', { handler: { onResponseData(c) { if (controller === null) { controller = c; c.pause(); } } } });
    await waitUntil('the first message', () => controller !== null);
    await new Promise((res) => setTimeout(res, 300));
    assert.ok(controller!.paused);
    assert.ok(flushed < total / 2, `the server is held back while paused (${flushed} of ${total} flushed)`);
    controller!.resume();
    const r = await done;
    assert.equal(r.code, 0);
    assert.equal(r.messages.length, total);
  });

  it('a handler that throws inside an http2 callback: logged, the stream cancelled, the process goes on', async () => {
    raw.handlers['/t.S/Throw'] = (stream) => answer(stream, [frame(Buffer.from('a')), frame(Buffer.from('b'))]);
    const before = raw.streams.length;
    const options = { target: null, method: 'POST', path: '/t.S/Throw', headers: [], body: Buffer.alloc(0), head: null, idempotent: false, deadline: 0 } as unknown as GrpcDispatchOptions;
    grpcDispatch(raw.address, null)(options, { onResponseData() { throw new Error('a bug in a handler'); } });
    await waitUntil('the server saw the stream cancelled', () => raw.streams[before]?.rstCode === NGHTTP2_CANCEL);
    raw.handlers['/t.S/After'] = (stream) => answer(stream, [frame(Buffer.from('ok'))]);
    assert.equal((await call(raw.address, '/t.S/After')).code, 0);
  });
});

describe('sessions', () => {
  it('one session per target, reused by sequential and concurrent calls', async () => {
    const server = await startRawServer();
    try {
      server.handlers['/t.S/Ok'] = (stream) => answer(stream, [frame(Buffer.from('ok'))]);
      for (let i = 0; i < 10; i++) assert.equal((await call(server.address, '/t.S/Ok')).code, 0);
      const rs = await Promise.all(Array.from({ length: 30 }, () => call(server.address, '/t.S/Ok')));
      assert.ok(rs.every((r) => r.code === 0));
      assert.equal(server.sessions.length, 1, 'the server saw one connection');
      assert.equal(server.streams.length, 40);
      assert.deepEqual(grpcSessionCounts(server.address, null), { opened: 1, open: 1 });
    } finally {
      await server.stop();
    }
  });

  it('metadata Node sends only once (authorization twice): that call fails INTERNAL, the session stays', async () => {
    const server = await startRawServer();
    try {
      server.handlers['/t.S/Ok'] = (stream) => answer(stream, [frame(Buffer.from('ok'))]);
      assert.equal((await call(server.address, '/t.S/Ok')).code, 0);
      const twice = await call(server.address, '/t.S/Ok', { headers: ['authorization', 'Bearer a', 'authorization', 'Bearer b'] });
      assert.equal(twice.code, 13, twice.message);
      assert.equal((await call(server.address, '/t.S/Ok')).code, 0);
      assert.equal(server.sessions.length, 1, 'the client-sent headers did not cost the shared connection');
      assert.deepEqual(grpcSessionCounts(server.address, null), { opened: 1, open: 1 });
    } finally {
      await server.stop();
    }
  });

  it('the peer\'s max concurrent streams: never more streams per session, more sessions up to MAX_SESSIONS, the rest wait', async () => {
    const held: { id: number; write: (b: Buffer) => void; connection: number }[] = [];
    let hold = false;
    const reply = (id: number, write: (b: Buffer) => void) => {
      write(h2Frame(FRAME.HEADERS, END_HEADERS, id, GRPC_RESPONSE_HEADERS));
      write(h2Frame(FRAME.DATA, 0, id, frame(Buffer.from('ok'))));
      write(h2Frame(FRAME.HEADERS, END_HEADERS | END_STREAM, id, GRPC_OK_TRAILERS));
    };
    const server = await startFrameServer((id, write, connection) => {
      if (hold) held.push({ id, write, connection }); else reply(id, write);
    }, 2);
    try {
      // A first call lets the target learn the limit (SETTINGS) before the burst.
      assert.equal((await call(server.address, '/t.S/Ok')).code, 0);
      hold = true;
      const calls = Array.from({ length: 12 }, () => call(server.address, '/t.S/Hold'));
      await waitUntil('every session holds its two streams', () => held.length === 2 * MAX_SESSIONS).catch((e) => { throw new Error(`${(e as Error).message}: ${JSON.stringify(held.map((h) => [h.connection, h.id]))}`); });
      await new Promise((res) => setTimeout(res, 100));
      const perConnection = new Map<number, number>();
      for (const h of held) perConnection.set(h.connection, (perConnection.get(h.connection) ?? 0) + 1);
      assert.equal(held.length, 2 * MAX_SESSIONS, 'no stream past the limit: the other calls wait');
      assert.equal(perConnection.size, MAX_SESSIONS);
      assert.ok([...perConnection.values()].every((n) => n === 2), JSON.stringify([...perConnection]));
      hold = false;
      for (const h of held.splice(0)) reply(h.id, h.write);
      const rs = await Promise.all(calls);
      assert.deepEqual(rs.map((r) => `${r.code} ${r.message}`), rs.map(() => '0 '), 'the waiting calls went out as streams freed');
    } finally {
      await server.stop();
    }
  });

  it('GOAWAY: the next call opens a new session; a session that dies under a call fails it UNAVAILABLE', async () => {
    const server = await startRawServer();
    try {
      server.handlers['/t.S/Ok'] = (stream) => answer(stream, [frame(Buffer.from('ok'))]);
      assert.equal((await call(server.address, '/t.S/Ok')).code, 0);
      server.sessions[0].goaway(http2.constants.NGHTTP2_NO_ERROR);
      await waitUntil('the client retired the session', () => grpcSessionCounts(server.address, null).open === 0);
      assert.equal((await call(server.address, '/t.S/Ok')).code, 0);
      assert.equal(server.sessions.length, 2);
      server.handlers['/t.S/Die'] = (stream) => { stream.respond({ ':status': 200, 'content-type': 'application/grpc' }); stream.session!.destroy(); };
      const r = await call(server.address, '/t.S/Die');
      assert.equal(r.code, 14);
      assert.equal(r.status, 503);
      assert.equal((await call(server.address, '/t.S/Ok')).code, 0, 'and the next call reconnects');
      assert.equal(server.sessions.length, 3);
    } finally {
      await server.stop();
    }
  });

  it('closeUnusedChannels: a target no generation uses is closed; one still used keeps its session', async () => {
    const unused = await startRawServer();
    try {
      for (const srv of [unused, raw]) srv.handlers['/t.S/Ok'] = (stream) => answer(stream, [frame(Buffer.from('ok'))]);
      const oldGeneration = grpcDispatch(unused.address, null);
      assert.equal((await call(unused.address, '/t.S/Ok', { dispatch: oldGeneration })).code, 0);
      assert.equal((await call(raw.address, '/t.S/Ok')).code, 0);
      const rawSessions = raw.sessions.length;
      closeUnusedChannels(new Set([grpcPoolKey(raw.address, null)]));
      await waitUntil('the unused target\'s session closed at the server', () => unused.sessions[0].closed || unused.sessions[0].destroyed);
      assert.equal(grpcSessionCounts(unused.address, null).opened, 0, 'the target is gone from the worker');
      assert.equal((await call(raw.address, '/t.S/Ok')).code, 0);
      assert.equal(raw.sessions.length, rawSessions, 'the used target kept its session');
      assert.equal((await call(unused.address, '/t.S/Ok', { dispatch: oldGeneration })).code, 0, 'a generation that still calls it gets a new session');
      assert.equal(unused.sessions.length, 2);
    } finally {
      await unused.stop();
    }
  });

  it('nothing listening: UNAVAILABLE (503); the server started there later is reached', async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const r = await call(address, '/t.S/Ok');
    assert.equal(r.code, 14);
    assert.equal(r.status, 503);
    const server = await startRawServer({}, port);
    try {
      server.handlers['/t.S/Ok'] = (stream) => answer(stream, [frame(Buffer.from('ok'))]);
      assert.equal((await call(address, '/t.S/Ok')).code, 0);
    } finally {
      await server.stop();
    }
  });
});

describe('against grpc-js', () => {
  let store: BookstoreServer;
  before(async () => { store = await startBookstore(); });
  after(async () => { await store?.stop(); });

  it('metadata: text and -bin values reach the server decoded; bad names and values are never sent', async () => {
    const r = await call(store.address, '/bookstore.v1.Bookstore/Tag', {
      body: Buffer.from([0x0a, 0x01, 0x41]),
      headers: ['x-trace', 'abc 123', 'x-blob-bin', Buffer.from('bytes!').toString('base64').replace(/=+$/, ''), 'x-bad-bin', 'not base64!',
        'X-Upper', 'no', 'grpc-timeout', '1S', 'connection', 'close', 'te', 'gzip', 'x-crlf', 'a\r\nx-injected: 1',
        'constructor', 'only this', '__proto__', 'x'],
    });
    assert.equal(r.code, 0, r.message);
    assert.deepEqual(r.messages[0], Buffer.from([0x0a, 0x01, 0x41]), 'the bytes came back as sent');
    const md = store.lastMetadata;
    assert.equal(md['x-trace'], 'abc 123');
    assert.equal(md['x-blob-bin'], 'bytes!', 'unpadded base64 decoded by grpc-js');
    assert.equal(md.constructor, 'only this', 'a name that is also an Object.prototype key carries its own value only');
    for (const n of ['x-bad-bin', 'x-upper', 'connection', 'x-crlf', 'x-injected', '__proto__']) assert.equal(Object.hasOwn(md, n) ? md[n] : undefined, undefined, n);
  });

  it('initial metadata and trailers from grpc-js: text as strings, -bin as Buffers, grpc-status-details-bin decodable', async () => {
    const ok = await call(store.address, '/bookstore.v1.Bookstore/GetShelf', { body: Buffer.from([0x08, 0x05]) });
    assert.equal(ok.code, 0);
    assert.equal(field(ok.initial, 'x-shelf-source'), 'db');
    assert.equal(field(ok.initial, 'content-type'), undefined, 'the protocol\'s headers are not metadata');
    // Fail with code 9 and details: FailRequest { code = 1, message = 2, with_details = 3 }.
    const failBody = Buffer.from([0x08, 0x09, 0x12, 0x02, 0x6e, 0x6f, 0x18, 0x01]);
    const bad = await call(store.address, '/bookstore.v1.Bookstore/Fail', { body: failBody });
    assert.equal(bad.code, 9);
    assert.equal(bad.status, 400);
    assert.equal(bad.message, 'no');
    const details = field(bad.trailers, 'grpc-status-details-bin');
    assert.ok(Buffer.isBuffer(details) && details.length > 10, 'the details as bytes');
  });

  it('a restarted server on the same port is reached again', async () => {
    const server = await startBookstore();
    const port = server.port;
    assert.equal((await call(server.address, '/bookstore.v1.Bookstore/GetShelf', { body: Buffer.from([0x08, 0x01]) })).code, 0);
    await server.stop();
    const again = await startBookstore({ port });
    try {
      await waitUntil('a call to the restarted server succeeds', async () => (await call(again.address, '/bookstore.v1.Bookstore/GetShelf', { body: Buffer.from([0x08, 0x01]) })).code === 0, 10_000);
      assert.equal(again.calls.GetShelf, 1);
    } finally {
      await again.stop();
    }
  });
});

describe('TLS', () => {
  let pki: TestPki;
  let store: BookstoreServer;
  before(async () => {
    pki = new TestPki('Lobby h2 client CA');
    const leaf = pki.leaf('bookstore', { names: ['bookstore.internal'] });
    store = await startBookstore({ credentials: grpc.ServerCredentials.createSsl(null, [{ cert_chain: readFileSync(leaf.cert), private_key: readFileSync(leaf.key) }]) });
  });
  after(async () => {
    await store?.stop();
    pki?.remove();
  });

  it('h2 over TLS (ALPN), verified against the CA and server_name, one session for several calls', async () => {
    const tls = { caPem: readFileSync(pki.ca.cert, 'utf8'), serverName: 'bookstore.internal' };
    for (let i = 0; i < 3; i++) {
      const r = await call(store.address, '/bookstore.v1.Bookstore/GetShelf', { body: Buffer.from([0x08, 0x04]) }, tls);
      assert.equal(r.code, 0, r.message);
      assert.equal(r.messages.length, 1);
    }
    assert.deepEqual(grpcSessionCounts(store.address, tls), { opened: 1, open: 1 });
  });

  it('a name the certificate does not carry, or no CA that signed it: UNAVAILABLE, nothing reaches the method', async () => {
    const before = store.calls.GetShelf ?? 0;
    const wrongName = await call(store.address, '/bookstore.v1.Bookstore/GetShelf', { body: Buffer.from([0x08, 0x04]) }, { caPem: readFileSync(pki.ca.cert, 'utf8'), serverName: 'other.internal' });
    assert.equal(wrongName.code, 14);
    const systemCas = await call(store.address, '/bookstore.v1.Bookstore/GetShelf', { body: Buffer.from([0x08, 0x04]) }, { caPem: null, serverName: 'bookstore.internal' });
    assert.equal(systemCas.code, 14);
    assert.equal(store.calls.GetShelf ?? 0, before);
  });
});

describe('behind the gateway', () => {
  it('one session per worker for many requests; after the server restarts, requests reach it again', async () => {
    let store = await startBookstore();
    const port = store.port;
    const gw = await startGateway(`
server: { port: __PORT__, workers: 1 }
services:
  books:
    grpc: { targets: ["${store.address}"] }
    descriptors: { protos: [${BOOKSTORE_PROTO}], include: ["${FIXTURE_DIR}"] }
routes:
  - { name: books, match: { prefix: /v1 }, service: books, transcode: { services: [bookstore.v1.Bookstore] } }
`);
    const get = async () => { const res = await request(`${gw.url}/v1/shelves/3`); return { status: res.statusCode, text: await res.body.text() }; };
    try {
      for (let i = 0; i < 5; i++) assert.equal((await get()).status, 200);
      const burst = await Promise.all(Array.from({ length: 20 }, get));
      assert.ok(burst.every((r) => r.status === 200), JSON.stringify(burst.filter((r) => r.status !== 200)));
      assert.equal(store.sessions, 1, 'one HTTP/2 connection from the worker');
      assert.equal(store.calls.GetShelf, 25);
      await store.stop();
      const down = await get();
      assert.equal(down.status, 503, down.text);
      assert.equal(JSON.parse(down.text).code, 14);
      assert.doesNotMatch(down.text, /127\.0\.0\.1/, 'no upstream address in the answer');
      store = await startBookstore({ port });
      await waitUntil('a request reaches the restarted server', async () => (await get()).status === 200, 10_000);
      assert.equal(store.sessions, 1);
      assert.doesNotMatch(gw.stderr(), /worker fault/);
    } finally {
      await gw.stop();
      await store.stop();
    }
  });
});
