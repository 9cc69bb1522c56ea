// The last-good fallback cache of a service (docs/resilience.md#fallback-cache): the latest
// successful GET response per key, served while the service's breaker is open (breaker.ts)
// or while it has no healthy target (RuntimeService.serveFallback), marked
// `Cache-Status: lobby; hit; detail=stale-if-error` (RFC 9211, RFC 5861) with its `Age`.
//
// Per worker: a Map in LRU order bounded by bytes, one per service name (and one per route
// with a `fallback` of its own, docs/resilience.md#per-route-overrides), kept across
// generations (a reload keeps the last-good answers). Sharing it between workers would mean
// copying bodies through shared memory on every capture; each worker learns its own.
//
// The key is the method, the Host, the upstream request-target (path and query), the values
// of the key headers (the identity headers the gateway injected, Authorization, Cookie: one
// user's answer is never served to another) and of the request headers the response's
// `Vary` names. Responses marked no-store or private, with Set-Cookie, `Vary: *`, a status
// outside 2xx (or 206) or a body larger than max_entry_bytes are never kept.
import { routeOverrideKey, type CompiledFallback } from '../../shared/breaker-layout.js';
import type { CompiledConfig, CompiledService } from '../../shared/compiled-config.js';
import { coarseNow } from '../deadlines.js';
import { endResponse, lowerEquals, startResponse, writeResponseData } from '../exchange.js';
import { PHASE, RESPONSE_FLAG, type HeaderField, type RequestContext } from '../request-context.js';
import type { DispatchController, DispatchHandler } from './dispatch.js';

export const CACHE_STATUS_HIT = 'lobby; hit; detail=stale-if-error';
/** Variants kept per key (distinct Vary values), a bound against a Vary on a header with many values. */
const MAX_VARIANTS = 16;

interface Entry {
  readonly status: number;
  readonly statusText: string;
  /** End-to-end response headers as relayed (hop-by-hop and Content-Length dropped). */
  readonly headers: readonly string[];
  readonly body: Buffer;
  readonly storedAt: number;
  readonly size: number;
  readonly primary: string;
}

/** Values of `names` among flat request headers, each name's copies joined: one key part. */
function headerValues(headers: readonly string[], names: readonly string[]): string {
  let out = '';
  for (let n = 0; n < names.length; n++) {
    const name = names[n];
    out += '\0';
    for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) out += headers[i + 1] + '\n';
  }
  return out;
}

function text(field: HeaderField): string {
  return typeof field === 'string' ? field : field.toString('latin1');
}

/** The Vary names of a response (lower-case), [] when none, null when it must not be kept. */
export function cacheableVary(status: number, raw: readonly HeaderField[]): string[] | null {
  if (status < 200 || status > 299 || status === 206) return null;
  let vary: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.length === 10 && lowerEquals(name, 'set-cookie')) return null;
    if (name.length === 13 && lowerEquals(name, 'cache-control')) {
      if (/(?:^|,)\s*(?:no-store|private)\s*(?:[=,]|$)/i.test(text(raw[i + 1]))) return null;
    } else if (name.length === 4 && lowerEquals(name, 'vary')) {
      for (const token of text(raw[i + 1]).split(',')) {
        const t = token.trim().toLowerCase();
        if (t === '*') return null;
        if (t !== '' && !vary.includes(t)) vary.push(t);
      }
    }
  }
  vary = vary.sort();
  return vary;
}

export class FallbackCache {
  private readonly entries = new Map<string, Entry>();
  /** Per primary key: the Vary names of its latest stored response, and how many variants. */
  private readonly varyOf = new Map<string, { names: readonly string[]; variants: number }>();
  private bytes = 0;
  hits = 0;
  stores = 0;

  constructor(public config: CompiledFallback) {}

  get size(): number { return this.entries.size; }
  get usedBytes(): number { return this.bytes; }

