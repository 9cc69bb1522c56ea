// The `ext-authz` filter's runtime (phase `authz`, after authentication): asks an external
// authorization service whether the request may go on (the Envoy ext_authz HTTP contract,
// client.ts), and answers the request with the service's denial, or lets it through with the
// service's upstream headers.
//
// onRequest:
//   1. with a cache: the key (SHA-256 of the configured attributes, keyOf), a cached decision
//      is applied at once (NEXT, or the denial); a check in flight for the same key is joined;
//   2. else the check request: the request's method, `path_prefix` + its path and query, no
//      body, Host, the correlation id, the allowlisted headers, the identity headers auth-jwt
//      injected and the subject (SUBJECT_HEADER) → WAIT; the outcome resumes the chain.
// Before any decision is applied, the client's copies of every `allowed_upstream_headers` name
// and of EXT_AUTHZ_FAILURE_HEADER are removed: only the service (or the gateway) sets them.
// A failure (timeout, service down, 5xx, broken answer) answers `status_on_error`
// (ext_authz_timeout / ext_authz_unavailable), or on a `failure_mode_allow` route lets the
// request through with `x-lobby-ext-authz-failure: true`.
import { hash } from 'node:crypto';
import { NEXT, WAIT, localReply, logRequestFault, relayedReply, resumeChain, type Filter, type Verdict, type WorkerEnv } from '../../data/chain.js';
import { PHASE, type RequestContext } from '../../data/request-context.js';
import { GW_ERR, withStatus, type GatewayErrorSpec } from '../../shared/errors.js';
import { stripHeaders, stripSet, type StripSet } from '../../data/auth/extract.js';
import { isFieldValueBytes, toByteString, visibleAsciiTarget } from '../../shared/http-syntax.js';
import { CORRELATION_HEADER } from '../../data/correlation-id.js';
import type { AuthzDecision } from './cache.js';
import { authzClient, CHECK_FAILED, type AuthzClient, type CheckOutcome, type CheckWaiter } from './client.js';
import { KEY_KIND, type CompiledKeyPart, type ExtAuthzFilterConfig } from './config.js';
import { EXT_AUTHZ_FAILURE_HEADER, SUBJECT_HEADER } from './names.js';

export type { ExtAuthzFilterConfig } from './config.js';

/**
 * The cache key of a request: SHA-256 (over UTF-8, injective on the byte strings it joins) of
 * the configured attributes, each ended by `\n`, which no attribute can hold; each copy of a
 * header starts with `\x01`, so an absent header and an empty one differ.
 */
export function keyOf(ctx: RequestContext, parts: readonly CompiledKeyPart[]): string {
  let s = '';
  for (let p = 0; p < parts.length; p++) {
    const part = parts[p];
    switch (part.kind) {
      case KEY_KIND.METHOD: s += ctx.method; break;
      case KEY_KIND.HOST: s += ctx.host; break;
      case KEY_KIND.PATH: s += ctx.path; break;
      case KEY_KIND.QUERY: s += ctx.query; break;
      case KEY_KIND.SUBJECT: s += ctx.subject; break;
      default: {
        const h = ctx.headers;
        const name = part.name;
        for (let i = 0; i < h.length; i += 2) {
          const n = h[i];
          if (n.length === name.length && (n === name || n.toLowerCase() === name)) s += '\x01' + h[i + 1];
        }
      }
    }
    s += '\n';
  }
  return hash('sha256', s, 'base64url');
}

class ExtAuthzFilter implements Filter, CheckWaiter {
  readonly name = 'ext-authz';
  private readonly client: AuthzClient;
  private readonly keyParts: readonly CompiledKeyPart[];
  private readonly prefix: string;
  /** Request headers copied into the check: the allowlist and the identity headers. */
  private readonly sent: ReadonlySet<string>;
  /** Client headers removed before the request goes upstream. */
  private readonly owned: StripSet;
  private readonly failOpen: boolean;
  private readonly timeoutSpec: GatewayErrorSpec;
  private readonly unavailableSpec: GatewayErrorSpec;

