// The WebSocket load driver (scenarios with `websocket`), run as a child process pinned to the
// driver core like the autocannon driver, speaking the same messages (driver-protocol.ts):
//   node dist/loadtest/driver-websocket.js '<LoadSpec JSON>'
// Each phase opens `connections` WebSockets to the spec's URL (ws://, the upgrade through the
// proxy), then every connection sends one message and waits for its echo, in a closed loop, for
// the phase's duration; the connections close at its end. A "request" is one echoed message:
// latency is from the send to the echo's arrival (both messages through the proxy).
import { WebSocket } from 'ws';
import { encodeHistogram, newLatencyHistogram } from './stats.js';
import type { DriverMessage, LoadSpec, ParentMessage, Phase, PhaseResult } from './driver-protocol.js';
import { PerSecondSampler } from './per-second.js';

function send(message: DriverMessage): void {
  process.send?.(message);
}

function toMicros(ms: number): number {
  return Math.max(1, Math.round(ms * 1000));
}

const spec = JSON.parse(process.argv[2] ?? 'null') as LoadSpec | null;
if (!spec || typeof spec.url !== 'string' || !spec.websocket) {
  console.error('usage: driver-websocket.js <LoadSpec JSON with websocket> (started by loadtest/run.js)');
  process.exit(2);
}
const loadSpec: LoadSpec = spec;
const ws = spec.websocket;
const url = loadSpec.url.replace(/^http/, 'ws');
const payload = ws.binary ? Buffer.alloc(ws.messageBytes, 0x5a) : 'z'.repeat(ws.messageBytes);

function runPhase(phase: Phase): Promise<PhaseResult> {
  return new Promise((resolve, reject) => {
    const latency = newLatencyHistogram();
    const perSecond = new PerSecondSampler();
    let requests = 0;
    let errors = 0;
    let bytes = 0;
    let running = true;
    const sockets: WebSocket[] = [];
    let startedAt = 0;
    let ticker: NodeJS.Timeout | null = null;

    const takeSample = (): void => perSecond.take(requests);

    const finish = (): void => {
      running = false;
      if (ticker !== null) clearInterval(ticker);
      takeSample();
      const elapsedSec = (performance.now() - startedAt) / 1000;
      let open = sockets.length;
      const done = (): void => {
        resolve({
          label: phase.label, requests, errors, timeouts: 0, non2xx: 0, statusCounts: { 101: sockets.length }, bytes, elapsedSec,
          perSecond: perSecond.samples, perSecondSource: 'driver', latencyHistogram: encodeHistogram(latency),
        });
      };
      if (open === 0) { done(); return; }
      for (const socket of sockets) {
        socket.once('close', () => { if (--open === 0) done(); });
        socket.close(1000);
      }
    };

    // Open every connection first: the window measures the echo loop, not the handshakes.
    let connecting = loadSpec.connections;
    const sentAt = new Float64Array(loadSpec.connections);
    for (let i = 0; i < loadSpec.connections; i++) {
      const socket = new WebSocket(url, { perMessageDeflate: false, headers: loadSpec.headers });
      sockets.push(socket);
      const next = (): void => {
        sentAt[i] = performance.now();
        socket.send(payload, { binary: ws.binary });
      };
      socket.on('message', (data: Buffer) => {
        const ms = performance.now() - sentAt[i];
        requests++;
        bytes += data.length;
        latency.recordValue(toMicros(ms));
        perSecond.latency.recordValue(toMicros(ms));
        if (running) next();
      });
      socket.on('error', () => { errors++; });
      socket.once('unexpected-response', (_req, res) => {
        reject(new Error(`the upgrade to ${url} was refused with ${res.statusCode}`));
      });
      socket.once('open', () => {
        if (--connecting > 0) return;
        startedAt = performance.now();
        perSecond.start(startedAt);
        ticker = setInterval(() => {
          takeSample();
          send({ type: 'tick', label: phase.label, requests });
        }, 1000);
        if (phase.requests !== undefined) throw new Error('the websocket driver runs for a duration only');
        setTimeout(finish, (phase.durationSec ?? 10) * 1000);
        for (let k = 0; k < sockets.length; k++) {
          const s = sockets[k];
          sentAt[k] = performance.now();
          s.send(payload, { binary: ws.binary });
        }
      });
    }
  });
}

process.on('message', (message: ParentMessage) => {
  if (message.type === 'exit') process.exit(0);
  if (message.type === 'run') {
    runPhase(message.phase).then(
      (result) => send({ type: 'done', result }),
      (error: Error) => send({ type: 'failed', message: error.stack ?? error.message }),
    );
  }
});
// The parent going away (Ctrl-C, crash) must not leave a load generator running.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