  /** A new generation's limits: the entries stay (fewer when the bound shrank), unless the key changed. */
  reconfigure(config: CompiledFallback): void {
    if (config.keyHeaders.join('\0') !== this.config.keyHeaders.join('\0')) this.clear();
    this.config = config;
    this.evict();
  }

  clear(): void {
    this.entries.clear();
    this.varyOf.clear();
    this.bytes = 0;
  }

  /** The primary key of a request, or null when it is not a GET (nothing is kept for it). */
  primaryKey(ctx: RequestContext): string | null {
    if (ctx.method !== 'GET') return null;
    return ctx.host + ' ' + ctx.upstreamPath + headerValues(ctx.headers, this.config.keyHeaders);
  }

  /** Keeps a complete response (`headers` as relayed, `vary` from cacheableVary). */
  store(primary: string, ctx: RequestContext, vary: readonly string[], status: number, statusText: string, headers: readonly string[], body: Buffer): void {
    const size = body.length + primary.length + headers.reduce((n, h) => n + h.length, 0) + 64;
    if (body.length > this.config.maxEntryBytes || size > this.config.maxBytes) return;
    let v = this.varyOf.get(primary);
    if (v === undefined || v.names.join(',') !== vary.join(',')) {
      v = { names: vary, variants: 0 };
      this.varyOf.set(primary, v);
    }
    const key = vary.length === 0 ? primary : primary + '\x01' + headerValues(ctx.headers, vary);
    const old = this.entries.get(key);
    if (old !== undefined) { this.entries.delete(key); this.bytes -= old.size; } else if (v.variants >= MAX_VARIANTS) return;
    else v.variants++;
    this.entries.set(key, { status, statusText, headers, body, storedAt: coarseNow, size, primary });
    this.bytes += size;
    this.stores++;
    this.evict();
  }

  /** The entry for a request, fresh within ttl_s (an expired one is dropped), or null. */
  lookup(ctx: RequestContext): Entry | null {
    const primary = this.primaryKey(ctx);
    if (primary === null) return null;
    const v = this.varyOf.get(primary);
    if (v === undefined) return null;
    const key = v.names.length === 0 ? primary : primary + '\x01' + headerValues(ctx.headers, v.names);
    const entry = this.entries.get(key);
    if (entry === undefined) return null;
    this.entries.delete(key);
    if (coarseNow - entry.storedAt > this.config.ttlMs) { this.drop(entry); return null; }
    this.entries.set(key, entry); // most recently used
    return entry;
  }

  /** Least recently used first, until the bytes fit. */
  private evict(): void {
    while (this.bytes > this.config.maxBytes) {
      const first = this.entries.entries().next();
      if (first.done) break;
      this.entries.delete(first.value[0]);
      this.drop(first.value[1]);
    }
  }

  private drop(entry: Entry): void {
    this.bytes -= entry.size;
    const v = this.varyOf.get(entry.primary);
    if (v !== undefined && --v.variants <= 0) this.varyOf.delete(entry.primary);
  }

  /** A hit's headers as relayed, marked stale-if-error with its Age; counts the hit. */
  private hitHeaders(ctx: RequestContext, entry: Entry): HeaderField[] {
    this.hits++;
    ctx.responseFlags |= RESPONSE_FLAG.FALLBACK_SERVED;
    const headers: HeaderField[] = entry.headers.slice();
    headers.push('cache-status', CACHE_STATUS_HIT, 'age', String(Math.max(0, Math.floor((coarseNow - entry.storedAt) / 1000))));
    return headers;
  }

