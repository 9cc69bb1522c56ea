// The WAF's prefilter (docs/security-filters.md "Prefilter"), derived from the rules' own
// patterns when they are compiled: which rules could match a value, from one pass over its
// characters, so that most values run no regex at all.
//
// For each rule, from its pattern's syntax tree, a list of clauses: each clause a set of
// literal "atoms" (strings, possibly with the pattern's zero-width assertions \b \B ^ $ at
// fixed places) such that every string the pattern matches contains, for every clause, one of
// its atoms. The derivation (infoOf) only ever weakens a fact when it cannot keep it: a class
// of many characters is a wildcard, a cross product too large gives way to its parts, an
// assertion that cannot be placed is forgotten. The most selective clause (triggerClause) is
// the rule's trigger: a value without any of its atoms cannot match the rule, so the rule's
// regex does not run on it (test/filters/waf-fast-paths.test.ts checks this on the corpora
// and on generated values). Each rule gets a trigger for any text and one for text of PLAIN
// characters only ([a-z0-9 _.,/-]), where each class is cut down to its plain members (\s is
// a space, a quote cannot occur: rules that need one never run on plain text), which is far
// more selective.
//
// The triggers' atoms are found in one pass by an Aho-Corasick automaton over their
// characters (AtomAutomaton); an atom's assertions are checked on the text when it is found.

const MARK_WORD = '\uE000'; // \b
const MARK_NOT_WORD = '\uE001'; // \B
const MARK_START = '\uE002'; // ^
const MARK_END = '\uE003'; // $
const isMark = (c: string) => c >= '\uE000' && c <= '\uE003';
const MARKS = /[\uE000-\uE003]/g;
/** Single-character strings by code, for the enumerations. */
const CHAR = Array.from({ length: 128 }, (_, c) => String.fromCharCode(c));

/** Set sizes past which a fact is weakened (kept small: the automaton and the clause checks stay cheap). */
const CLASS_MAX = 16;
const SET_MAX = 32;
/** An alternation's clause (an atom of each branch's best) may be larger than an exact set. */
const CLAUSE_MAX = 256;

/** The plain characters: what the normaliser leaves alone and most API values are made of. */
export const PLAIN_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789 _.,/-';

// ---- the pattern's syntax tree (the subset regex-safety.ts admits, plus what JS allows) ----

/**
 * A set of UTF-16 code units: its ASCII members exactly; `other`: whether it may have one
 * above 127 other than a Unicode space (\s's members above 127 are all spaces, and no text
 * the rules see has them: TEXT_ALPHABET).
 */
interface CharSet { readonly ascii: boolean[]; other: boolean }

type Node =
  | { readonly kind: 'lit'; readonly text: string }
  | { readonly kind: 'set'; readonly set: CharSet }
  | { readonly kind: 'mark'; readonly mark: string }
  | { readonly kind: 'seq'; readonly items: Node[] }
  | { readonly kind: 'alt'; readonly alts: Node[] }
  | { readonly kind: 'rep'; readonly node: Node; readonly min: number; readonly max: number };

const emptySet = (): CharSet => ({ ascii: new Array<boolean>(128).fill(false), other: false });
function rangeSet(set: CharSet, lo: number, hi: number): CharSet {
  for (let c = lo; c <= Math.min(hi, 127); c++) set.ascii[c] = true;
  if (hi > 127) set.other = true;
  return set;
}
function unionInto(a: CharSet, b: CharSet): void {
  for (let c = 0; c < 128; c++) if (b.ascii[c]) a.ascii[c] = true;
  if (b.other) a.other = true;
}
function complement(s: CharSet): CharSet {
  // Over-approximated: the complement of any class is taken to have non-ASCII members.
  return { ascii: s.ascii.map((b) => !b), other: true };
}
function classEscape(e: string): CharSet | null {
  if (!/^[dDwWsS]$/.test(e)) return null;
  const digits = rangeSet(emptySet(), 48, 57);
  const word = rangeSet(rangeSet(rangeSet(rangeSet(emptySet(), 48, 57), 65, 90), 97, 122), 95, 95);
  const space = rangeSet(rangeSet(emptySet(), 9, 13), 32, 32);
  // Its members above 127 (\u00a0, \u2028, \ufeff ...) are all spaces: `other` stays false.
  switch (e) {
    case 'd': return digits;
    case 'D': return complement(digits);
    case 'w': return word;
    case 'W': return complement(word);
    case 's': return space;
    case 'S': return complement(space);
    default: return null;
  }
}

interface Reader { readonly src: string; i: number }

class Unreadable extends Error {}

function hexAt(r: Reader, n: number): number {
  const h = r.src.slice(r.i, r.i + n);
  if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(h)) throw new Unreadable(`bad escape at ${r.i}`);
  r.i += n;
  return parseInt(h, 16);
}

/** An escape's code unit (after the backslash and its letter were read), or null when `e` is not a character escape. */
function characterEscape(r: Reader, e: string, inClass: boolean): number | null {
  switch (e) {
    case 't': return 9;
    case 'n': return 10;
    case 'v': return 11;
    case 'f': return 12;
    case 'r': return 13;
    case 'x': return hexAt(r, 2);
    case 'u': return hexAt(r, 4);
    case '0': if (r.src[r.i] >= '0' && r.src[r.i] <= '9') throw new Unreadable('octal escape'); return 0;
    case 'b': return inClass ? 8 : null;
    default:
      if (/[A-Za-z0-9]/.test(e)) throw new Unreadable(`unsupported escape \\${e}`);
      return e.charCodeAt(0); // \. \\ \/ \[ ...: the character itself
  }
}

