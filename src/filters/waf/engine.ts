// The WAF's detection engine, shared by the filter (filter.ts) and the scoring script
// (score.ts): a route's rules (paranoia <= the route's), run over every inspected value of a
// request, the fired rules collected once each with their severities summed.
//
// Hot path: a value is first tested against one gate regex (GATE): a value with only letters,
// digits, spaces and _ . , / - (after normalisation) and none of the keywords the rules can
// match without punctuation cannot fire any rule, and costs one regex test. Whole header
// values (User-Agent, Referer, Cookie) repeat across requests: their verdicts are memoised in
// a bounded map.
import { normalizeValue, plainKind, OTHER, lastWasPlain } from './normalize.js';
import { WAF_RULES, type WafRule } from './rules.js';
import { checkRegexSafety } from './regex-safety.js';

/** Keywords and sequences some rule matches without any character outside [a-z0-9 _.,/-]
 * (UNION SELECT, or 1, into outfile, document.cookie ...); test/filters/waf.test.ts checks that
 * the gate never hides a match. */
const KEYWORDS = /--|0x|union|select|into|load|order|pg_|delete|drop|update|exec|insert|information_schema|sys|sqlite_|all_tab|user_tables|dba_users|xp_|sp_|mysql\.|master\.\.|document|window|location|innerhtml|outerhtml|\b(?:x?or|and)(?:true|false|not|[^a-z_]|$)/;
/** Some rule may match: a character other than [a-z0-9 _.,/-], or a keyword. */
const GATE = new RegExp(`[^a-z0-9 _.,\\/-]|${KEYWORDS.source}`);
/** The same, on raw text (any case, still encoded): a part with none of it needs no decoding either. */
const RAW_GATE = new RegExp(GATE.source.replace('[^a-z0-9 _.,\\/-]', '[^A-Za-z0-9 _.,\\/=&-]'), 'i');

/** Whether some rule may match the normalised `text`: plain text needs a keyword. */
function mayMatch(text: string, plain: boolean): boolean {
  return plain || plainKind(text) !== OTHER ? KEYWORDS.test(text) : GATE.test(text);
}

export interface CompiledRule {
  readonly id: number;
  readonly severity: number;
  readonly re: RegExp;
}

/** The rules of one paranoia level, as the data plane runs them. */
export function rulesFor(paranoia: number, rules: readonly WafRule[] = WAF_RULES): CompiledRule[] {
  return rules.filter((r) => r.paranoia <= paranoia).map((r) => {
    const verdict = checkRegexSafety(r.pattern);
    // The rule table is Lobby's own; a pattern that is not proven safe is a bug caught by every test.
    if (!verdict.ok) throw new Error(`WAF rule ${r.id} is not regex-safe: ${verdict.reason}`);
    return { id: r.id, severity: r.severity, re: new RegExp(r.pattern) };
  });
}

/** A fired rule's exclusion test: true when `field` is excluded for rule `id`. */
export type Excluded = (id: number, field: string) => boolean;

const MEMO_MAX = 2048;
const MEMO_VALUE_MAX = 1024;
const NONE: readonly number[] = [];

/**
 * One request's inspection state: which rules fired and the score. Reused request after
 * request (reset()), as the worker runs one request at a time through a filter.
 */
export class WafScan {
  readonly fired: number[] = [];
  score = 0;
  private readonly seen: Uint8Array;
  private readonly memo = new Map<string, readonly number[]>();

  constructor(readonly rules: readonly CompiledRule[], private readonly excluded: Excluded | null) {
    this.seen = new Uint8Array(rules.length);
  }

  reset(): void {
    for (let i = 0; i < this.fired.length; i++) this.seen[this.fired[i]] = 0;
    this.fired.length = 0;
    this.score = 0;
  }

  /** True when the raw part (a path, a query string, a header) cannot fire any rule. */
  static rawIsClean(raw: string): boolean {
    return !RAW_GATE.test(raw);
  }

  /** JSON keys seen clean (no rule can fire on them): repeated keys of arrays of objects are
   * skipped after the first. JSON.parse interns keys, so the lookup hashes nothing new. */
  private readonly cleanKeys = new Set<string>();

  /** Inspects a JSON object key (as value(), remembering clean ones). */
  key(key: string, prefix: string): void {
    if (this.cleanKeys.has(key)) return;
    const text = normalizeValue(key, false);
    if (!mayMatch(text, lastWasPlain)) {
      if (this.cleanKeys.size >= MEMO_MAX) this.cleanKeys.clear();
      this.cleanKeys.add(key);
      return;
    }
    this.value(key, false, prefix, key);
  }

  /** Inspects one value; `field` names it for exclusions (built only when a rule fired, by `fieldOf`). */
  value(raw: string, plusAsSpace: boolean, prefix: string, name: string): void {
    const text = normalizeValue(raw, plusAsSpace);
    if (!mayMatch(text, lastWasPlain)) return;
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) {
      if (this.seen[i] === 1 || !rules[i].re.test(text)) continue;
      if (this.excluded !== null && this.excluded(rules[i].id, prefix + name)) continue;
      this.fire(i);
    }
  }

  /** Inspects a whole header value whose verdicts are memoised (repeating values: User-Agent, Cookie, Referer). */
  memoValue(raw: string, field: string): void {
    let hits = this.memo.get(raw);
    if (hits === undefined) {
      hits = NONE;
      const text = normalizeValue(raw, false);
      if (mayMatch(text, lastWasPlain)) {
        const found: number[] = [];
        for (let i = 0; i < this.rules.length; i++) if (this.rules[i].re.test(text)) found.push(i);
        if (found.length > 0) hits = found;
      }
      if (raw.length <= MEMO_VALUE_MAX) {
        if (this.memo.size >= MEMO_MAX) this.memo.clear();
        this.memo.set(raw, hits);
      }
    }
    for (let k = 0; k < hits.length; k++) {
      const i = hits[k];
      if (this.seen[i] === 1) continue;
      if (this.excluded !== null && this.excluded(this.rules[i].id, field)) continue;
      this.fire(i);
    }
  }

  private fire(i: number): void {
    this.seen[i] = 1;
    this.fired.push(i);
    this.score += this.rules[i].severity;
  }

  /** The fired rules' ids, ascending. */
  firedIds(): number[] {
    return this.fired.map((i) => this.rules[i].id).sort((a, b) => a - b);
  }
}
