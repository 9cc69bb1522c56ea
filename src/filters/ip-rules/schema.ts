// The `ip-rules` filter's part of the config schema: `ip_allow` / `ip_deny` lists of CIDR ranges,
// both at the top level (every route) and under `routes[]` (that route, besides the top level's).
import { z } from 'zod';
import { rule } from '../../control/schema-kit.js';
import { parseCidr } from '../../shared/ip-cidr.js';

function checkRange(raw: string): string | null {
  const parsed = parseCidr(raw);
  return typeof parsed === 'string' ? parsed : null;
}

const ranges = z.array(z.string().superRefine(rule(checkRange)))
  .min(1, { error: 'must list at least one address or CIDR range (omit the key for none)' })
  .optional();

/** The route keys: a route's own lists, checked besides the top-level ones. */
export const ipRulesRouteKeys = { ip_allow: ranges, ip_deny: ranges };
/** The top-level lists, for every route. */
export const ipRulesSections = { ip_allow: ranges, ip_deny: ranges };
