// A real upstream whose health endpoint and traffic answers a test switches at run time:
// answering, answering 5xx, hanging, flapping, or not listening at all (stopped, and started
// again on the same port). Health-check requests (`/healthz`) and traffic are counted apart.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { Agent, request } from 'undici';
import { freePort } from '../helpers/ports.js';
import type { AdminClient } from '../helpers/admin.js';

/** A status to answer, 'hang' (accept and never answer), or a sequence cycled per check. */
export type Answer = number | 'hang';

export class ControlledUpstream {
  /** What /healthz answers: one value, or a cycle indexed by the check count. */
  health: Answer | Answer[] = 200;
  /** What every other path answers. */
  traffic: Answer = 200;
  healthChecks = 0;
  trafficCount = 0;
  readonly healthHosts: string[] = [];
  port = 0;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(readonly name: string, private readonly tls: { cert: string; key: string } | null = null) {}

  get origin(): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    const server = this.tls
      ? createHttpsServer({ cert: readFileSync(this.tls.cert), key: readFileSync(this.tls.key) }, handler)
      : createHttpServer(handler);
    server.keepAliveTimeout = 30_000;
    server.on('connection', (s: Socket) => { this.sockets.add(s); s.once('close', () => this.sockets.delete(s)); });
    server.on('secureConnection', (s: Socket) => { this.sockets.add(s); s.once('close', () => this.sockets.delete(s)); });
    for (let attempt = 0; ; attempt++) {
      const port = this.port || await freePort();
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve(); });
        });
        this.port = port;
        this.server = server;
        return;
      } catch (err) {
        if (attempt > 20) throw err;
        await new Promise((r) => setTimeout(r, 50)); // the same port, just freed: try again
      }
    }
  }

  /** Stops listening and cuts every connection (the target is down). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server === null) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    let answer: Answer;
    if (req.url === '/healthz') {
      this.healthHosts.push(req.headers.host ?? '');
      answer = Array.isArray(this.health) ? this.health[this.healthChecks % this.health.length] : this.health;
      this.healthChecks++;
    } else {
      this.trafficCount++;
      answer = this.traffic;
    }
    if (answer === 'hang') return; // the socket stays open, nothing is answered
    const body = JSON.stringify({ upstream: this.name, status: answer });
    res.writeHead(answer, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }
}

/** A request on a fresh connection (so that SO_REUSEPORT spreads them over the workers); the body parsed when JSON. */
export async function freshRequest(url: string): Promise<{ status: number; body: any }> {
  const agent = new Agent({ pipelining: 0 });
  try {
    const res = await request(url, { dispatcher: agent, headers: { connection: 'close' } });
    const text = await res.body.text();
    let body: any = text;
    try { body = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.statusCode, body };
  } finally {
    await agent.close();
  }
}

/** The targets of `service` as GET /upstreams shows them. */
export async function upstreamRows(admin: AdminClient, service: string): Promise<any[]> {
  const r = await admin.get('/upstreams');
  return r.body.services.find((s: any) => s.name === service).targets;
}
