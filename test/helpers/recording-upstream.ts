// An upstream on a raw socket that records every byte the gateway sends it and parses them
// with Node's llhttp in strict mode, request by request: a test can assert that the bytes
// it received form exactly the requests it expected, well-formed, and nothing more (a
// request split in two shows up as two; bytes after the last request as an open message).
import { createServer, type Server, type Socket } from 'node:net';
import { createRequire } from 'node:module';
import { freePort } from './ports.js';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const { HTTPParser, methods } = require('_http_common') as { HTTPParser: any; methods: string[] };

export interface RecordedRequest {
  method: string;
  url: string;
  /** Raw header names and values, in order, as latin1 strings (one char per byte). */
  headers: string[];
  body: Buffer;
}

export interface RecordingUpstream {
  readonly port: number;
  readonly origin: string;
  /** Every complete request parsed, in arrival order across connections. */
  readonly requests: RecordedRequest[];
  /** Messages whose first byte arrived but which are not complete (should be 0 when idle). */
  openMessages(): number;
  /** Parse errors seen (the connection is closed on each). */
  readonly errors: string[];
  /** Every byte received, per connection, in order. */
  readonly bytes: Buffer[][];
  /** Connections accepted so far. */
  connections(): number;
  /** Connections that have closed so far. */
  closedConnections(): number;
  close(): Promise<void>;
}

/** Writes the answer to a request (default: 200 with `{"n": <requests so far>}`). */
export type Responder = (req: RecordedRequest, socket: Socket, n: number) => void;

function answerCount(_req: RecordedRequest, socket: Socket, n: number): void {
  const answer = `{"n":${n}}`;
  socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${answer.length}\r\n\r\n${answer}`);
}

export async function startRecordingUpstream(respond: Responder = answerCount): Promise<RecordingUpstream> {
  const requests: RecordedRequest[] = [];
  const errors: string[] = [];
  const bytes: Buffer[][] = [];
  const sockets = new Set<Socket>();
  let begun = 0;
  let completed = 0;
  let closed = 0;
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => { sockets.delete(socket); closed++; });
    const mine: Buffer[] = [];
    bytes.push(mine);
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.REQUEST, {}, 0, HTTPParser.kLenientNone);
    let current: RecordedRequest | null = null;
    let body: Buffer[] = [];
    let flushed: string[] = [];
    parser[HTTPParser.kOnMessageBegin] = () => { begun++; body = []; flushed = []; };
    parser[HTTPParser.kOnHeaders] = (h: string[]) => { flushed.push(...h); };
    parser[HTTPParser.kOnHeadersComplete] = (_maj: number, _min: number, headers: string[] | undefined, method: number, url: string | undefined) => {
      current = { method: methods[method], url: url ?? '', headers: headers ?? flushed, body: Buffer.alloc(0) };
      return 0;
    };
    parser[HTTPParser.kOnBody] = (chunk: Buffer) => { body.push(Buffer.from(chunk)); };
    parser[HTTPParser.kOnMessageComplete] = () => {
      completed++;
      const req = current!;
      req.body = Buffer.concat(body);
      requests.push(req);
      respond(req, socket, requests.length);
    };
    parser[HTTPParser.kOnExecute] = () => {};
    socket.on('data', (chunk: Buffer) => {
      mine.push(chunk);
      const ret = parser.execute(chunk);
      if (ret instanceof Error) {
        errors.push(`${(ret as Error & { code?: string }).code}: ${(ret as Error & { reason?: string }).reason ?? ret.message}`);
        socket.destroy();
      }
    });
    socket.on('error', () => {});
  });
  const port = await freePort();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port, origin: `http://127.0.0.1:${port}`, requests, errors, bytes,
    openMessages: () => begun - completed,
    connections: () => bytes.length,
    closedConnections: () => closed,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}
