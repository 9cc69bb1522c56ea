// The `ip-rules` filter: `ip_allow` / `ip_deny` (schema.ts) at the top level and per route, on the
// client address as `server.trusted_proxies` defines it (filter.ts). A route gets the filter when
// any list applies to it; the top level's lists apply to every route, a route's are added to them
// (a deny anywhere refuses; every allow list that applies must contain the address).
import type { FilterCompilation, FilterFactory } from '../../data/chain.js';
import { parseCidr, type Cidr } from '../../shared/ip-cidr.js';
import { ipRulesRouteKeys, ipRulesSections } from './schema.js';
import { buildIpRules, type IpRulesFilterConfig } from './filter.js';

export interface IpRulesInput {
  ip_allow?: string[];
  ip_deny?: string[];
  routes: readonly { ip_allow?: string[]; ip_deny?: string[] }[];
  server: { trusted_proxies: string[] };
}

function ranges(list: readonly string[] | undefined): Cidr[] {
  // The schema checked every entry.
  return (list ?? []).map((text) => parseCidr(text)).filter((c): c is Cidr => typeof c !== 'string');
}

export function compileIpRules(config: IpRulesInput): FilterCompilation<IpRulesFilterConfig> {
  const globalDeny = ranges(config.ip_deny);
  const globalAllow = config.ip_allow === undefined ? [] : [ranges(config.ip_allow)];
  const trustedProxies = ranges(config.server.trusted_proxies);
  return {
    route(index) {
      const route = config.routes[index];
      const deny = [...globalDeny, ...ranges(route.ip_deny)];
      const allow = route.ip_allow === undefined ? globalAllow : [...globalAllow, ranges(route.ip_allow)];
      return deny.length === 0 && allow.length === 0 ? null : { deny, allow, trustedProxies };
    },
  };
}

export const ipRules = {
  name: 'ip-rules',
  phase: 'edge',
  routeKeys: ipRulesRouteKeys,
  sections: ipRulesSections,
  compile: compileIpRules,
  build: buildIpRules,
} as const satisfies FilterFactory<IpRulesFilterConfig, IpRulesInput>;
