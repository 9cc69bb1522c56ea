// The `key-auth` filter's runtime: API-key authentication of a route's requests.
//
// onRequest (hot path; nothing allocated but the digest and the pushed headers):
//   1. one pass over the forwarded headers removes every consumer metadata header (so a client
//      can never send its own X-Consumer-Id) and finds the key header;
//   2. the key: that header, else the query parameter when configured; none → NEXT on an
//      `optional` route, else 401; the header twice → 401 (which one would the upstream read?);
//   3. the worker's consumer table (consumer-table.ts): SHA-256 of the key, one Map lookup,
//      a constant-time comparison of the digests; unknown or disabled → 401;
//   4. a consumer the route is not in the `routes` of → 403;
//   5. the key is removed from the request unless `forward_key`, the consumer's headers are
//      added, and ctx.consumer (the rate limiter's `key: consumer`) and ctx.subject are set.
// Refusals: 401 + `WWW-Authenticate: ApiKey realm="lobby", header="<name>"` and the JSON error body.
import { NEXT, localReply, type Filter, type Verdict, type WorkerEnv } from '../../data/chain.js';
import type { RequestContext } from '../../data/request-context.js';
import { GW_ERR } from '../../shared/errors.js';
import type { KeyAuthFilterConfig } from '../../shared/consumer-config.js';
import type { CompiledFilterRuntimes } from '../../shared/compiled-config.js';
import { queryValue, stripSet, type StripSet } from '../../data/auth/extract.js';
import { isAscii } from '../../shared/http-syntax.js';
import { consumerTableFor, KEY_DISABLED, KEY_UNKNOWN, type ConsumerTable } from './consumer-table.js';

const TWICE = 1 as const;

class KeyAuthFilter implements Filter {
  readonly name = 'key-auth';
  private readonly table: ConsumerTable;
  private readonly strip: StripSet;
  private readonly header: string;
  private readonly query: string | null;
  private readonly removeKey: boolean;
  private readonly optional: boolean;
  private readonly route: string;
  private readonly challenge: readonly string[];

  constructor(config: KeyAuthFilterConfig, env: WorkerEnv) {
    this.table = consumerTableFor(env.runtimes?.consumers);
    this.strip = stripSet(config.stripHeaders);
    this.header = config.header;
    this.query = config.query;
    this.removeKey = !config.forwardKey;
    this.optional = config.optional;
    this.route = config.route;
    // The header name is an HTTP token, the query name [A-Za-z0-9._~-]: safe in quoted-strings.
    const query = config.query === null ? '' : `, query="${config.query}"`;
    this.challenge = ['www-authenticate', `ApiKey realm="lobby", header="${config.header}"${query}`];
  }

  /** Strips the metadata headers and takes the key header in the same pass (removed unless forwarded). */
  private takeKey(h: string[]): string | null | typeof TWICE {
    const { names, lengths } = this.strip;
    const keyHeader = this.header;
    const remove = this.removeKey;
    let key: string | null = null;
    let count = 0;
    let w = 0;
    for (let r = 0; r < h.length; r += 2) {
      const name = h[r];
      if (name === keyHeader) {
        key = h[r + 1];
        count++;
        if (remove) continue;
      } else if ((lengths & (1 << (name.length & 31))) !== 0 && names.has(name)) continue;
      if (w !== r) { h[w] = name; h[w + 1] = h[r + 1]; }
      w += 2;
    }
    if (w !== h.length) h.length = w;
    return count > 1 ? TWICE : key;
  }

  // Hot path.
  onRequest(ctx: RequestContext): Verdict {
    let key = this.takeKey(ctx.headers);
    if (key === TWICE) return localReply(ctx, GW_ERR.invalid_api_key, this.challenge);
    let fromQuery = false;
    if ((key === null || key === '') && this.query !== null) {
      key = queryValue(ctx.query, this.query);
      fromQuery = key !== null;
    }
    if (key === null || key === '') return this.optional ? NEXT : localReply(ctx, GW_ERR.api_key_required, this.challenge);
    // A header value is a byte string (its UTF-8 as latin1): hashed as those bytes, as `lobby hash-key` hashes the key's UTF-8.
    const consumer = this.table.lookup(fromQuery || isAscii(key) ? key : Buffer.from(key, 'latin1'));
    if (consumer === KEY_UNKNOWN || consumer === KEY_DISABLED) return localReply(ctx, GW_ERR.invalid_api_key, this.challenge);
    if (consumer.routes !== null && !consumer.routes.has(this.route)) return localReply(ctx, GW_ERR.consumer_not_allowed);
    if (fromQuery && this.removeKey) removeQueryParam(ctx, this.query!);
    const h = ctx.headers;
    const add = consumer.headers;
    for (let i = 0; i < add.length; i += 2) h.push(add[i], add[i + 1]);
    ctx.consumer = consumer.name;
    ctx.consumerRate = consumer.rate;
    if (ctx.subject === '') ctx.subject = consumer.name;
    return NEXT;
  }
}

/**
 * Removes every `name=` pair from the query, and so from the upstream request-target (the
 * parameter name is [A-Za-z0-9._~-], the same in the raw query and in the encoded target).
 * Only for a key that came in the query: the header path never gets here.
 */
function removeQueryParam(ctx: RequestContext, name: string): void {
  const keep = (q: string) => q.split('&').filter((pair) => pair !== name && !pair.startsWith(name + '=')).join('&');
  ctx.query = keep(ctx.query);
  const at = ctx.upstreamPath.indexOf('?');
  if (at < 0) return;
  const rest = keep(ctx.upstreamPath.slice(at + 1));
  ctx.upstreamPath = rest === '' ? ctx.upstreamPath.slice(0, at) : ctx.upstreamPath.slice(0, at + 1) + rest;
}

/**
 * At a worker's prepare (builders.ts FILTER_PREPARES): builds the generation's consumer table
 * before the worker answers `prepared`, so no request waits for it (100,000 keys: tens of ms).
 */
export function prepareKeyAuth(runtimes: CompiledFilterRuntimes): void {
  if (runtimes.consumers !== undefined) consumerTableFor(runtimes.consumers);
}

/** build(): one filter per route per generation; the consumer table is the worker's. */
export function buildKeyAuth(config: KeyAuthFilterConfig, env: WorkerEnv): Filter {
  return new KeyAuthFilter(config, env);
}
