// Fallback static upstream for machines without nginx, and the WebSocket echo upstream of websocket
// scenarios: a uWebSockets.js server in its own process (started pinned by loadtest/upstream.ts).
// Usage: node dist/loadtest/upstream-uws.js PORT

import uWS from 'uWebSockets.js';
import { LARGE_BODY_PATH, SMALL_BODY, largeBody } from './upstream-content.js';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: upstream-uws.js PORT');
  process.exit(2);
}
if (typeof uWS.SSLApp !== 'function') {
  // The Truffle build silently falls back to a slow pure-JS server on unsupported Node ABIs.
  console.error('uWebSockets.js native binding did not load; refusing to serve a misleading upstream');
  process.exit(1);
}

const small = Buffer.from(SMALL_BODY);
const large = largeBody();

uWS.App()
  // WebSocket scenarios (loadtest/driver-websocket.ts): every message echoed as it came.
  .ws('/*', {
    maxPayloadLength: 16 * 1024 * 1024,
    idleTimeout: 0,
    message: (ws, message, isBinary) => { ws.send(message, isBinary); },
  })
  .any('/*', (res, req) => {
    // The request object dies when this handler returns: read everything needed now.
    const body = req.getUrl() === LARGE_BODY_PATH ? large : small;
    const contentType = body === large ? 'application/octet-stream' : 'application/json';
    const hasBody = req.getHeader('content-length') !== '' || req.getHeader('transfer-encoding') !== '';
    let aborted = false;
    res.onAborted(() => { aborted = true; });
    const reply = (): void => {
      if (aborted) return;
      res.cork(() => {
        res.writeStatus('200 OK').writeHeader('content-type', contentType).end(body);
      });
    };
    if (!hasBody) {
      reply();
      return;
    }
    // Consume the request body before answering, like a real service would.
    res.onData((_chunk, isLast) => {
      if (isLast) reply();
    });
  })
  .listen('127.0.0.1', port, (listenSocket) => {
    if (!listenSocket) {
      console.error(`upstream-uws: cannot listen on 127.0.0.1:${port}`);
      process.exit(1);
    }
  });