  constructor(config: ExtAuthzFilterConfig) {
    const service = config.service;
    this.client = authzClient(service);
    this.keyParts = service.cache?.key ?? [];
    this.prefix = service.pathPrefix;
    this.sent = new Set([...service.allowedHeaders, ...service.identityHeaders]);
    this.owned = stripSet([...service.upstreamHeaders, EXT_AUTHZ_FAILURE_HEADER]);
    this.failOpen = config.failureModeAllow;
    this.timeoutSpec = withStatus(GW_ERR.ext_authz_timeout, service.statusOnError);
    this.unavailableSpec = withStatus(GW_ERR.ext_authz_unavailable, service.statusOnError);
  }

  onRequest(ctx: RequestContext): Verdict {
    const client = this.client;
    let key = '';
    if (client.cache !== null) {
      key = keyOf(ctx, this.keyParts);
      const cached = client.cache.get(key, Date.now());
      if (cached !== undefined) {
        stripHeaders(ctx.headers, this.owned);
        return this.apply(ctx, cached);
      }
      if (client.join(key, ctx, this)) {
        stripHeaders(ctx.headers, this.owned);
        return WAIT;
      }
    }
    const target = visibleAsciiTarget(this.prefix + ctx.path + (ctx.query === '' ? '' : '?' + ctx.query));
    const headers = this.checkHeaders(ctx);
    stripHeaders(ctx.headers, this.owned);
    if (target === null) return this.failed(ctx, CHECK_FAILED.UNAVAILABLE); // the front door lets none through
    client.check(key, ctx.method, target, headers, ctx, this);
    return WAIT;
  }

  /** The check request's headers: Host, the correlation id, the subject, the allowlisted and identity headers. */
  private checkHeaders(ctx: RequestContext): string[] {
    const out: string[] = ['host', ctx.host, CORRELATION_HEADER, ctx.correlationId, 'content-length', '0'];
    // The subject is text (a token's `sub`, a consumer's name): sent as its UTF-8 bytes, as
    // every identity header value is; a header value cannot carry controls.
    if (ctx.subject !== '') {
      const subject = toByteString(ctx.subject);
      if (isFieldValueBytes(subject)) out.push(SUBJECT_HEADER, subject);
    }
    const h = ctx.headers;
    const sent = this.sent;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i];
      if ((sent.has(name) || sent.has(name.toLowerCase())) && isFieldValueBytes(h[i + 1])) out.push(name, h[i + 1]);
    }
    return out;
  }

  private apply(ctx: RequestContext, decision: AuthzDecision): Verdict {
    if (!decision.allowed) return this.deny(ctx, decision);
    const add = decision.headers;
    if (add.length !== 0) {
      // Set, not appended: the service's value replaces any other (the client's were removed).
      const h = ctx.headers;
      for (let i = 0; i < add.length; i += 2) h.push(add[i], add[i + 1]);
    }
    return NEXT;
  }

  /** A denial's reply was made with the decision (client.ts denial): nothing is built here. */
  private deny(ctx: RequestContext, decision: AuthzDecision): Verdict {
    const spec = decision.spec!;
    if (decision.body !== null) return relayedReply(ctx, spec, decision.status, decision.headers, decision.body);
    return localReply(ctx, spec, decision.headers);
  }

  private failed(ctx: RequestContext, outcome: typeof CHECK_FAILED.TIMEOUT | typeof CHECK_FAILED.UNAVAILABLE): Verdict {
    if (this.failOpen) {
      ctx.headers.push(EXT_AUTHZ_FAILURE_HEADER, 'true');
      return NEXT;
    }
    return localReply(ctx, outcome === CHECK_FAILED.TIMEOUT ? this.timeoutSpec : this.unavailableSpec);
  }

  settle(ctx: RequestContext, outcome: CheckOutcome): void {
    // The client left, or the exchange ended meanwhile (the route's deadline): nothing to do.
    if (ctx.aborted || ctx.ended || ctx.phase === PHASE.DONE) return;
    try {
      const verdict = typeof outcome === 'object' ? this.apply(ctx, outcome) : this.failed(ctx, outcome);
      if (verdict === NEXT) resumeChain(ctx);
    } catch (err) {
      logRequestFault(ctx, err);
      localReply(ctx, GW_ERR.internal_error, null);
    }
  }
}

/** build(): one filter per route per generation (the service's client is shared per worker). */
export function buildExtAuthz(config: ExtAuthzFilterConfig, _env?: WorkerEnv): Filter {
  return new ExtAuthzFilter(config);
}