function readPattern(pattern: string): Node {
  const r: Reader = { src: pattern, i: 0 };
  const node = readAlt(r);
  if (r.i !== pattern.length) throw new Unreadable(`unbalanced ) at ${r.i}`);
  return node;
}

function readAlt(r: Reader): Node {
  const alts = [readSeq(r)];
  while (r.src[r.i] === '|') { r.i++; alts.push(readSeq(r)); }
  return alts.length === 1 ? alts[0] : { kind: 'alt', alts };
}

function readSeq(r: Reader): Node {
  const items: Node[] = [];
  // Runs of single characters are one literal (the derivation's work is per node).
  let text = '';
  while (r.i < r.src.length && r.src[r.i] !== '|' && r.src[r.i] !== ')') {
    const atom = readAtom(r);
    const q = readQuantifier(r);
    const single = q === null ? singleChar(atom) : null;
    if (single !== null) { text += single; continue; }
    if (text !== '') { items.push({ kind: 'lit', text }); text = ''; }
    items.push(q === null ? atom : { kind: 'rep', node: atom, min: q[0], max: q[1] });
  }
  if (text !== '') items.push({ kind: 'lit', text });
  return items.length === 1 ? items[0] : { kind: 'seq', items };
}

/** The character of a one-character set, else null. */
function singleChar(node: Node): string | null {
  if (node.kind !== 'set' || node.set.other) return null;
  const at = node.set.ascii.indexOf(true);
  return at >= 0 && node.set.ascii.indexOf(true, at + 1) < 0 ? CHAR[at] : null;
}

function readQuantifier(r: Reader): [number, number] | null {
  const c = r.src[r.i];
  let q: [number, number] | null = null;
  if (c === '*') { r.i++; q = [0, Infinity]; }
  else if (c === '+') { r.i++; q = [1, Infinity]; }
  else if (c === '?') { r.i++; q = [0, 1]; }
  else if (c === '{') {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(r.src.slice(r.i));
    if (m === null) return null; // a literal { (Annex B)
    r.i += m[0].length;
    q = [Number(m[1]), m[2] === undefined ? Number(m[1]) : m[3] === '' ? Infinity : Number(m[3])];
  }
  if (q !== null && r.src[r.i] === '?') r.i++; // lazy: the same strings
  return q;
}

function readAtom(r: Reader): Node {
  const c = r.src[r.i++];
  if (c === '(') {
    if (r.src[r.i] === '?') {
      if (r.src[r.i + 1] !== ':') throw new Unreadable('lookaround or named group');
      r.i += 2;
    }
    const inner = readAlt(r);
    if (r.src[r.i++] !== ')') throw new Unreadable('unclosed group');
    return inner;
  }
  if (c === '[') return { kind: 'set', set: readClass(r) };
  if (c === '.') return { kind: 'set', set: complement(rangeSet(rangeSet(emptySet(), 10, 10), 13, 13)) };
  if (c === '^') return { kind: 'mark', mark: MARK_START };
  if (c === '$') return { kind: 'mark', mark: MARK_END };
  if (c === '*' || c === '+' || c === '?') throw new Unreadable(`quantifier without an atom at ${r.i - 1}`);
  if (c === '\\') {
    const e = r.src[r.i++];
    if (e === undefined) throw new Unreadable('trailing backslash');
    if (e === 'b') return { kind: 'mark', mark: MARK_WORD };
    if (e === 'B') return { kind: 'mark', mark: MARK_NOT_WORD };
    const set = classEscape(e);
    if (set !== null) return { kind: 'set', set };
    return { kind: 'set', set: rangeSet(emptySet(), ...twice(characterEscape(r, e, false)!)) };
  }
  return { kind: 'set', set: rangeSet(emptySet(), ...twice(c.charCodeAt(0))) };
}

const twice = (n: number): [number, number] => [n, n];

function readClass(r: Reader): CharSet {
  const negated = r.src[r.i] === '^';
  if (negated) r.i++;
  const set = emptySet();
  // One member: a code unit, or a class escape's set.
  const member = (): number | CharSet => {
    const c = r.src[r.i++];
    if (c === undefined) throw new Unreadable('unclosed character class');
    if (c !== '\\') return c.charCodeAt(0);
    const e = r.src[r.i++];
    return classEscape(e) ?? characterEscape(r, e, true)!;
  };
  while (r.src[r.i] !== ']') {
    const lo = member();
    if (typeof lo !== 'number') { unionInto(set, lo); continue; }
    if (r.src[r.i] === '-' && r.src[r.i + 1] !== ']' && r.i + 1 < r.src.length) {
      r.i++;
      const hi = member();
      if (typeof hi !== 'number') { rangeSet(set, lo, lo); rangeSet(set, 45, 45); unionInto(set, hi); continue; } // a-\d: a, -, digits
      if (hi < lo) throw new Unreadable('range out of order');
      rangeSet(set, lo, hi);
      continue;
    }
    rangeSet(set, lo, lo);
  }
  r.i++;
  return negated ? complement(set) : set;
}

// ---- what every match contains --------------------------------------------------------------

