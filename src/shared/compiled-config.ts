// The compiled configuration: what the control plane hands the data plane.
// Plain, structured-cloneable data (it crosses to worker threads with postMessage);
// everything a request needs is decided here, at compile time, never per request.
import type { CompiledServerTls, CompiledUpstreamTls, TlsSource } from './tls-config.js';
import type { CompiledGrpcService, CompiledTranscode } from '../grpc/compiled.js';

/** One piece of a templated rewrite: literal text, or the value of a captured `{param}`. */
export type RewritePart = { literal: string } | { param: number };

export interface CompiledLimits {
  maxUrlBytes: number;
  maxHeaderBytes: number;
  maxBodyBytes: number;
}

/**
 * What a path with `%2F` or `%5C` gets (`server.escaped_slashes`, `routes[].escaped_slashes`;
 * src/data/escaped-slashes.ts): 400, forwarded escaped, or decoded to `/` before routing.
 */
export type EscapedSlashes = 'reject' | 'keep' | 'unescape';

export interface CompiledServer {
  host: string;
  port: number;
  /** Resolved worker-thread count (`auto` already replaced by the core count). */
  workers: number;
  limits: CompiledLimits;
  /** How long SIGTERM waits for in-flight requests before the process exits anyway. */
  drainTimeoutMs: number;
  /** For a path with escaped slashes that matches no route (routes carry their own). */
  escapedSlashes: EscapedSlashes;
  /** `server.tls` (null: no HTTPS listener). */
  tls: CompiledServerTls | null;
  /** Its files, resolved (read by the control plane only: src/control/tls-manager.ts). */
  tlsSource: TlsSource | null;
}

export interface CompiledTarget {
  /** Origin for the undici Pool, e.g. `http://127.0.0.1:9001` or `https://10.0.0.5:443` (no path). */
  origin: string;
  /** Host header value sent upstream when the route does not keep the client's (`host:port`). */
  hostHeader: string;
}

export interface CompiledService {
  name: string;
  targets: CompiledTarget[];
  /** TLS settings for the https:// targets (null when there are none). */
  tls: CompiledUpstreamTls | null;
  balance: 'round_robin' | 'least_request';
  timeouts: { connectMs: number; responseMs: number; idleMs: number };
  /** Max keep-alive connections per target. */
  connectionsPerTarget: number;
  /** Max GET/HEAD requests in flight per upstream connection (1 = no pipelining). */
  pipelining: number;
  /** A gRPC service (src/grpc/): its channels and descriptors; `targets` then name its
   * channels (`grpc://host:port`) for /upstreams and metrics, and get no HTTP pool. */
  grpc?: CompiledGrpcService | null;
}

/** Path match kinds. `template` paths contain `{param}` segments and match the whole path. */
export type MatchKind = 'exact' | 'prefix' | 'template';

/** A filter of a route's chain: its factory name (src/filters/index.ts) and the config its
 * factory's compile() produced (plain data, typed by that factory; the registry's lookup by
 * name is what pairs the two again in the worker). */
export interface CompiledFilter {
  name: string;
  config: unknown;
}

/**
 * Instance-level compiled data of filters (one per config, e.g. the rate-limit table size and
 * Redis sync). Empty here: a filter that has some adds its optional field from its own folder
 * by declaration merging (`declare module '../../shared/compiled-config.js'`), and its
 * compile() returns it as FilterCompilation.runtime.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled by declaration merging
export interface CompiledFilterRuntimes {}

export interface CompiledRoute {
  name: string;
  /** Index into CompiledConfig.services. */
  service: number;
  match: {
    kind: MatchKind;
    /** Normalized path (exact/template) or prefix; always starts with `/`. No trailing `/` except the root. */
    path: string;
    /** Lower-case host without port, or null for any host. */
    host: string | null;
    /** Bit mask from src/shared/methods.ts. */
    methodMask: number;
    /**
     * API versions the route serves (`match.version`): bit i = `versioning.versions`' i-th
     * version (src/shared/api-version.ts). Absent or -1: every version (no constraint).
     */
    versionMask?: number;
  };
  /** Param names of a template path, in segment order (index = param index in the match result). */
  paramNames: string[];
  /** Removed from the front of the path before forwarding (segment-aligned), or null. */
  stripPrefix: string | null;
  /** Templated rewrite of the path (the query string is kept), or null. */
  rewrite: RewritePart[] | null;
  /** Keep the client's Host header upstream (default: send the target's host). */
  preserveHost: boolean;
  /** The route's `escaped_slashes`, else the server's (resolved at compile time). */
  escapedSlashes: EscapedSlashes;
  /** The route's filter chain, in order. */
  filters: CompiledFilter[];
  /** REST/JSON to gRPC (src/grpc/), or absent/null. */
  transcode?: CompiledTranscode | null;
}

export interface CompiledConfig extends CompiledFilterRuntimes {
  /** File the config came from (for messages). */
  source: string;
  server: CompiledServer;
  services: CompiledService[];
  routes: CompiledRoute[];
  /** Filters whose onEnd runs for requests that match no route (FilterCompilation.unrouted). */
  unroutedFilters?: CompiledFilter[];
}
