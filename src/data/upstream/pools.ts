// One undici Pool per upstream target per worker, shared across config generations:
// created, and undici itself loaded, on the first streamed upload to the target (undici costs
// a worker about 5 MB of heap, and most traffic never needs it);
// a reload that keeps a service's targets and pool settings keeps its warm keep-alive
// connections; pools no generation uses any more are closed gracefully (in-flight
// requests finish first).
import type { Pool } from 'undici';
import { H1Pool, type UpstreamTlsOptions } from './h1-client.js';
import type { CompiledService, CompiledTarget } from '../../shared/compiled-config.js';
import type { CompiledUpstreamTls } from '../../shared/tls-config.js';
import { lazily } from '../../shared/lazy-require.js';

/** tls.connect options for an https:// target (both clients take the same). */
export function upstreamTlsOptions(tls: CompiledUpstreamTls | null): UpstreamTlsOptions {
  const opts: UpstreamTlsOptions = { rejectUnauthorized: tls?.verify ?? true };
  if (tls?.ca) opts.ca = tls.ca;
  if (tls?.cert) { opts.cert = tls.cert; opts.key = tls.key!; }
  if (tls?.passphrase) opts.passphrase = tls.passphrase;
  if (tls?.servername) opts.servername = tls.servername;
  return opts;
}

const undici = lazily<typeof import('undici')>('undici');

export class PooledTarget {
  private general: Pool | null = null;
  constructor(
    readonly key: string,
    /** The fast HTTP/1.1 client, for everything without a streamed body. */
    readonly fast: H1Pool,
    private readonly generalOptions: { origin: string; options: Pool.Options },
  ) {}

  /** undici, for requests with a streamed body: made on first use. */
  get pool(): Pool {
    if (this.general === null) {
      this.general = new (undici().Pool)(this.generalOptions.origin, this.generalOptions.options);
    }
    return this.general;
  }

  /** Graceful close of both clients (queued requests complete). */
  close(): Promise<void>[] {
    return [this.general === null ? Promise.resolve() : this.general.close(), this.fast.close()];
  }

  /** Connections of both clients. */
  stats(): { connections: number; idle: number; queued: number } {
    const fast = this.fast.stats();
    const general = this.general?.stats;
    return general === undefined ? fast
      : { connections: fast.connections + general.connected, idle: fast.idle + general.free, queued: fast.queued + general.pending };
  }
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
      const options: Pool.Options = {
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
      };
      const fast = new H1Pool(target.origin, { connections, connectTimeoutMs: service.timeouts.connectMs, keepAliveTimeoutMs: KEEPALIVE_MS, maxQueue: MAX_QUEUED_PER_TARGET, pipelining: service.pipelining, tls });
      pooled = new PooledTarget(key, fast, { origin: target.origin, options });
      this.pools.set(key, pooled);
    }
    return pooled;
  }

  /** Closes every pool whose key is not in `live` (graceful: queued requests complete). */
  closeUnused(live: ReadonlySet<string>): void {
    for (const [key, pooled] of this.pools) {
      if (live.has(key)) continue;
      this.pools.delete(key);
      for (const closing of pooled.close()) closing.catch(() => { /* already closing or destroyed */ });
    }
  }

  async closeAll(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(all.flatMap((p) => p.close()));
  }

  /** A target's connections over both clients (GET /upstreams); zeros for an unknown key. */
  stats(key: string): { connections: number; idle: number; queued: number } {
    const pooled = this.pools.get(key);
    return pooled === undefined ? { connections: 0, idle: 0, queued: 0 } : pooled.stats();
  }

  get size(): number {
    return this.pools.size;
  }
}