/**
 * Facts about the strings a node matches (assertions as MARK_* characters in them):
 * `exact` all of them (when few), else every one starts with a member of `prefix`, ends with a
 * member of `suffix`, and contains a member of each of `clauses`. `exact` [] is "never matches".
 */
interface Info {
  readonly exact: readonly string[] | null;
  readonly prefix: readonly string[];
  readonly suffix: readonly string[];
  readonly clauses: readonly (readonly string[])[];
}

const NEVER: Info = { exact: [], prefix: [], suffix: [], clauses: [] };
const EMPTY: Info = { exact: [''], prefix: [''], suffix: [''], clauses: [] };
const exactly = (strings: readonly string[]): Info => ({ exact: strings, prefix: strings, suffix: strings, clauses: [] });
const isNever = (x: Info) => x.exact !== null && x.exact.length === 0;
const clausesOf = (x: Info): readonly (readonly string[])[] => (x.exact !== null ? [x.exact] : x.clauses);

function cross(a: readonly string[], b: readonly string[]): string[] | null {
  if (a.length * b.length > SET_MAX) return null;
  const out = new Set<string>();
  for (const x of a) for (const y of b) out.add(x + y);
  return [...out];
}

function union(sets: readonly (readonly string[])[], max = SET_MAX): string[] | null {
  const out = new Set<string>();
  for (const s of sets) for (const x of s) out.add(x);
  return out.size > max ? null : [...out];
}

function concat(a: Info, b: Info): Info {
  if (isNever(a) || isNever(b)) return NEVER;
  if (a.exact !== null && b.exact !== null) {
    const both = cross(a.exact, b.exact);
    if (both !== null) return exactly(both);
  }
  const prefix = a.exact !== null ? cross(a.exact, b.prefix) ?? a.exact : a.prefix;
  const suffix = b.exact !== null ? cross(a.suffix, b.exact) ?? b.exact : b.suffix;
  const clauses = [...clausesOf(a), ...clausesOf(b)];
  const junction = cross(a.suffix, b.prefix);
  if (junction !== null) clauses.push(junction);
  return { exact: null, prefix, suffix, clauses };
}

function alternation(branches: Info[]): Info {
  const live = branches.filter((x) => !isNever(x));
  if (live.length === 0) return NEVER;
  if (live.length === 1) return live[0];
  if (live.every((x) => x.exact !== null)) {
    const all = union(live.map((x) => x.exact!));
    if (all !== null) return exactly(all);
  }
  const prefix = union(live.map((x) => x.prefix)) ?? [''];
  const suffix = union(live.map((x) => x.suffix)) ?? [''];
  // One clause: each branch's best one, joined (a match is a match of some branch).
  const best = live.map((x) => bestClause(clausesOf(x)));
  const joined = best.every((c) => c !== null) ? union(best as string[][], CLAUSE_MAX) : null;
  return { exact: null, prefix, suffix, clauses: joined === null ? [] : [joined] };
}

function repetition(x: Info, min: number, max: number): Info {
  if (max === 0) return EMPTY;
  if (isNever(x)) return min === 0 ? EMPTY : NEVER;
  if (x.exact !== null && max <= SET_MAX) {
    let power: string[] | null = [''];
    const all = new Set<string>(min === 0 ? [''] : []);
    for (let k = 1; k <= max && power !== null; k++) {
      power = cross(power, x.exact);
      if (power !== null && k >= min) for (const s of power) all.add(s);
    }
    if (power !== null && all.size <= SET_MAX) return exactly([...all]);
  }
  const inner = x.exact !== null ? { exact: null, prefix: x.exact, suffix: x.exact, clauses: [x.exact] } : x;
  if (min >= 1) return { exact: null, prefix: inner.prefix, suffix: inner.suffix, clauses: inner.clauses };
  return { exact: null, prefix: ['', ...inner.prefix], suffix: ['', ...inner.suffix], clauses: [] };
}

function infoOf(node: Node, alphabet: boolean[]): Info {
  switch (node.kind) {
    case 'mark': return exactly([node.mark]);
    case 'lit': {
      for (let i = 0; i < node.text.length; i++) if (!alphabet[node.text.charCodeAt(i)]) return NEVER;
      return exactly([node.text]);
    }
    case 'set': {
      const chars: string[] = [];
      for (let c = 0; c < 128; c++) if (node.set.ascii[c] && alphabet[c]) chars.push(CHAR[c]);
      const large = alphabet === TEXT_ALPHABET && node.set.other;
      if (chars.length === 0 && !large) return NEVER;
      if (large || chars.length > CLASS_MAX) return { exact: null, prefix: [''], suffix: [''], clauses: [] };
      return exactly(chars);
    }
    case 'seq': return node.items.reduce((acc, item) => concat(acc, infoOf(item, alphabet)), EMPTY);
    case 'alt': return alternation(node.alts.map((a) => infoOf(a, alphabet)));
    case 'rep': return repetition(infoOf(node.node, alphabet), node.min, node.max);
  }
}

const literalLength = (atom: string) => atom.replace(MARKS, '').length;

/** Characters an atom keeps (a clause's atom may be cut to its start: the start is in every text the atom is in). */
const ATOM_MAX = 6;

