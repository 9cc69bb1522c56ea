// The `rate-limit` filter's runtime: every limit a route lists (`routes[].rate_limit`) must admit the
// request. Token buckets live in the instance's shared bucket table (src/shared/bucket-table.ts),
// so all workers of an instance draw on one bucket per key; with `redis` the control plane keeps
// the instances' buckets in agreement in the background (src/control/rate-limit-sync.ts) and
// this filter never waits for Redis.
//
// onRequest (synchronous, no allocation beyond the header strings):
//   for each limit: key (chosen at build: client IP / identity header of a claim / a request
//   header) → 64-bit hash seeded by the limit → take one token. Refused by a limit in enforce
//   mode: the tokens the earlier limits gave are handed back and the request is answered
//   `status` (429) with Retry-After. Admitted or refused: the RateLimit and X-RateLimit-*
//   values are kept on the context (ctx.rateLimit*).
// onResponse (the upstream's response and local replies alike): sets RateLimit-Policy,
//   RateLimit and X-RateLimit-* from those fields, replacing any the upstream sent.
// Redis down (the control plane sets the table's state): `local` → the instance enforces the
// whole limit alone; `allow` → counted like report mode, never refused; `deny` → refused.
import { NEXT, localReply, type Filter, type ResponseHead, type Verdict, type WorkerEnv } from '../../data/chain.js';
import { DEFAULT_RATE_LIMIT_KEYS, type CompiledRateLimit, type RateLimitFilterConfig } from '../../shared/rate-limit-config.js';
import {
  BucketTable, createBucketTable, hashKey, hashSeeds, keyHashHi, keyHashLo, REDIS_STATE, S,
  TAKE_FULL, TAKE_LIMITED,
} from '../../shared/bucket-table.js';
import { CidrSet, clientAddress, parseCidr, peerKey, type Cidr } from '../../shared/ip-cidr.js';
import { GW_ERR, withStatus, type GatewayErrorSpec } from '../../shared/errors.js';
import { log } from '../../shared/log.js';
import type { RequestContext } from '../../data/request-context.js';

const KEY_IP = 0;
const KEY_HEADER = 1;
const KEY_CONSUMER = 2;

/** One BucketTable view per buffer per thread (take()'s outputs are per view, the thread is single). */
const views = new Map<SharedArrayBuffer, BucketTable>();
let privateTable: SharedArrayBuffer | null = null;

function tableFor(env: WorkerEnv): BucketTable {
  const sab = env.rateLimitTable ?? (privateTable ??= createBucketTable(DEFAULT_RATE_LIMIT_KEYS));
  let view = views.get(sab);
  if (!view) {
    view = new BucketTable(sab, env.workerIndex + 1);
    views.set(sab, view);
  }
  return view;
}

/** The duplicate-key refusal naming `header`, memoized per header (bounded by the config). */
const duplicates = new Map<string, GatewayErrorSpec>();
function duplicateSpec(header: string): GatewayErrorSpec {
  let spec = duplicates.get(header);
  if (!spec) {
    const base = GW_ERR.invalid_rate_limit_key;
    spec = { status: base.status, code: base.code, message: `The request carries more than one ${header} header; it is a rate-limit key and must appear once.` };
    duplicates.set(header, spec);
  }
  return spec;
}

/** Retry-After of a refusal not caused by the bucket (table full, Redis down with deny). */
const RETRY_1S = ['retry-after', '1'] as const;

function secondsCeil(ms: number): number {
  return ms <= 0 ? 0 : Math.ceil(ms / 1000 - 1e-9);
}

class RateLimitFilter implements Filter {
  readonly name = 'rate-limit';
  private readonly table: BucketTable;
  private readonly limits: readonly CompiledRateLimit[];
  private readonly count: number;
  private readonly ids: Int32Array;
  private readonly seedHi: Int32Array;
  private readonly seedLo: Int32Array;
  private readonly ratePerMs: Float64Array;
  private readonly keyKind: Uint8Array;
  private readonly keyHeader: string[];
  private readonly stats: Int32Array;
  private readonly limitedSpecs: GatewayErrorSpec[];
  private readonly unavailableSpecs: GatewayErrorSpec[];
  /** 400 naming the limit's key header, for a request carrying it twice. */
  private readonly duplicateSpecs: GatewayErrorSpec[];
  private readonly burstText: string[];
  /** The constant head of each limit's RateLimit item: `"name";r=` (`, "name";r=` after the first). */
  private readonly itemHead: string[];
  private readonly trusted: CidrSet;
  private readonly policyHeader: string;
  /** Some limit is keyed by consumer; RateLimit-Policy for a consumer with its own rate, by that rate (bounded by the consumers). */
  private readonly byConsumer: boolean;
  private readonly consumerPolicies = new Map<object, string>();
  // Per-request scratch (one request at a time per worker: the filter is synchronous).
  private readonly takenSlot: Int32Array;
  private readonly takenHi: Int32Array;
  private readonly takenLo: Int32Array;
  private readonly takenShared: Uint8Array;
  // Report-mode log: at most one line per limit per second.
  private readonly reportedSinceLog: Int32Array;
  private readonly lastReportLog: Float64Array;

