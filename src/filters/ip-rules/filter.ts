// The `ip-rules` filter's runtime (phase `edge`): the client address, as server.trusted_proxies
// defines it (src/shared/ip-cidr.ts clientAddressInto, the rate limit's `ip` key read as words),
// is refused 403 `ip_denied` when it is in a deny range or outside any allow list.
// Hot path: one address parse (two with a trusted proxy) and a scan of each range list; no allocation.
import { NEXT, localReply, type Filter, type Verdict } from '../../data/chain.js';
import type { RequestContext } from '../../data/request-context.js';
import { CidrSet, clientAddressInto, ipWords, type Cidr } from '../../shared/ip-cidr.js';
import { GW_ERR } from '../../shared/errors.js';

/** A route's compiled IP rules (plain data: ranges as parsed words). */
export interface IpRulesFilterConfig {
  /** Every deny range that applies (the top level's and the route's). */
  readonly deny: readonly Cidr[];
  /** Allow lists that must each contain the address (the top level's, the route's). */
  readonly allow: readonly (readonly Cidr[])[];
  readonly trustedProxies: readonly Cidr[];
}

class IpRulesFilter implements Filter {
  readonly name = 'ip-rules';
  private readonly deny: CidrSet;
  private readonly allow: CidrSet[];
  private readonly trusted: CidrSet;
  private readonly scratch = ipWords();

  constructor(config: IpRulesFilterConfig) {
    this.deny = new CidrSet(config.deny);
    this.allow = config.allow.map((list) => new CidrSet(list));
    this.trusted = new CidrSet(config.trustedProxies);
  }

  onRequest(ctx: RequestContext): Verdict {
    const w = this.scratch;
    // A peer that is not an address cannot happen with uWS; refused rather than guessed.
    if (!clientAddressInto(ctx.clientIp, ctx.forwardedFor, this.trusted, w)) return localReply(ctx, GW_ERR.ip_denied);
    if (this.deny.hasWords(w)) return localReply(ctx, GW_ERR.ip_denied);
    for (let i = 0; i < this.allow.length; i++) if (!this.allow[i].hasWords(w)) return localReply(ctx, GW_ERR.ip_denied);
    return NEXT;
  }
}

export function buildIpRules(config: IpRulesFilterConfig): Filter {
  return new IpRulesFilter(config);
}
