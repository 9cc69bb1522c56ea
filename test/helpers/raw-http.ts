// A raw HTTP/1.1 exchange over a socket: for requests no well-behaved client would send
// (smuggling, malformed framing) and for reading the exact bytes of a response.
import { connect } from 'node:net';

export interface RawResponse {
  raw: string;
  status: number;
  headers: Map<string, string[]>;
  body: string;
  /** The gateway closed the connection. */
  closed: boolean;
}

export function parseRawResponse(raw: string, closed: boolean): RawResponse {
  const headEnd = raw.indexOf('\r\n\r\n');
  const head = headEnd === -1 ? raw : raw.slice(0, headEnd);
  const [statusLine, ...lines] = head.split('\r\n');
  const headers = new Map<string, string[]>();
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const k = line.slice(0, i).trim().toLowerCase();
    headers.set(k, [...(headers.get(k) ?? []), line.slice(i + 1).trim()]);
  }
  return { raw, status: Number(statusLine?.split(' ')[1] ?? 0), headers, body: headEnd === -1 ? '' : raw.slice(headEnd + 4), closed };
}

/**
 * Sends several requests on one keep-alive connection, each after the previous answer
 * arrived (uWS closes a connection that pipelines behind a pending async response).
 * Resolves with everything received.
 */
export async function rawSequence(port: number, requests: string[], gapMs = 300): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let data = '';
    let closed = false;
    let i = 0;
    const next = () => {
      if (i < requests.length) { sock.write(requests[i++]); setTimeout(next, gapMs); return; }
      sock.destroy();
      resolve(parseRawResponse(data, closed));
    };
    sock.on('connect', next);
    sock.on('data', (d) => { data += d.toString('latin1'); });
    sock.on('error', reject);
    sock.on('close', () => { closed = true; });
  });
}

/** Sends `request` (a string with \r\n line ends) and collects the answer for up to waitMs. */
export function rawRequest(port: number, request: string | Buffer, waitMs = 1000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let data = '';
    let closed = false;
    const timer = setTimeout(() => { sock.destroy(); resolve(parseRawResponse(data, closed)); }, waitMs);
    sock.on('data', (d) => { data += d.toString('latin1'); });
    sock.on('error', (e) => { if (!data) { clearTimeout(timer); reject(e); } });
    sock.on('close', () => { closed = true; clearTimeout(timer); resolve(parseRawResponse(data, closed)); });
    sock.write(request);
  });
}

/**
 * Sends `request` on a new connection and resolves as soon as one whole response is in
 * (its head and Content-Length body), or when the gateway closes, or after timeoutMs.
 */
export function rawExchange(port: number, request: Buffer, timeoutMs = 5000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let data = '';
    let settled = false;
    const done = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(parseRawResponse(data, closed));
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('data', (d) => {
      data += d.toString('latin1');
      const headEnd = data.indexOf('\r\n\r\n');
      if (headEnd === -1) return;
      const length = /\r\ncontent-length: *(\d+)/i.exec(data.slice(0, headEnd));
      if (length !== null && data.length - headEnd - 4 >= Number(length[1])) done(false);
    });
    sock.on('error', (e) => { if (!settled && data === '') { settled = true; clearTimeout(timer); reject(e); } });
    sock.on('close', () => done(true));
    sock.write(request);
  });
}
