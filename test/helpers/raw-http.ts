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