/** An atom's first ATOM_MAX characters, with the assertions among and right after them; runs of spaces at its ends kept to one (also a part of it). */
function cut(whole: string): string {
  const atom = whole.replace(/^ {2,}/, ' ').replace(/ {2,}$/, ' ');
  let n = 0;
  for (let i = 0; i < atom.length; i++) {
    if (isMark(atom[i])) continue;
    if (++n > ATOM_MAX) return atom.slice(0, i);
  }
  return atom;
}

/** A clause without a useless atom: atoms cut, deduplicated, an atom containing another dropped; null when some atom has no character (always there). */
function tidyClause(clause: readonly string[]): string[] | null {
  const atoms = [...new Set(clause.map(cut))];
  if (atoms.some((a) => literalLength(a) === 0)) return null;
  return atoms.filter((a) => !atoms.some((b) => b !== a && a.includes(b))).sort();
}

/**
 * How likely benign text is to have one of a clause's atoms, roughly: per atom 1/10 per
 * letter, digit or space and 1/500 per other character, multiplied, but no less than 1e-5
 * (five letters are as good as ten, and shorter atoms keep the automaton small); summed.
 */
function clauseChance(clause: readonly string[]): number {
  let sum = 0;
  for (const atom of clause) {
    let p = 1;
    for (const ch of atom.replace(MARKS, '')) p *= /[a-z0-9 ]/.test(ch) ? 0.1 : 0.002;
    sum += Math.max(p, 1e-5);
  }
  return sum;
}

/** The most selective clause (clauseChance, then the fewest characters); null when none is usable. */
function bestClause(clauses: readonly (readonly string[])[]): string[] | null {
  let best: string[] | null = null;
  let bestKey = [Infinity, Infinity];
  for (const raw of clauses) {
    const c = tidyClause(raw);
    if (c === null) continue;
    const key = [clauseChance(c), c.join('').length];
    if (key[0] < bestKey[0] || (key[0] === bestKey[0] && key[1] < bestKey[1])) { best = c; bestKey = key; }
  }
  return best;
}

/** Why the prefilter cannot read `pattern` (a construct outside the rules' subset), or '' when it can. */
export function unreadableReason(pattern: string): string {
  try {
    readPattern(pattern);
    return '';
  } catch (err) {
    if (err instanceof Unreadable) return err.message;
    throw err;
  }
}

/** A rule's clauses over text of `alphabet`'s characters (null: any text the rules see, TEXT_ALPHABET): null when no such string matches; [] when nothing is known. */
export function clausesFor(pattern: string, alphabet: string | null): string[][] | null {
  return clausesOfTree(readPattern(pattern), alphabet);
}

/**
 * What any text the rules see is made of: every character but the whitespace other than a
 * space (its ASCII members here; above 127, a class's `other` members). The normaliser turns
 * each whitespace run into one space (normalize.ts), and a raw value is taken as it is only
 * without any (scanRaw): so \s is a space, and [\s(] two characters, not a wildcard.
 * test/filters/waf-fast-paths.test.ts checks the normaliser.
 */
const TEXT_ALPHABET = CHAR.map((ch) => !(ch >= '\t' && ch <= '\r'));

function clausesOfTree(tree: Node, alphabet: string | null): string[][] | null {
  const letters = alphabet === null ? TEXT_ALPHABET : CHAR.map((ch) => alphabet.includes(ch));
  const info = infoOf(tree, letters);
  if (isNever(info)) return null;
  const out = new Map<string, string[]>();
  for (const raw of [...clausesOf(info), info.prefix, info.suffix]) {
    const c = tidyClause(raw);
    if (c !== null) out.set(c.join('\0'), c);
  }
  // A clause that a stronger one implies (each of its atoms contains one of the weaker's: {select} then {sel}) says nothing more.
  const clauses = [...out.values()];
  const implied = (weak: string[], strong: string[]) => weak !== strong && strong.every((a) => weak.some((b) => a.includes(b)));
  const kept = clauses.filter((weak, i) => !clauses.some((strong, j) => implied(weak, strong) && (!implied(strong, weak) || j < i)));
  // Longest shortest atom first (a stable order for the tests and for reading).
  return kept.sort((a, b) => Math.min(...b.map(literalLength)) - Math.min(...a.map(literalLength)) || a.length - b.length);
}

// ---- finding the atoms ---------------------------------------------------------------------

/** Atom anchors, as the automaton checks them: kind per MARK, at an offset in the atom's characters. */
const ANCHOR_WORD = 0, ANCHOR_NOT_WORD = 1, ANCHOR_START = 2, ANCHOR_END = 3;

/** What one pass over a value found. */
export const SCAN = {
  /** Raw mode: the value is not as the normaliser would leave it (normalise it, then scan that). */
  notVerbatim: -1,
} as const;

