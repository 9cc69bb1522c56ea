// Types of the parts of `ws` (8.13, the package's own API: github.com/websockets/ws/blob/8.13.0/doc/ws.md)
// that Lobby's WebSocket relay (src/data/websocket.ts), its tests and its load-test driver use.
// @types/ws is not installed; these are written from that document and checked against the
// package's behaviour by test/websocket/.
declare module 'ws' {
  import type { EventEmitter } from 'node:events';
  import type { ClientRequest, IncomingMessage, Server as HttpServer } from 'node:http';
  import type { Duplex } from 'node:stream';
  import type { ConnectionOptions } from 'node:tls';

  type Data = Buffer;

  /** tls.connect options apply to wss:. */
  interface ClientOptions extends Omit<ConnectionOptions, 'timeout' | 'host' | 'port' | 'path'> {
    headers?: Record<string, string | string[]>;
    perMessageDeflate?: boolean | Record<string, unknown>;
    maxPayload?: number;
    handshakeTimeout?: number;
    followRedirects?: boolean;
    skipUTF8Validation?: boolean;
    generateMask?: (mask: Buffer) => void;
    finishRequest?: (request: ClientRequest, websocket: WebSocket) => void;
    origin?: string;
  }

  interface SendOptions {
    binary?: boolean;
    compress?: boolean;
    fin?: boolean;
    mask?: boolean;
  }

  class WebSocket extends EventEmitter {
    static readonly CONNECTING: 0;
    static readonly OPEN: 1;
    static readonly CLOSING: 2;
    static readonly CLOSED: 3;
    constructor(address: string | URL, protocols?: string | string[], options?: ClientOptions);
    constructor(address: string | URL, options?: ClientOptions);
    readonly readyState: 0 | 1 | 2 | 3;
    readonly protocol: string;
    readonly extensions: string;
    readonly bufferedAmount: number;
    readonly isPaused: boolean;
    binaryType: 'nodebuffer' | 'arraybuffer' | 'fragments';
    send(data: Buffer | ArrayBuffer | ArrayBufferView | string, options?: SendOptions, cb?: (err?: Error) => void): void;
    send(data: Buffer | ArrayBuffer | ArrayBufferView | string, cb?: (err?: Error) => void): void;
    ping(data?: Buffer | string, mask?: boolean, cb?: (err?: Error) => void): void;
    pong(data?: Buffer | string, mask?: boolean, cb?: (err?: Error) => void): void;
    close(code?: number, reason?: string | Buffer): void;
    terminate(): void;
    pause(): void;
    resume(): void;
    on(event: 'open', listener: () => void): this;
    on(event: 'message', listener: (data: Data, isBinary: boolean) => void): this;
    on(event: 'ping' | 'pong', listener: (data: Buffer) => void): this;
    on(event: 'close', listener: (code: number, reason: Buffer) => void): this;
    on(event: 'error', listener: (err: Error & { code?: string }) => void): this;
    on(event: 'upgrade', listener: (response: IncomingMessage) => void): this;
    on(event: 'unexpected-response', listener: (request: ClientRequest, response: IncomingMessage) => void): this;
    once(event: 'open', listener: () => void): this;
    once(event: 'close', listener: (code: number, reason: Buffer) => void): this;
    once(event: 'error', listener: (err: Error & { code?: string }) => void): this;
    once(event: 'message', listener: (data: Data, isBinary: boolean) => void): this;
    once(event: 'ping' | 'pong', listener: (data: Buffer) => void): this;
    once(event: 'unexpected-response', listener: (request: ClientRequest, response: IncomingMessage) => void): this;
  }

  interface ServerOptions {
    port?: number;
    host?: string;
    server?: HttpServer;
    noServer?: boolean;
    maxPayload?: number;
    perMessageDeflate?: boolean | Record<string, unknown>;
    handleProtocols?: (protocols: Set<string>, request: IncomingMessage) => string | false;
    clientTracking?: boolean;
  }

  class WebSocketServer extends EventEmitter {
    constructor(options: ServerOptions, callback?: () => void);
    readonly clients: Set<WebSocket>;
    address(): { port: number; address: string; family: string };
    handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, callback: (ws: WebSocket, request: IncomingMessage) => void): void;
    close(cb?: (err?: Error) => void): void;
    on(event: 'connection', listener: (ws: WebSocket, request: IncomingMessage) => void): this;
    on(event: 'headers', listener: (headers: string[], request: IncomingMessage) => void): this;
    on(event: 'listening', listener: () => void): this;
    on(event: 'error', listener: (err: Error) => void): this;
  }

  export { WebSocket, WebSocketServer, type ClientOptions, type SendOptions, type ServerOptions };
  export default WebSocket;
}
