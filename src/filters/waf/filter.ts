// The `waf` filter's runtime (phase `policy`): inspects the request (request-scan.ts parts,
// inspect.ts) with the route's rules; when the anomaly score reaches the threshold it refuses
// 403 `waf_blocked` naming the rule ids (never the matched value) in `block` mode, or admits
// it in `report` mode. Either way the fired ids are kept on the context (ctx.wafRules) for the
// access log.
// Hot path: a request whose parts contain nothing a rule could match costs one pass over the
// characters of each inspected value (engine.ts) and no allocation.
import { NEXT, localReply, type Filter, type Verdict } from '../../data/chain.js';
import type { RequestContext } from '../../data/request-context.js';
import { GW_ERR, type GatewayErrorSpec } from '../../shared/errors.js';
import { WafScan, rulesFor, type Excluded } from './engine.js';
import { jsonBodyOf, MALFORMED } from '../../data/request-body.js';
import { UNINSPECTED, MALFORMED_JSON, bodyKind, BODY_KIND, inspectBody, inspectLimits, type InspectLimits, type JsonSource } from './inspect.js';
import { contentTypeOf, inspectHead } from './request-scan.js';

export interface WafFilterConfig {
  readonly route: string;
  readonly mode: 'block' | 'report';
  readonly paranoia: number;
  readonly threshold: number;
  readonly headers: readonly string[];
  readonly inspectBody: boolean;
  readonly jsonMaxDepth: number;
  readonly jsonMaxKeys: number;
  readonly unbufferedBody: 'refuse' | 'allow';
  /** rule 0 = every rule; field '' = every field. */
  readonly exclude: readonly { rule: number; field: string }[];
}

const SPEC_MEMO_MAX = 512;

function exclusionsOf(list: WafFilterConfig['exclude']): Excluded | null {
  if (list.length === 0) return null;
  const everywhere = new Set<number>();
  const byField = new Map<string, Set<number> | true>();
  for (const { rule, field } of list) {
    if (field === '') { everywhere.add(rule); continue; }
    if (rule === 0) { byField.set(field, true); continue; }
    const set = byField.get(field);
    if (set === true) continue;
    if (set === undefined) byField.set(field, new Set([rule])); else set.add(rule);
  }
  return (id, field) => {
    if (everywhere.has(id)) return true;
    const f = byField.get(field);
    return f === true || (f !== undefined && f.has(id));
  };
}

/** The body's JSON for inspect.ts when its byte scanner hands a body back: the parse the request's filters share. */
class SharedParse implements JsonSource {
  ctx: RequestContext | null = null;
  json(): unknown {
    const json = jsonBodyOf(this.ctx!);
    return json === MALFORMED ? MALFORMED_JSON : json;
  }
}

class WafFilter implements Filter {
  readonly name = 'waf';
  private readonly scan: WafScan;
  private readonly limits: InspectLimits;
  private readonly block: boolean;
  private readonly specs = new Map<string, GatewayErrorSpec>();
  private readonly shared = new SharedParse();

  constructor(private readonly c: WafFilterConfig) {
    this.scan = new WafScan(rulesFor(c.paranoia), exclusionsOf(c.exclude));
    this.limits = inspectLimits({ headers: c.headers, jsonMaxDepth: c.jsonMaxDepth, jsonMaxKeys: c.jsonMaxKeys, bodyMaxBytes: Number.MAX_SAFE_INTEGER });
    this.block = c.mode === 'block';
  }

  onRequest(ctx: RequestContext): Verdict {
    const scan = this.scan;
    scan.reset();
    inspectHead(scan, ctx, this.limits);
    const body = ctx.body;
    if (body !== null && this.c.inspectBody) {
      if (Buffer.isBuffer(body)) {
        this.shared.ctx = ctx;
        const uninspected = inspectBody(scan, body, contentTypeOf(ctx.headers), this.limits, this.shared);
        this.shared.ctx = null;
        if (uninspected === UNINSPECTED.bounds && this.block) return localReply(ctx, GW_ERR.waf_uninspectable);
      } else if (this.c.unbufferedBody === 'refuse' && this.block && bodyKind(contentTypeOf(ctx.headers)) !== BODY_KIND.none) {
        // Streamed (chunked or over the buffered size): its fields cannot be inspected before it is forwarded.
        // Report mode admits it, as it admits a JSON body past its bounds.
        return localReply(ctx, GW_ERR.waf_uninspectable);
      }
    }
    if (scan.fired.length === 0) return NEXT;
    const ids = scan.firedIds().join(',');
    ctx.wafRules = ids;
    if (scan.score < this.c.threshold) return NEXT;
    ctx.wafBlocked = true;
    if (!this.block) return NEXT;
    return localReply(ctx, this.specOf(ids));
  }

  /** The refusal naming the rules; memoised (the exchange caches each spec's body prefix). */
  private specOf(ids: string): GatewayErrorSpec {
    let spec = this.specs.get(ids);
    if (spec === undefined) {
      if (this.specs.size >= SPEC_MEMO_MAX) return GW_ERR.waf_blocked;
      spec = { status: 403, code: 'waf_blocked', message: `${GW_ERR.waf_blocked.message} Rules: ${ids}.` };
      this.specs.set(ids, spec);
    }
    return spec;
  }
}

export function buildWaf(config: WafFilterConfig): Filter {
  return new WafFilter(config);
}
