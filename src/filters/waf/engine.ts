// The WAF's detection engine, shared by the filter (filter.ts) and the scoring script
// (score.ts): a route's rules (paranoia <= the route's), run over every inspected value of a
// request, the fired rules collected once each with their severities summed.
//
// Hot path: one pass over a value's characters (prefilter.ts AtomAutomaton) finds the literal
// atoms the rules' patterns need; a rule's regex runs only on a value that has an atom of its
// trigger clause (and of its second clause, when it has a small one), so most values run no
// regex. The atoms are derived from the patterns when the rules are compiled, which makes the
// skip sound by construction. A
// value as the normaliser would leave it (most are: no %, &, \, no control characters, no
// comments) is scanned raw, capitals folded, without normalising or even slicing it out of
// its query string or body. Whole header values (User-Agent, Referer, Cookie values) repeat
// across requests: their verdicts are memoised in a bounded map.
import { normalizeValue } from './normalize.js';
import { WAF_RULES, type WafRule } from './rules.js';
import { checkRegexSafety } from './regex-safety.js';
import { buildPrefilter, unreadableReason, SCAN, type Prefilter } from './prefilter.js';

export interface CompiledRule {
  readonly id: number;
  readonly severity: number;
  readonly re: RegExp;
}

/** The rules of one paranoia level, as the data plane runs them, with their prefilter. */
export interface RuleSet {
  readonly rules: readonly CompiledRule[];
  readonly prefilter: Prefilter;
}

const byParanoia = new Map<number, RuleSet>();

/**
 * The rules of one paranoia level; the set of the built-in rules is built once per level and
 * thread, and its automaton's scan state shared by the thread's filters (every scan is read
 * before the next one starts: inspection is synchronous).
 */
export function rulesFor(paranoia: number, rules: readonly WafRule[] = WAF_RULES): RuleSet {
  const cached = rules === WAF_RULES ? byParanoia.get(paranoia) : undefined;
  if (cached !== undefined) return cached;
  const chosen = rules.filter((r) => r.paranoia <= paranoia);
  const compiled = chosen.map((r) => {
    const verdict = checkRegexSafety(r.pattern);
    // The rule table is Lobby's own; a pattern that is not proven safe is a bug caught by every test.
    if (!verdict.ok) throw new Error(`WAF rule ${r.id} is not regex-safe: ${verdict.reason}`);
    const unreadable = unreadableReason(r.pattern);
    if (unreadable !== '') throw new Error(`WAF rule ${r.id}: the prefilter cannot read its pattern: ${unreadable}`);
    return { id: r.id, severity: r.severity, re: new RegExp(r.pattern) };
  });
  const set = { rules: compiled, prefilter: buildPrefilter(chosen.map((r) => r.pattern)) };
  if (rules === WAF_RULES) byParanoia.set(paranoia, set);
  return set;
}

/** A fired rule's exclusion test: true when `field` is excluded for rule `id`. */
export type Excluded = (id: number, field: string) => boolean;

/** An inspected value's field name (`query.q`, `body.customer.name` ...), built only when a rule fires and exclusions exist. */
export interface FieldName {
  fieldName(): string;
}

/** A field whose name is known in advance (path, header.user-agent). */
export class ConstField implements FieldName {
  constructor(private readonly name: string) {}
  fieldName(): string { return this.name; }
}

/** prefix + text[start, end): a query parameter's or a cookie's name inside its header. */
export class SliceField implements FieldName {
  prefix = '';
  text = '';
  start = 0;
  end = 0;
  set(prefix: string, text: string, start: number, end: number): this {
    this.prefix = prefix; this.text = text; this.start = start; this.end = end;
    return this;
  }
  fieldName(): string { return this.prefix + this.text.slice(this.start, this.end); }
}

