// Every message between the control plane (main thread) and a data-plane worker.
// Together with the control SharedArrayBuffer (src/shared/control-block.ts) this is the
// whole interface between the two planes.
import type { CompiledConfig } from './compiled-config.js';
import type { IntrospectionOutcome, Jwk } from './auth-config.js';
import type { TlsListenerConfig } from './tls-config.js';

/** Control plane → worker. */
export type ToWorker =
  /** Build everything generation `generation` needs (matcher, pools); answer `prepared`. */
  | {
    type: 'prepare'; generation: number; table: SharedArrayBuffer;
    /** Per-route data (src/shared/route-data.ts), decoded by workers on first use. */
    routeData: SharedArrayBuffer;
    /** The compiled config without its routes (they are in routeData). */
    config: CompiledConfig;
    /** This worker's metric counters for the generation (src/shared/metrics-layout.ts); absent when metrics are off. */
    metrics?: SharedArrayBuffer;
  }
  /** Answer `latency` with this worker's per-route HDR histograms (GET /stats/latency, /report). */
  | { type: 'latency-request'; id: number }
  /** Answer `upstreams` with this worker's targets: in-flight requests, pooled connections. */
  | { type: 'upstreams-request'; id: number }
  /** Open the listen socket (after the first generation is published). */
  | { type: 'listen'; host: string; port: number }
  /** Forget prepared generations older than `keepFrom` (they have no more in-flight requests). */
  | { type: 'retire'; keepFrom: number }
  /** Stop accepting, finish in-flight requests, exit 0. Past the deadline, close what is left. */
  | { type: 'drain'; deadlineMs: number }
  /** The key set of a JWKS URI (src/control/jwks.ts): on change, and as the answer to `jwks-refetch`.
   * `version` grows with every change; `keys` null = never fetched successfully; `refetchInMs`:
   * time left of the unknown-kid refetch cooldown (0: the next unknown kid may ask at once). */
  | { type: 'keys'; uri: string; version: number; keys: Jwk[] | null; refetchInMs: number }
  /** The answer to `introspect` `id` (src/control/introspection.ts). */
  | ({ type: 'introspected'; id: number } & IntrospectionOutcome)
  /** SIGUSR1: reopen every access-log file (after logrotate moved it). */
  | { type: 'reopen-logs' }
  /** The HTTPS listener's certificates (before `listen`, and on every rotation); answer `tls-applied`. */
  | { type: 'tls'; config: TlsListenerConfig };

/** Worker → control plane. */
export type FromWorker =
  | { type: 'prepared'; generation: number }
  | { type: 'prepare-failed'; generation: number; message: string }
  | { type: 'listening'; port: number }
  | { type: 'listen-failed'; host: string; port: number }
  | { type: 'drained'; unfinished: number }
  /** A token named a `kid` the worker's key set lacks: refetch `uri` (the control plane applies a cooldown). */
  | { type: 'jwks-refetch'; uri: string }
  /** An opaque token no cache of this worker knows: introspect it at `provider` (one call per token per instance). */
  | { type: 'introspect'; id: number; provider: string; token: string }
  /** Per-route HDR histograms, compressed base64 (src/filters/metrics/latency.ts). */
  | { type: 'latency'; id: number; worker: number; routes: { route: string; histogram: string }[] }
  | { type: 'upstreams'; id: number; worker: number; services: UpstreamsSnapshot[] }
  /** A `tls` message applied (error null) or refused by uWS (the worker keeps the running set). */
  | { type: 'tls-applied'; version: number; error: string | null };

/** One service of a worker's current generation, for GET /upstreams and the upstream gauges. */
export interface UpstreamsSnapshot {
  service: string;
  targets: { origin: string; inFlight: number; connections: number; idle: number; queued: number }[];
}

/** Data every worker starts with (workerData). */
export interface WorkerBoot {
  workerIndex: number;
  /** The control block: see src/shared/control-block.ts. */
  control: SharedArrayBuffer;
  /** Test-only hooks (e.g. a header that crashes the worker); off unless LOBBY_TEST_HOOKS=1. */
  testHooks: boolean;
  /** The rate-limit bucket table (src/shared/bucket-table.ts), one per instance. */
  rateLimitTable?: SharedArrayBuffer;
  /** This worker's stats block (WORKER_STATS in src/shared/metrics-layout.ts: event-loop delay). */
  workerStats?: SharedArrayBuffer;
  /** The health table (src/shared/health-table.ts), one per instance, and its time epoch. */
  health?: { table: SharedArrayBuffer; epoch: number };
}