  /**
   * Answers a try from the cache through its dispatch handler, as if the upstream had sent
   * it (so every policy outside, e.g. a retry, sees an answer): true when it did.
   */
  replay(ctx: RequestContext, handler: DispatchHandler): boolean {
    if (ctx.ended || ctx.responseStarted) return false;
    const entry = this.lookup(ctx);
    if (entry === null) return false;
    const headers = this.hitHeaders(ctx, entry);
    if (entry.status !== 204) headers.push('content-length', String(entry.body.length));
    handler.onRequestStart?.(REPLAYED, null);
    if (!ctx.ended) handler.onResponseStart?.(REPLAYED, entry.status, headers, entry.statusText);
    if (!ctx.ended && entry.body.length > 0 && entry.status !== 204) handler.onResponseData?.(REPLAYED, entry.body);
    if (!ctx.ended) handler.onResponseEnd?.(REPLAYED, null);
    return true;
  }

  /** Answers `ctx` from the cache straight to the client (no dispatch): true when it did
   * (the exchange then ends by itself). RuntimeService.serveFallback. */
  serve(ctx: RequestContext): boolean {
    if (ctx.ended || ctx.responseStarted) return false;
    const entry = this.lookup(ctx);
    if (entry === null) return false;
    const headers = this.hitHeaders(ctx, entry);
    ctx.phase = PHASE.STREAMING;
    ctx.deadline = ctx.route !== null ? coarseNow + ctx.route.service.idleMs : 0;
    const body = entry.body;
    const bodiless = entry.status === 204; // no Content-Length, no body
    startResponse(ctx, entry.status, entry.statusText, headers, body.length, bodiless);
    if (body.length > 0 && !bodiless) writeResponseData(ctx, body);
    else endResponse(ctx);
    return true;
  }
}

/** The controller of a replayed answer: there is no connection to pause or abort. */
const REPLAYED: DispatchController = { abort() {}, pause() {}, resume() {}, aborted: false, paused: false };

/** The worker's caches: a service's by its name, a route's own by routeOverrideKey(). */
const caches = new Map<string, FallbackCache>();

function cacheAt(key: string, config: CompiledFallback): FallbackCache {
  let cache = caches.get(key);
  if (cache === undefined) { cache = new FallbackCache(config); caches.set(key, cache); } else cache.reconfigure(config);
  return cache;
}

/** The worker's cache of a service (one per name, kept across generations), or null without `fallback`. */
export function fallbackCacheFor(service: CompiledService): FallbackCache | null {
  const config = service.fallback ?? null;
  if (config === null) { caches.delete(service.name); return null; }
  return cacheAt(service.name, config);
}

/** Which service a route's own cache holds answers of: one moved to another service starts empty. */
const routeCacheService = new Map<string, string>();

/** The worker's own cache of a route with `fallback` (kept across generations while the route keeps it). */
export function routeFallbackCache(route: string, service: string, config: CompiledFallback): FallbackCache {
  const key = routeOverrideKey(route);
  const cache = cacheAt(key, config);
  if (routeCacheService.get(key) !== service) { cache.clear(); routeCacheService.set(key, service); }
  return cache;
}

/**
 * A new generation: the caches its config has no use for are dropped (a service without
 * `fallback` or gone, a route without its own), so their bytes do not outlive the config.
 * Route caches are made on the route's first request; the config names them ahead.
 */
export function keepFallbackCaches(config: CompiledConfig): void {
  const kept = new Set<string>();
  for (const s of config.services) if (s.fallback) kept.add(s.name);
  for (const r of config.routeFallbacks ?? []) kept.add(routeOverrideKey(r));
  for (const key of caches.keys()) if (!kept.has(key)) { caches.delete(key); routeCacheService.delete(key); }
}

/** RuntimeService.serveFallback over a cache: null without one (one comparison for callers). */
export function fallbackServer(cache: FallbackCache | null): ((ctx: RequestContext) => boolean) | null {
  return cache === null ? null : (ctx) => cache.serve(ctx);
}

/** Copies a relayed header list (strings from the fast client, Buffers from undici), dropping Age. */
export function copyHeaders(headers: readonly HeaderField[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (name.length === 3 && lowerEquals(name, 'age')) continue;
    out.push(text(name), text(headers[i + 1]));
  }
  return out;
}