  constructor(config: RateLimitFilterConfig, env: WorkerEnv) {
    this.table = tableFor(env);
    this.limits = config.limits;
    const n = (this.count = config.limits.length);
    this.ids = new Int32Array(n);
    this.seedHi = new Int32Array(n);
    this.seedLo = new Int32Array(n);
    this.ratePerMs = new Float64Array(n);
    this.keyKind = new Uint8Array(n);
    this.keyHeader = [];
    this.stats = new Int32Array(n);
    this.limitedSpecs = [];
    this.unavailableSpecs = [];
    this.duplicateSpecs = [];
    this.burstText = [];
    this.itemHead = [];
    config.limits.forEach((limit, i) => {
      this.ids[i] = limit.id;
      const [hi, lo] = hashSeeds(limit.name);
      this.seedHi[i] = hi;
      this.seedLo[i] = lo;
      this.ratePerMs[i] = limit.rate / limit.perMs;
      this.keyKind[i] = limit.key.kind === 'ip' ? KEY_IP : limit.key.kind === 'consumer' ? KEY_CONSUMER : KEY_HEADER;
      this.keyHeader.push(limit.key.kind === 'ip' || limit.key.kind === 'consumer' ? '' : limit.key.header);
      this.stats[i] = this.table.statsSlot(limit.id);
      this.limitedSpecs.push(withStatus(GW_ERR.rate_limited, limit.status));
      this.unavailableSpecs.push(withStatus(GW_ERR.rate_limit_unavailable, limit.status));
      this.duplicateSpecs.push(limit.key.kind === 'ip' || limit.key.kind === 'consumer' ? GW_ERR.invalid_rate_limit_key : duplicateSpec(limit.key.header));
      this.burstText.push(String(limit.burst));
      this.itemHead.push(`${i === 0 ? '' : ', '}"${limit.name}";r=`);
    });
    this.trusted = new CidrSet(config.trustedProxies.map((c) => parseCidr(c)).filter((c): c is Cidr => typeof c !== 'string'));
    this.policyHeader = config.limits.map((l) => l.policy).join(', ');
    this.byConsumer = config.limits.some((l) => l.key.kind === 'consumer');
    this.takenSlot = new Int32Array(n);
    this.takenHi = new Int32Array(n);
    this.takenLo = new Int32Array(n);
    this.takenShared = new Uint8Array(n);
    this.reportedSinceLog = new Int32Array(n);
    this.lastReportLog = new Float64Array(n);
  }

  /** The key of limit `i` for this request; null when its header is there more than once. */
  private keyOf(i: number, ctx: RequestContext): string | null {
    const kind = this.keyKind[i];
    if (kind === KEY_IP) {
      return this.trusted.size === 0 ? peerKey(ctx.clientIp) : clientAddress(ctx.clientIp, ctx.forwardedFor, this.trusted);
    }
    // Without a consumer (an optional key_auth and no key) every such request shares one bucket.
    if (kind === KEY_CONSUMER) return ctx.consumer;
    const name = this.keyHeader[i];
    const h = ctx.headers;
    let key = ''; // no key: every such request shares one anonymous bucket
    let found = false;
    // Every header is looked at (not just up to the first match): with two copies the upstream
    // could read another key than the one limited, so two copies are refused.
    for (let j = 0; j < h.length; j += 2) {
      if (h[j] !== name) continue;
      if (found) return null;
      found = true;
      key = h[j + 1];
    }
    return key;
  }

  private count1(i: number, word: number): void {
    const at = this.stats[i];
    if (at >= 0) Atomics.add(this.table.i32, at + word, 1);
  }

  /** Hands back the tokens limits 0..upTo-1 gave this request. */
  private refund(upTo: number): void {
    for (let j = 0; j < upTo; j++) {
      const slot = this.takenSlot[j];
      if (slot >= 0) this.table.refund(slot, this.ids[j], this.takenHi[j], this.takenLo[j], this.takenShared[j] === 1);
    }
  }