/** Whether `text` has one of a confirm clause's literals (no clause: nothing to confirm). */
function confirmed(literals: readonly string[] | null, text: string): boolean {
  if (literals === null) return true;
  for (let k = 0; k < literals.length; k++) if (text.includes(literals[k])) return true;
  return false;
}

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
  readonly rules: readonly CompiledRule[];
  private readonly prefilter: Prefilter;
  private readonly seen: Uint8Array;
  private readonly memo = new Map<string, readonly number[]>();
  /** Some rule has no trigger (no literal it must contain is known): every value runs it. */
  private readonly always: boolean;

  constructor(set: RuleSet, private readonly excluded: Excluded | null) {
    this.rules = set.rules;
    this.prefilter = set.prefilter;
    this.seen = new Uint8Array(set.rules.length);
    this.always = set.prefilter.anyAlways.includes(1) || set.prefilter.plainAlways.includes(1);
  }

  reset(): void {
    this.rollback(0);
  }

  /** How many rules have fired, for rollback(). */
  mark(): number {
    return this.fired.length;
  }

  /** Forgets the rules fired since mark() returned `mark` (a body scan that hands over to another reading of the body). */
  rollback(mark: number): void {
    for (let i = mark; i < this.fired.length; i++) {
      this.seen[this.fired[i]] = 0;
      this.score -= this.rules[this.fired[i]].severity;
    }
    this.fired.length = mark;
    if (mark === 0) this.score = 0;
  }

  /** Inspects one value. */
  value(raw: string, plusAsSpace: boolean, field: FieldName): void {
    this.valueIn(raw, 0, raw.length, plusAsSpace, field);
  }

  /** Inspects text[start, end) as one value (a query parameter in its query string ...). */
  valueIn(text: string, start: number, end: number, plusAsSpace: boolean, field: FieldName): void {
    const atoms = this.prefilter.automaton;
    if (atoms.scanRaw(text, start, end, plusAsSpace) === SCAN.notVerbatim) {
      const normalized = normalizeValue(start === 0 && end === text.length ? text : text.slice(start, end), plusAsSpace);
      atoms.scan(normalized);
      if (this.mayFire()) this.run(normalized, field, null);
      return;
    }
    if (!this.mayFire()) return;
    const lower = text.slice(start, end).toLowerCase();
    this.run(plusAsSpace ? lower.replace(/\+/g, ' ') : lower, field, null);
  }

  /**
   * Inspects a JSON string's content from buf[start] (after its opening quote) when its bytes
   * are the value as the normaliser would leave it (ASCII, no escapes ...): returns the
   * position of its closing quote, or -1 when the caller must decode it and call value().
   */
  jsonString(buf: Buffer, start: number, field: FieldName): number {
    const end = this.prefilter.automaton.scanJsonString(buf, start);
    if (end !== SCAN.notVerbatim && this.mayFire()) this.run(buf.toString('latin1', start, end).toLowerCase(), field, null);
    return end;
  }

  /** Whether some rule may fire on text[start, end) as one value (false: inspecting it fires nothing). */
  mayFireIn(text: string, start: number, end: number): boolean {
    return this.prefilter.automaton.scanRaw(text, start, end, false) === SCAN.notVerbatim || this.mayFire();
  }

  /** Inspects a whole header value whose verdicts are memoised (repeating values: User-Agent, Cookie, Referer). */
  memoValue(raw: string, field: FieldName): void {
    let hits = this.memo.get(raw);
    if (hits === undefined) {
      hits = this.matching(raw);
      if (raw.length <= MEMO_VALUE_MAX) {
        if (this.memo.size >= MEMO_MAX) this.memo.clear();
        this.memo.set(raw, hits);
      }
    }
    for (let k = 0; k < hits.length; k++) {
      const i = hits[k];
      if (this.seen[i] === 1) continue;
      if (this.excluded !== null && this.excluded(this.rules[i].id, field.fieldName())) continue;
      this.fire(i);
    }
  }

  /** Every rule that matches the value (whether fired already or not). */
  private matching(raw: string): readonly number[] {
    const atoms = this.prefilter.automaton;
    let text: string;
    if (atoms.scanRaw(raw, 0, raw.length, false) === SCAN.notVerbatim) {
      text = normalizeValue(raw, false);
      atoms.scan(text);
    } else text = raw.toLowerCase();
    if (!this.mayFire()) return NONE;
    const found: number[] = [];
    this.run(text, null, found);
    return found.length > 0 ? found : NONE;
  }

  /** After a scan: whether some rule is a candidate (an atom of its trigger clause was found). */
  private mayFire(): boolean {
    const atoms = this.prefilter.automaton;
    if (!atoms.fresh) {
      // Nothing found: no candidate, but a rule without a trigger (none today). Taking the
      // value as not plain runs the rules over any text, which holds for plain text too.
      atoms.plain = false;
      return this.always;
    }
    atoms.resolvePlain(); // only now: most values have no candidate
    return (atoms.plain ? atoms.plainCount : atoms.anyCount) > 0 || this.always;
  }

  /**
   * Runs the last scan's candidate rules on the normalised `text`: fires them (field != null),
   * or lists them in `found` (memoValue: every rule that matches, fired before or not).
   */
  private run(text: string, field: FieldName | null, found: number[] | null): void {
    const atoms = this.prefilter.automaton;
    const candidate = atoms.plain ? atoms.plainCandidate : atoms.anyCandidate;
    const always = atoms.plain ? this.prefilter.plainAlways : this.prefilter.anyAlways;
    const confirm = atoms.plain ? this.prefilter.plainConfirm : this.prefilter.anyConfirm;
    const stamp = atoms.fresh ? atoms.stamp : -1;
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) {
      if (found === null && this.seen[i] === 1) continue;
      if (candidate[i] !== stamp && always[i] === 0) continue;
      if (!confirmed(confirm[i], text) || !rules[i].re.test(text)) continue;
      if (found !== null) { found.push(i); continue; }
      if (this.excluded !== null && this.excluded(rules[i].id, field!.fieldName())) continue;
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