const isWordCode = (c: number) => (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95;

const plainCode = new Uint8Array(128);
for (const ch of PLAIN_CHARS) plainCode[ch.charCodeAt(0)] = 1;
/** plainCode with capitals as their lower case (raw scans fold them). */
const plainFolded = Uint8Array.from(plainCode, (p, c) => (c >= 65 && c <= 90 ? plainCode[c + 32] : p));

/** Sequences the normaliser changes (two spaces, a comment's start; a + read as a space is a space): a raw scan that finds one stops. */
const TIDY_ATOMS: readonly string[] = ['  ', '/*', '<!'];

/** A raw character the normaliser changes a value for: % & \ (decoding), a control character (or a whitespace other than a space), a non-ASCII one. */
function needsNormalising(c: number): boolean {
  return c < 32 || c >= 127 || c === 37 || c === 38 || c === 92;
}

const QUOTE = 0x22;
const PLUS = 0x2b;
/** A `step` entry: stop and look at the character (needsNormalising, a quote, a +). */
const STOP = -1;

/**
 * The trigger atoms of a rule set in one automaton (Aho-Corasick over the atoms' characters),
 * with their anchors. Each rule has one trigger clause per kind of text (any, plain:
 * Prefilter); a scan marks a rule a candidate when it finds an atom of its trigger clause (per
 * scan stamps: nothing to clear), and only candidates run their regex, which is the exact test.
 *
 * The hot loops read one table, `step`, indexed by state x 256 + the character itself
 * (capitals folded to their lower case), whose entry is the next state x 256, or -(that) - 2
 * when atoms end there, or STOP for the few characters that need a look: the ones the
 * normaliser changes a value for, the quote (a JSON string's end) and + (a space in a query).
 * Whether a value is plain is needed only when some rule is a candidate (resolvePlain).
 */
export class AtomAutomaton {
  readonly atoms: readonly string[];
  /** The automaton by symbol (a character some atom has, or 0): for the STOP characters and for building `step`. */
  private readonly symbols: number;
  private readonly exactSym = new Int32Array(128);
  private readonly delta: Int32Array;
  private readonly step: Int32Array;
  /** Per state: the step on a quote and on a + as themselves, and on END (`step` entries). */
  private readonly quoteStep: Int32Array;
  private readonly plusStep: Int32Array;
  private readonly endStep: Int32Array;
  /** The state every scan starts in: after BEGIN (x 256). */
  private readonly start: number;
  /** Per state: its atoms, outList[outStart[s] .. outStart[s + 1]). */
  private readonly outStart: Int32Array;
  private readonly outList: Int32Array;
  private readonly litLength: Int32Array;
  /** Per atom: anchors as pairs (offset, kind) in anchorList[anchorStart[a] .. anchorStart[a + 1]). */
  private readonly anchorStart: Int32Array;
  private readonly anchorList: Int32Array;
  /** Per atom: the rules it triggers, over any text and over plain text (flat lists as above). */
  private readonly anyStart: Int32Array;
  private readonly anyList: Int32Array;
  private readonly plainStart: Int32Array;
  private readonly plainList: Int32Array;
  private readonly found: Int32Array;
  private readonly tidyAtom: Uint8Array;
  /** Per rule: the stamp of the last scan that made it a candidate, over any text / over plain text. */
  readonly anyCandidate: Int32Array;
  readonly plainCandidate: Int32Array;
  stamp = 0;
  anyCount = 0;
  plainCount = 0;
  /** Whether the last scan found a TIDY_ATOMS sequence (a raw scan stops there). */
  tidy = false;
  /** Whether the last scan's text is all plain characters: set by resolvePlain(). */
  plain = false;
  // The last scan's text, for resolvePlain().
  private lastText = '';
  private lastBuf: Uint8Array | null = null;
  private lastStart = 0;
  private lastEnd = 0;
  private lastPlus = false;
  private lastFold = false;
  /** Whether the current scan found an atom (and has its own stamp): else no rule is its candidate, whatever the arrays hold. */
  fresh = false;

  constructor(atoms: readonly string[], anyRules: readonly number[][], plainRules: readonly number[][], ruleCount: number) {
    this.atoms = atoms;
    this.tidyAtom = Uint8Array.from(atoms, (a) => (TIDY_ATOMS.includes(a) ? 1 : 0));
    const literals = atoms.map((a) => a.replace(MARKS, ''));
    const chars = [...new Set(literals.join(''))].sort();
    // Symbol 0: a character no atom has; then the atoms' characters; then BEGIN and END, which
    // no character is: a scan starts in the state after BEGIN and ends by taking END, so an
    // atom that starts with ^ (ends with $) is a path from BEGIN (to END), found only there.
    this.symbols = chars.length + 3;
    const BEGIN = chars.length + 1, END = chars.length + 2;
    for (let i = 0; i < chars.length; i++) this.exactSym[chars[i].charCodeAt(0)] = i + 1;
    const [leading, trailing] = [/^[\uE000-\uE003]*/, /[\uE000-\uE003]*$/];
    const begins = atoms.map((a) => leading.exec(a)![0].includes(MARK_START));
    const ends = atoms.map((a) => trailing.exec(a)![0].includes(MARK_END));
    // The trie, then failure links breadth first, then the full transition table.
    const next: Map<number, number>[] = [new Map()];
    const out: number[][] = [[]];
    literals.forEach((lit, a) => {
      let st = 0;
      const path = [...(begins[a] ? [BEGIN] : []), ...[...lit].map((ch) => this.exactSym[ch.charCodeAt(0)]), ...(ends[a] ? [END] : [])];
      for (const sym of path) {
        let t = next[st].get(sym);
        if (t === undefined) { t = next.length; next.push(new Map()); out.push([]); next[st].set(sym, t); }
        st = t;
      }
      out[st].push(a);
    });
    const states = next.length;
    const n = this.symbols;
    const goto = new Int32Array(states * n);
    const fail = new Int32Array(states);
    const queue: number[] = [];
    for (let sym = 0; sym < n; sym++) {
      const t = next[0].get(sym) ?? 0;
      goto[sym] = t;
      if (t !== 0) queue.push(t);
    }
    for (let q = 0; q < queue.length; q++) {
      const st = queue[q];
      out[st].push(...out[fail[st]]);
      for (let sym = 0; sym < n; sym++) {
        const t = next[st].get(sym);
        if (t === undefined) { goto[st * n + sym] = goto[fail[st] * n + sym]; continue; }
        fail[t] = goto[fail[st] * n + sym];
        goto[st * n + sym] = t;
        queue.push(t);
      }
    }
    this.delta = goto;
    const entry = (t: number) => (out[t].length > 0 ? -(t << 8) - 2 : t << 8);
    this.step = new Int32Array(states * 256);
    this.quoteStep = new Int32Array(states);
    this.plusStep = new Int32Array(states);
    this.endStep = new Int32Array(states);
    this.start = goto[BEGIN] << 8;
    for (let st = 0; st < states; st++) {
      for (let c = 0; c < 256; c++) {
        const lower = c >= 65 && c <= 90 ? c + 32 : c;
        this.step[(st << 8) | c] = needsNormalising(c) || c === QUOTE || c === PLUS ? STOP : entry(goto[st * n + this.exactSym[lower]]);
      }
      this.quoteStep[st] = entry(goto[st * n + this.exactSym[QUOTE]]);
      this.plusStep[st] = entry(goto[st * n + this.exactSym[PLUS]]);
      this.endStep[st] = entry(goto[st * n + END]);
    }
    const flat = (lists: readonly (readonly number[])[]): [Int32Array, Int32Array] => {
      const start = new Int32Array(lists.length + 1);
      for (let i = 0; i < lists.length; i++) start[i + 1] = start[i] + lists[i].length;
      return [start, Int32Array.from(lists.flat())];
    };
    [this.outStart, this.outList] = flat(out);
    this.litLength = Int32Array.from(literals, (l) => l.length);
    [this.anchorStart, this.anchorList] = flat(atoms.map((a, index) => {
      const pairs: number[] = [];
      let offset = 0;
      // The ^ and $ at the ends are BEGIN and END in the trie: no check left for them.
      const inner = a.replace(leading, (m) => (begins[index] ? m.replace(MARK_START, '') : m)).replace(trailing, (m) => m.replace(MARK_END, ''));
      for (const ch of inner) {
        if (!isMark(ch)) { offset++; continue; }
        pairs.push(offset, ch === MARK_WORD ? ANCHOR_WORD : ch === MARK_NOT_WORD ? ANCHOR_NOT_WORD : ch === MARK_START ? ANCHOR_START : ANCHOR_END);
      }
      return pairs;
    }));
    [this.anyStart, this.anyList] = flat(anyRules);
    [this.plainStart, this.plainList] = flat(plainRules);
    this.found = new Int32Array(atoms.length);
    this.anyCandidate = new Int32Array(ruleCount);
    this.plainCandidate = new Int32Array(ruleCount);
    this.scanRaw = this.makeScanRaw();
    this.scanJsonString = this.makeScanJsonString();
  }

  /** A scan's start: nothing found yet (the stamp is renewed at its first find: most scans find nothing). */
  private begin(): void {
    this.anyCount = 0;
    this.plainCount = 0;
    this.tidy = false;
    this.fresh = false;
  }

  /** A fresh stamp for the scan that found something: nothing to clear (a wrap after 2^31 scans restarts the count). */
  private renew(): void {
    this.fresh = true;
    if (++this.stamp === 0x7fffffff) {
      this.found.fill(0); this.anyCandidate.fill(0); this.plainCandidate.fill(0);
      this.stamp = 1;
    }
  }

  /** The step from state s (x 256) on character c as it is, by the symbol table (`step` folds capitals and stops at some). */
  private exactStep(s: number, c: number): number {
    const t = this.delta[(s >> 8) * this.symbols + (c < 128 ? this.exactSym[c] : 0)];
    return this.outStart[t] !== this.outStart[t + 1] ? -(t << 8) - 2 : t << 8;
  }

  /** The trigger atoms of the normalised `text`. */
  scan(text: string): void {
    this.begin();
    this.lastText = text; this.lastBuf = null; this.lastStart = 0; this.lastEnd = text.length; this.lastPlus = false; this.lastFold = false;
    const step = this.step;
    let s = this.start;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      // Characters as they are: not folded (the normaliser lowered ASCII capitals), none stops.
      let e = c < 256 && (c < 65 || c > 90) ? step[s | c] : STOP;
      if (e === STOP) e = this.exactStep(s, c);
      if (e < 0) { s = -e - 2; this.hitString(text, 0, text.length, s, i + 1); } else s = e;
    }
    const e = this.endStep[s >> 8];
    if (e < 0) this.hitString(text, 0, text.length, -e - 2, text.length);
  }

  /**
   * The trigger atoms of raw text[start, end) as the normaliser would leave it: capitals
   * lowered, and with `plusAsSpace` each + a space. SCAN.notVerbatim (stopping early) when the
   * normaliser would change more than that (normalise it and scan() that); else 0.
   */
  readonly scanRaw: (text: string, start: number, end: number, plusAsSpace: boolean) => number;

  /**
   * scanRaw over a JSON string's content, from `start` (after its opening quote) to its closing
   * quote: returns the quote's position, or SCAN.notVerbatim (an escape, a control character,
   * a byte over 127, ... or no closing quote) for the caller to decode the string.
   */
  readonly scanJsonString: (buf: Uint8Array, start: number) => number;

  // The two scans are closures over this automaton's tables, each a loop that only reads the
  // table (hot: V8 compiles a call-free loop over a constant table into far better code) and
  // returns at the first entry < 0 (a STOP character, or atoms found), which the caller
  // handles before it resumes the loop. Per call: the loop's state in `hotState`/`hotEntry`.

  private makeScanRaw(): AtomAutomaton['scanRaw'] {
    const step = this.step, quoteStep = this.quoteStep, plusStep = this.plusStep, endStep = this.endStep, start0 = this.start;
    let hotState = 0, hotEntry = 0;
    const hot = (text: string, i: number, s: number, end: number): number => {
      for (; i < end; i++) {
        const c = text.charCodeAt(i);
        const e = c < 256 ? step[s | c] : STOP;
        if (e < 0) { hotState = s; hotEntry = e; return i; }
        s = e;
      }
      hotState = s;
      return i;
    };
    return (text, start, end, plusAsSpace) => {
      this.begin();
      let i = hot(text, start, start0, end);
      while (i < end) {
        const s = hotState;
        let e = hotEntry;
        if (e === STOP) {
          const c = text.charCodeAt(i);
          if (c === QUOTE) e = quoteStep[s >> 8];
          else if (c === PLUS) e = plusAsSpace ? step[s | 32] : plusStep[s >> 8];
          else return SCAN.notVerbatim;
        }
        if (e < 0) {
          this.hitString(text, start, end, -e - 2, i + 1);
          if (this.tidy) return SCAN.notVerbatim;
          e = -e - 2;
        }
        i = hot(text, i + 1, e, end);
      }
      const last = endStep[hotState >> 8];
      if (last < 0) this.hitString(text, start, end, -last - 2, end);
      if (this.fresh) { this.lastText = text; this.lastBuf = null; this.lastStart = start; this.lastEnd = end; this.lastPlus = plusAsSpace; this.lastFold = true; }
      return 0;
    };
  }

  private makeScanJsonString(): AtomAutomaton['scanJsonString'] {
    const step = this.step, plusStep = this.plusStep, endStep = this.endStep, start0 = this.start;
    let hotState = 0, hotEntry = 0;
    const hot = (buf: Uint8Array, i: number, s: number, len: number): number => {
      for (; i < len; i++) {
        const e = step[s | buf[i]];
        if (e < 0) { hotState = s; hotEntry = e; return i; }
        s = e;
      }
      return i;
    };
    return (buf, start) => {
      this.begin();
      const len = buf.length;
      let i = hot(buf, start, start0, len);
      while (i < len) {
        const s = hotState;
        let e = hotEntry;
        if (e === STOP) {
          const c = buf[i];
          if (c === QUOTE) {
            const last = endStep[s >> 8];
            if (last < 0) this.hitBytes(buf, start, -last - 2, i);
            if (this.fresh) { this.lastBuf = buf; this.lastStart = start; this.lastEnd = i; this.lastPlus = false; this.lastFold = true; }
            return i;
          }
          if (c !== PLUS) return SCAN.notVerbatim;
          e = plusStep[s >> 8];
        }
        if (e < 0) {
          this.hitBytes(buf, start, -e - 2, i + 1);
          if (this.tidy) return SCAN.notVerbatim;
          e = -e - 2;
        }
        i = hot(buf, i + 1, e, len);
      }
      return SCAN.notVerbatim;
    };
  }

  /** Whether `rule` is a candidate of the last scan (after resolvePlain()). */
  isCandidate(rule: number): boolean {
    return this.fresh && (this.plain ? this.plainCandidate : this.anyCandidate)[rule] === this.stamp;
  }

  /** Sets `plain` for the last scan's text (its characters as the scan read them: capitals folded, + a space when it was one). */
  resolvePlain(): void {
    let plain = true;
    const from = this.lastStart, to = this.lastEnd;
    const buf = this.lastBuf;
    const table = this.lastFold ? plainFolded : plainCode;
    for (let i = from; i < to && plain; i++) {
      const c = buf !== null ? buf[i] : this.lastText.charCodeAt(i);
      plain = c < 128 && (table[c] === 1 || (c === PLUS && this.lastPlus));
    }
    this.plain = plain;
  }

  private hitString(text: string, start: number, end: number, at: number, hitEnd: number): void {
    const state = at >> 8;
    for (let k = this.outStart[state]; k < this.outStart[state + 1]; k++) {
      const a = this.outList[k];
      if (this.fresh && this.found[a] === this.stamp) continue;
      const from = hitEnd - this.litLength[a];
      let ok = true;
      for (let j = this.anchorStart[a]; j < this.anchorStart[a + 1] && ok; j += 2) {
        const p = from + this.anchorList[j];
        const kind = this.anchorList[j + 1];
        if (kind === ANCHOR_START) ok = p === start;
        else if (kind === ANCHOR_END) ok = p === end;
        else {
          const boundary = (p > start && isWordCode(text.charCodeAt(p - 1))) !== (p < end && isWordCode(text.charCodeAt(p)));
          ok = kind === ANCHOR_WORD ? boundary : !boundary;
        }
      }
      if (ok) this.mark(a);
    }
  }

  /** As hitString, in a JSON string whose end is not known yet: a position is its end when the closing quote is there. */
  private hitBytes(buf: Uint8Array, start: number, at: number, hitEnd: number): void {
    const state = at >> 8;
    for (let k = this.outStart[state]; k < this.outStart[state + 1]; k++) {
      const a = this.outList[k];
      if (this.fresh && this.found[a] === this.stamp) continue;
      const from = hitEnd - this.litLength[a];
      let ok = true;
      for (let j = this.anchorStart[a]; j < this.anchorStart[a + 1] && ok; j += 2) {
        const p = from + this.anchorList[j];
        const kind = this.anchorList[j + 1];
        if (kind === ANCHOR_START) ok = p === start;
        else if (kind === ANCHOR_END) ok = buf[p] === QUOTE;
        else {
          const boundary = (p > start && isWordCode(buf[p - 1])) !== (p < buf.length && isWordCode(buf[p]));
          ok = kind === ANCHOR_WORD ? boundary : !boundary;
        }
      }
      if (ok) this.mark(a);
    }
  }

  private mark(a: number): void {
    if (!this.fresh) this.renew();
    const stamp = this.stamp;
    this.found[a] = stamp;
    if (this.tidyAtom[a] === 1) this.tidy = true;
    for (let k = this.anyStart[a]; k < this.anyStart[a + 1]; k++) {
      const r = this.anyList[k];
      if (this.anyCandidate[r] !== stamp) { this.anyCandidate[r] = stamp; this.anyCount++; }
    }
    for (let k = this.plainStart[a]; k < this.plainStart[a + 1]; k++) {
      const r = this.plainList[k];
      if (this.plainCandidate[r] !== stamp) { this.plainCandidate[r] = stamp; this.plainCount++; }
    }
  }
}