  // Hot path: per limit one key read, one hash, one table take; the header strings at the end.
  onRequest(ctx: RequestContext): Verdict {
    const table = this.table;
    const limits = this.limits;
    const now = Date.now();
    const redis = table.redisState;
    let rateHeader = '';
    // The limit with the least left is the one the X-RateLimit-* headers describe.
    let tightest = -1;
    let tightestRemaining = 0;
    let tightestReset = 0;
    let tightestLimit = '';
    for (let i = 0; i < this.count; i++) {
      const limit = limits[i];
      const key = this.keyOf(i, ctx);
      if (key === null) {
        this.refund(i);
        return localReply(ctx, this.duplicateSpecs[i]);
      }
      hashKey(this.seedHi[i], this.seedLo[i], key);
      const hi = keyHashHi();
      const lo = keyHashLo();
      let enforce = limit.mode === 'enforce';
      let shared = false;
      if (limit.synced) {
        if (redis === REDIS_STATE.OK) shared = true;
        else if (redis === REDIS_STATE.DOWN) {
          if (limit.onRedisError === 'deny') {
            this.refund(i);
            this.count1(i, S.UNAVAILABLE);
            return localReply(ctx, this.unavailableSpecs[i], RETRY_1S);
          }
          if (limit.onRedisError === 'allow') enforce = false;
        }
      }
      // A consumer's own rate (consumers[].rate_limit) replaces the limit's for its bucket.
      const own = this.keyKind[i] === KEY_CONSUMER ? ctx.consumerRate : null;
      const burst = own === null ? limit.burst : own.burst;
      const result = table.take(this.ids[i], hi, lo, own === null ? this.ratePerMs[i] : own.ratePerMs, burst, now, shared);
      if (result === TAKE_FULL) {
        this.refund(i);
        this.count1(i, S.FULL);
        return localReply(ctx, GW_ERR.rate_limit_capacity, RETRY_1S);
      }
      const remaining = table.tokens > 0 ? Math.floor(table.tokens + 1e-9) : 0;
      const reset = secondsCeil(table.resetMs);
      rateHeader += this.itemHead[i] + remaining + ';t=' + reset;
      if (result === TAKE_LIMITED) {
        this.takenSlot[i] = -1;
        if (enforce) {
          this.refund(i);
          this.count1(i, S.LIMITED);
          const retry = String(Math.max(1, secondsCeil(table.retryMs)));
          this.stage(ctx, rateHeader, own === null ? this.burstText[i] : own.burstText, 0, reset);
          return localReply(ctx, this.limitedSpecs[i], ['retry-after', retry]);
        }
        this.count1(i, S.REPORTED);
        this.logReported(i, now);
      } else {
        this.takenSlot[i] = table.entry;
        this.takenHi[i] = hi;
        this.takenLo[i] = lo;
        this.takenShared[i] = shared ? 1 : 0;
        this.count1(i, S.ADMITTED);
      }
      if (tightest < 0 || remaining < tightestRemaining || (remaining === tightestRemaining && reset > tightestReset)) {
        tightest = i;
        tightestLimit = own === null ? this.burstText[i] : own.burstText;
        tightestRemaining = remaining;
        tightestReset = reset;
      }
    }
    this.stage(ctx, rateHeader, tightestLimit, tightestRemaining, tightestReset);
    return NEXT;
  }

  private stage(ctx: RequestContext, rateHeader: string, limit: string, remaining: number, reset: number): void {
    ctx.rateLimit = rateHeader;
    ctx.rateLimitLimit = limit;
    ctx.rateLimitRemaining = String(remaining);
    ctx.rateLimitReset = String(reset);
  }

  // Hot path: five header sets from strings onRequest made; nothing when it decided none.
  onResponse(ctx: RequestContext, head: ResponseHead): void {
    if (ctx.rateLimit === '') return;
    const own = this.byConsumer ? ctx.consumerRate : null;
    head.set('ratelimit-policy', own === null ? this.policyHeader : this.consumerPolicy(own));
    head.set('ratelimit', ctx.rateLimit);
    head.set('x-ratelimit-limit', ctx.rateLimitLimit);
    head.set('x-ratelimit-remaining', ctx.rateLimitRemaining);
    head.set('x-ratelimit-reset', ctx.rateLimitReset);
  }

  /** The policy with the consumer-keyed limits at the consumer's own rate (policyItem's formula). */
  private consumerPolicy(own: { readonly ratePerMs: number; readonly burst: number }): string {
    let policy = this.consumerPolicies.get(own);
    if (policy === undefined) {
      const window = Math.max(1, Math.ceil(own.burst / own.ratePerMs / 1000));
      policy = this.limits.map((l) => (l.key.kind === 'consumer' ? `"${l.name}";q=${own.burst};w=${window}` : l.policy)).join(', ');
      this.consumerPolicies.set(own, policy);
    }
    return policy;
  }

  private logReported(i: number, now: number): void {
    this.reportedSinceLog[i]++;
    if (now - this.lastReportLog[i] < 1000) return;
    log.warn('rate limit exceeded (report mode: admitted)', { limit: this.limits[i].name, requests: this.reportedSinceLog[i] });
    this.reportedSinceLog[i] = 0;
    this.lastReportLog[i] = now;
  }
}

/** build(): one filter per route per generation; the bucket table is the instance's. */
export function buildRateLimit(config: RateLimitFilterConfig, env: WorkerEnv): Filter {
  return new RateLimitFilter(config, env);
}
