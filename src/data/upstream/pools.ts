// One undici Pool per upstream target per worker, shared across config generations:
// a reload that keeps a service's targets and pool settings keeps its warm keep-alive
// connections; pools no generation uses any more are closed gracefully (in-flight
// requests finish first).
import { Pool } from 'undici';
import type { CompiledService, CompiledTarget } from '../../shared/compiled-config.js';

export interface PooledTarget {
  readonly key: string;
  readonly pool: Pool;
}

export class PoolRegistry {
  private readonly pools = new Map<string, Pool>();

  /** The pool for a target of a service, created on first use. */
  acquire(service: CompiledService, target: CompiledTarget, workers: number): PooledTarget {
    // Connection budget is per instance; each worker gets its share (at least 1).
    const connections = Math.max(1, Math.ceil(service.connectionsPerTarget / workers));
    const key = `${target.origin}|${connections}|${service.timeouts.connectMs}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new Pool(target.origin, {
        connections,
        pipelining: 1,
        connectTimeout: service.timeouts.connectMs,
        // Response deadlines are enforced by the data plane's own sub-second ticker
        // (undici's timers tick at about 1 s), so undici's are off.
        headersTimeout: 0,
        bodyTimeout: 0,
        keepAliveTimeout: 4_000,
        keepAliveMaxTimeout: 600_000,
      });
      this.pools.set(key, pool);
    }
    return { key, pool };
  }

  /** Closes every pool whose key is not in `live` (graceful: queued requests complete). */
  closeUnused(live: ReadonlySet<string>): void {
    for (const [key, pool] of this.pools) {
      if (live.has(key)) continue;
      this.pools.delete(key);
      pool.close().catch(() => { /* already closing or destroyed */ });
    }
  }

  async closeAll(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(all.map((p) => p.close()));
  }

  get size(): number {
    return this.pools.size;
  }
}
