// One undici Pool per upstream target per worker, shared across config generations:
// a reload that keeps a service's targets and pool settings keeps its warm keep-alive
// connections; pools no generation uses any more are closed gracefully (in-flight
// requests finish first).
import { Pool } from 'undici';
import { H1Pool, type UpstreamTlsOptions } from './h1-client.js';
import type { CompiledService, CompiledTarget } from '../../shared/compiled-config.js';
import type { CompiledUpstreamTls } from '../../shared/tls-config.js';

/** tls.connect options for an https:// target (both clients take the same). */
function upstreamTlsOptions(tls: CompiledUpstreamTls | null): UpstreamTlsOptions {
  const opts: UpstreamTlsOptions = { rejectUnauthorized: tls?.verify ?? true };
  if (tls?.ca) opts.ca = tls.ca;
  if (tls?.cert) { opts.cert = tls.cert; opts.key = tls.key!; }
  if (tls?.passphrase) opts.passphrase = tls.passphrase;
  if (tls?.servername) opts.servername = tls.servername;
  return opts;
}

export interface PooledTarget {
  readonly key: string;
  /** undici, for requests with a streamed body. */
  readonly pool: Pool;
  /** The fast HTTP/1.1 client, for everything else. */
  readonly fast: H1Pool;
}

/** Requests that may wait for a connection to one target, per worker, before 503. */
export const MAX_QUEUED_PER_TARGET = 10_000;
const KEEPALIVE_MS = 4_000;

export class PoolRegistry {
  private readonly pools = new Map<string, PooledTarget>();

  /** The pool for a target of a service, created on first use. */
  acquire(service: CompiledService, target: CompiledTarget, workers: number): PooledTarget {
    // Connection budget is per instance; each worker gets its share (at least 1).
    const connections = Math.max(1, Math.ceil(service.connectionsPerTarget / workers));
    const tls = target.origin.startsWith('https:') ? upstreamTlsOptions(service.tls) : null;
    const key = `${target.origin}|${connections}|${service.timeouts.connectMs}|${service.pipelining}|${tls === null ? '' : service.tls!.fingerprint}`;
    let pooled = this.pools.get(key);
    if (!pooled) {
      const pool = new Pool(target.origin, {
        connections,
        pipelining: 1,
        connectTimeout: service.timeouts.connectMs,
        // Response deadlines are enforced by the data plane's own sub-second ticker
        // (undici's timers tick at about 1 s), so undici's are off.
        headersTimeout: 0,
        bodyTimeout: 0,
        keepAliveTimeout: KEEPALIVE_MS,
        keepAliveMaxTimeout: 600_000,
        ...(tls === null ? {} : { connect: tls }),
      });
      const fast = new H1Pool(target.origin, { connections, connectTimeoutMs: service.timeouts.connectMs, keepAliveTimeoutMs: KEEPALIVE_MS, maxQueue: MAX_QUEUED_PER_TARGET, pipelining: service.pipelining, tls });
      pooled = { key, pool, fast };
      this.pools.set(key, pooled);
    }
    return pooled;
  }

  /** Closes every pool whose key is not in `live` (graceful: queued requests complete). */
  closeUnused(live: ReadonlySet<string>): void {
    for (const [key, pooled] of this.pools) {
      if (live.has(key)) continue;
      this.pools.delete(key);
      pooled.pool.close().catch(() => { /* already closing or destroyed */ });
      void pooled.fast.close();
    }
  }

  async closeAll(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(all.flatMap((p) => [p.pool.close(), p.fast.close()]));
  }

  /** A target's connections over both clients (GET /upstreams); zeros for an unknown key. */
  stats(key: string): { connections: number; idle: number; queued: number } {
    const pooled = this.pools.get(key);
    if (!pooled) return { connections: 0, idle: 0, queued: 0 };
    const fast = pooled.fast.stats();
    const general = pooled.pool.stats;
    return { connections: fast.connections + general.connected, idle: fast.idle + general.free, queued: fast.queued + general.pending };
  }

  get size(): number {
    return this.pools.size;
  }
}