/** Every rule's trigger clause over any text and over plain text (null: the rule cannot match such text; [] nothing known: always a candidate). */
export interface Prefilter {
  readonly automaton: AtomAutomaton;
  readonly anyTrigger: readonly (readonly string[] | null)[];
  readonly plainTrigger: readonly (readonly string[] | null)[];
  /**
   * Per rule, over any text / over plain text: a second clause as plain literals (its
   * assertions dropped: still in every match), checked with includes() on a candidate's text
   * before its regex runs; null when the rule has none of at most CONFIRM_MAX atoms.
   */
  readonly anyConfirm: readonly (readonly string[] | null)[];
  readonly plainConfirm: readonly (readonly string[] | null)[];
  /** Per rule: 1 when it is a candidate whatever the scan finds (no clause is known for it), over any text / over plain text. */
  readonly anyAlways: Uint8Array;
  readonly plainAlways: Uint8Array;
}

/** A confirm clause's most atoms (each is an includes() call). */
const CONFIRM_MAX = 4;

export function buildPrefilter(patterns: readonly string[]): Prefilter {
  const trees = patterns.map(readPattern);
  const pick = (alphabet: string | null) => trees.map((t) => {
    const clauses = clausesOfTree(t, alphabet);
    if (clauses === null) return { trigger: null, confirm: null };
    const trigger = bestClause(clauses);
    if (trigger === null) return { trigger: [], confirm: null };
    const others = clauses.map(tidyClause).filter((c): c is string[] => c !== null && c.join('\0') !== trigger.join('\0') && c.length <= CONFIRM_MAX);
    const confirm = bestClause(others);
    return { trigger, confirm: confirm === null ? null : [...new Set(confirm.map((a) => a.replace(MARKS, '')))] };
  });
  const any = pick(null);
  const plain = pick(PLAIN_CHARS);
  const anyTrigger = any.map((p) => p.trigger);
  const plainTrigger = plain.map((p) => p.trigger);
  const ids = new Map<string, number>();
  const anyRules: number[][] = [];
  const plainRules: number[][] = [];
  const add = (triggers: readonly (readonly string[] | null)[], into: number[][]) => triggers.forEach((clause, rule) => {
    for (const atom of clause ?? []) {
      let id = ids.get(atom);
      if (id === undefined) { id = ids.size; ids.set(atom, id); anyRules.push([]); plainRules.push([]); }
      into[id].push(rule);
    }
  });
  add(anyTrigger, anyRules);
  add(plainTrigger, plainRules);
  for (const atom of TIDY_ATOMS) if (!ids.has(atom)) { ids.set(atom, ids.size); anyRules.push([]); plainRules.push([]); }
  return {
    automaton: new AtomAutomaton([...ids.keys()], anyRules, plainRules, patterns.length),
    anyTrigger,
    plainTrigger,
    anyConfirm: any.map((p) => p.confirm),
    plainConfirm: plain.map((p) => p.confirm),
    anyAlways: Uint8Array.from(anyTrigger, (c) => (c !== null && c.length === 0 ? 1 : 0)),
    plainAlways: Uint8Array.from(plainTrigger, (c) => (c !== null && c.length === 0 ? 1 : 0)),
  };
}

/** For tests and docs: an atom as text (assertions written as in the pattern). */
export function atomText(atom: string): string {
  return atom.replace(/\uE000/g, '\\b').replace(/\uE001/g, '\\B').replace(/\uE002/g, '^').replace(/\uE003/g, '$');
}
