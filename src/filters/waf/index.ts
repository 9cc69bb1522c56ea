// The `waf` filter (issue 16; docs/security-filters.md): SQL injection and XSS detection with
// CRS-style anomaly scoring. The top-level `waf` section is the default of every route; a
// route's `waf` overrides it key by key (exclusions add up), `waf: false` turns it off.
import type { FilterCompilation, FilterCompileContext, FilterFactory } from '../../data/chain.js';
import { WAF_RULES } from './rules.js';
import { wafRouteKeys, wafSections, type WafSettings } from './schema.js';
import { buildWaf, type WafFilterConfig } from './filter.js';

export interface WafInput {
  waf?: WafSettings;
  routes: readonly { name?: string; waf?: WafSettings | false }[];
}

const RULE_IDS = new Set(WAF_RULES.map((r) => r.id));

export function compileWaf(config: WafInput, ctx: FilterCompileContext): FilterCompilation<WafFilterConfig> {
  const top = config.waf;
  const check = (s: WafSettings | undefined, path: (string | number)[]) => {
    s?.exclude?.forEach((e, i) => {
      if (e.rule !== undefined && !RULE_IDS.has(e.rule)) ctx.report([...path, 'exclude', i, 'rule'], `no WAF rule ${e.rule} (rules: docs/security-filters.md)`);
    });
  };
  check(top, ['waf']);
  config.routes.forEach((r, i) => { if (r.waf) check(r.waf, ['routes', i, 'waf']); });
  return {
    route(index) {
      const route = config.routes[index];
      if (route.waf === false || (route.waf === undefined && top === undefined)) return null;
      const own = route.waf ?? {};
      const base = top ?? {};
      const pick = <K extends keyof WafSettings>(k: K): WafSettings[K] => (own[k] !== undefined ? own[k] : base[k]);
      return {
        route: route.name ?? `#${index}`,
        mode: pick('mode') ?? 'block',
        paranoia: pick('paranoia') ?? 1,
        threshold: pick('threshold') ?? 5,
        headers: (pick('headers') ?? ['cookie', 'referer', 'user-agent']).map((h) => h.toLowerCase()),
        inspectBody: pick('inspect_body') ?? true,
        jsonMaxDepth: pick('json_max_depth') ?? 32,
        jsonMaxKeys: pick('json_max_keys') ?? 2048,
        unbufferedBody: pick('unbuffered_body') ?? 'refuse',
        exclude: [...(base.exclude ?? []), ...(own.exclude ?? [])].map((e) => ({ rule: e.rule ?? 0, field: e.field ?? '' })),
      };
    },
  };
}

export const waf = {
  name: 'waf',
  phase: 'policy',
  routeKeys: wafRouteKeys,
  sections: wafSections,
  compile: compileWaf,
  build: buildWaf,
} as const satisfies FilterFactory<WafFilterConfig, WafInput>;
