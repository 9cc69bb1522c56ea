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

/** The plain characters: what the normaliser leaves alone and most API values are made of. */
export const PLAIN_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789 _.,/-';

// ---- the pattern's syntax tree (the subset regex-safety.ts admits, plus what JS allows) ----

/** A set of UTF-16 code units: its ASCII members exactly; whether it has any above 127. */
interface CharSet { readonly ascii: boolean[]; nonAscii: boolean }

type Node =
  | { readonly kind: 'lit'; readonly text: string }
  | { readonly kind: 'set'; readonly set: CharSet }
  | { readonly kind: 'mark'; readonly mark: string }
  | { readonly kind: 'seq'; readonly items: Node[] }
  | { readonly kind: 'alt'; readonly alts: Node[] }
  | { readonly kind: 'rep'; readonly node: Node; readonly min: number; readonly max: number };

const emptySet = (): CharSet => ({ ascii: new Array<boolean>(128).fill(false), nonAscii: false });
function rangeSet(set: CharSet, lo: number, hi: number): CharSet {
  for (let c = lo; c <= Math.min(hi, 127); c++) set.ascii[c] = true;
  if (hi > 127) set.nonAscii = true;
  return set;
}
function unionInto(a: CharSet, b: CharSet): void {
  for (let c = 0; c < 128; c++) if (b.ascii[c]) a.ascii[c] = true;
  if (b.nonAscii) a.nonAscii = true;
}
function complement(s: CharSet): CharSet {
  // Over-approximated: the complement of any class is taken to have non-ASCII members.
  return { ascii: s.ascii.map((b) => !b), nonAscii: true };
}
function classEscape(e: string): CharSet | null {
  if (!/^[dDwWsS]$/.test(e)) return null;
  const digits = rangeSet(emptySet(), 48, 57);
  const word = rangeSet(rangeSet(rangeSet(rangeSet(emptySet(), 48, 57), 65, 90), 97, 122), 95, 95);
  const space = rangeSet(rangeSet(emptySet(), 9, 13), 32, 32);
  space.nonAscii = true; // \u00a0, \u2028, \ufeff ...
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
  if (node.kind !== 'set' || node.set.nonAscii) return null;
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

function union(sets: readonly (readonly string[])[]): string[] | null {
  const out = new Set<string>();
  for (const s of sets) for (const x of s) out.add(x);
  return out.size > SET_MAX ? null : [...out];
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
  const joined = best.every((c) => c !== null) ? union(best as string[][]) : null;
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

function infoOf(node: Node, alphabet: boolean[] | null): Info {
  switch (node.kind) {
    case 'mark': return exactly([node.mark]);
    case 'lit': {
      if (alphabet !== null) for (let i = 0; i < node.text.length; i++) if (!alphabet[node.text.charCodeAt(i)]) return NEVER;
      return exactly([node.text]);
    }
    case 'set': {
      const chars: string[] = [];
      for (let c = 0; c < 128; c++) if (node.set.ascii[c] && (alphabet === null || alphabet[c])) chars.push(CHAR[c]);
      const large = alphabet === null && node.set.nonAscii;
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

/** An atom's first ATOM_MAX characters, with the assertions among and right after them. */
function cut(atom: string): string {
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

/** A rule's clauses over an alphabet: null when no string of it matches; [] when nothing is known. */
export function clausesFor(pattern: string, alphabet: string | null): string[][] | null {
  return clausesOfTree(readPattern(pattern), alphabet);
}

function clausesOfTree(tree: Node, alphabet: string | null): string[][] | null {
  const letters = alphabet === null ? null : CHAR.map((ch) => alphabet.includes(ch));
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
  // Every clause must hold, so the checks stop at the first that fails: the most selective first.
  return kept.sort((a, b) => Math.min(...b.map(literalLength)) - Math.min(...a.map(literalLength)) || a.length - b.length);
}

export { Unreadable as PrefilterUnreadable };

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

// A raw value's character (or byte), as one table entry: its symbol (capitals folded), PLAIN
// when it is a plain character, SPECIAL | BAIL when the normaliser changes a value that has
// it: % & \ (decoding), a control character (or a whitespace other than a space), a non-ASCII
// character. The sequences it changes, two spaces (or + as spaces) and comments, are atoms
// of the automaton (TIDY_ATOMS) that end a raw scan when found.
const SYMBOL_MASK = 0xff;
const PLAIN = 0x100;
const SPECIAL = 0x200;
const BAIL = 0x400;

/** Sequences the normaliser changes (two spaces, a comment's start; a + read as a space is a space): a raw scan that finds one stops. */
const TIDY_ATOMS: readonly string[] = ['  ', '/*', '<!'];

/** Why a raw scan stopped: the value is not as the normaliser would leave it. */
function needsNormalising(c: number): boolean {
  return c < 32 || c >= 127 || c === 37 || c === 38 || c === 92;
}

/**
 * The trigger atoms of a rule set in one automaton (Aho-Corasick over the atoms' characters,
 * as a table of states x symbols), with their anchors. Each rule has one trigger clause per
 * kind of text (any, plain: Prefilter); a scan marks a rule a candidate when it finds an atom
 * of its trigger clause (per scan stamps: nothing to clear), and only candidates run their
 * regex, which is the exact test.
 */
export class AtomAutomaton {
  readonly atoms: readonly string[];
  private readonly symbols: number;
  /** char code (< 128) -> symbol. */
  private readonly exactSym = new Int32Array(128);
  /** Per code < 256: a raw character's symbol | PLAIN | SPECIAL | BAIL; the same with + as a space; a JSON string's byte. */
  private readonly rawInfo = new Int32Array(256);
  private readonly rawPlusInfo = new Int32Array(256);
  private readonly jsonInfo = new Int32Array(256);
  /** Per (state x symbols + symbol): the next state x symbols, or -(that) - 1 when atoms end there. */
  private readonly delta: Int32Array;
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
  /** Per rule: the stamp of the last scan that made it a candidate, over any text / over plain text. */
  readonly anyCandidate: Int32Array;
  readonly plainCandidate: Int32Array;
  stamp = 0;
  anyCount = 0;
  plainCount = 0;
  /** Whether the last scan's text is all plain characters. */
  plain = false;
  /** Whether the last scan found a TIDY_ATOMS sequence (a raw scan stops there). */
  tidy = false;
  private readonly tidyAtom: Uint8Array;

  constructor(atoms: readonly string[], anyRules: readonly number[][], plainRules: readonly number[][], ruleCount: number) {
    this.atoms = atoms;
    this.tidyAtom = Uint8Array.from(atoms, (a) => (TIDY_ATOMS.includes(a) ? 1 : 0));
    const literals = atoms.map((a) => a.replace(MARKS, ''));
    const chars = [...new Set(literals.join(''))].sort();
    this.symbols = chars.length + 1; // symbol 0: a character no atom has
    for (let i = 0; i < chars.length; i++) this.exactSym[chars[i].charCodeAt(0)] = i + 1;
    for (let c = 0; c < 256; c++) {
      const lower = c >= 65 && c <= 90 ? c + 32 : c;
      let info = c < 128 ? this.exactSym[lower] : 0;
      if (c < 128 && plainCode[lower] === 1) info |= PLAIN;
      if (needsNormalising(c)) info |= SPECIAL | BAIL;
      this.rawInfo[c] = info;
      // A JSON string: its closing quote ends it; + is itself.
      this.jsonInfo[c] = c === 0x22 ? SPECIAL : info;
    }
    this.rawPlusInfo.set(this.rawInfo);
    this.rawPlusInfo[43] = this.rawInfo[32]; // + as a space
    // The trie, then failure links breadth first, then the full transition table.
    const next: Map<number, number>[] = [new Map()];
    const out: number[][] = [[]];
    literals.forEach((lit, a) => {
      let st = 0;
      for (const ch of lit) {
        const sym = this.exactSym[ch.charCodeAt(0)];
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
    this.delta = new Int32Array(states * n);
    for (let i = 0; i < goto.length; i++) this.delta[i] = out[goto[i]].length > 0 ? -(goto[i] * n) - 1 : goto[i] * n;
    const flat = (lists: readonly (readonly number[])[]): [Int32Array, Int32Array] => {
      const start = new Int32Array(lists.length + 1);
      for (let i = 0; i < lists.length; i++) start[i + 1] = start[i] + lists[i].length;
      return [start, Int32Array.from(lists.flat())];
    };
    [this.outStart, this.outList] = flat(out);
    this.litLength = Int32Array.from(literals, (l) => l.length);
    [this.anchorStart, this.anchorList] = flat(atoms.map((a) => {
      const pairs: number[] = [];
      let offset = 0;
      for (const ch of a) {
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
  }

  private begin(): void {
    // A fresh stamp per scan: nothing to clear (a wrap after 2^31 scans restarts the count).
    if (++this.stamp === 0x7fffffff) {
      this.found.fill(0); this.anyCandidate.fill(0); this.plainCandidate.fill(0);
      this.stamp = 1;
    }
    this.anyCount = 0;
    this.plainCount = 0;
    this.tidy = false;
  }

  /** The trigger atoms of the normalised `text` (exact characters). */
  scan(text: string): void {
    this.begin();
    const delta = this.delta, exact = this.exactSym;
    let s = 0;
    let plain = true;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      let sym = 0;
      if (c < 128) { sym = exact[c]; if (plainCode[c] === 0) plain = false; } else plain = false;
      s = delta[s + sym];
      if (s < 0) { s = -s - 1; this.hitString(text, 0, text.length, s, i + 1); }
    }
    this.plain = plain;
  }

  /**
   * The trigger atoms of raw text[start, end) as the normaliser would leave it: capitals
   * lowered, and with `plusAsSpace` each + a space. SCAN.notVerbatim (stopping early) when the
   * normaliser would change more than that (normalise it and scan() that); else 0.
   */
  scanRaw(text: string, start: number, end: number, plusAsSpace: boolean): number {
    this.begin();
    const delta = this.delta, table = plusAsSpace ? this.rawPlusInfo : this.rawInfo;
    let s = 0;
    let all = PLAIN;
    for (let i = start; i < end; i++) {
      const c = text.charCodeAt(i);
      if (c > 255) return SCAN.notVerbatim;
      const info = table[c];
      if ((info & BAIL) !== 0) return SCAN.notVerbatim;
      all &= info;
      s = delta[s + (info & SYMBOL_MASK)];
      if (s < 0) {
        s = -s - 1;
        this.hitString(text, start, end, s, i + 1);
        if (this.tidy) return SCAN.notVerbatim;
      }
    }
    this.plain = all !== 0;
    return 0;
  }

  /**
   * scanRaw over a JSON string's content, from `start` (after its opening quote) to its closing
   * quote: returns the quote's position, or SCAN.notVerbatim (an escape, a control character,
   * a byte over 127, ... or no closing quote) for the caller to decode the string.
   */
  scanJsonString(buf: Uint8Array, start: number): number {
    this.begin();
    const delta = this.delta, table = this.jsonInfo, len = buf.length;
    let s = 0;
    let all = PLAIN;
    for (let i = start; i < len; i++) {
      const c = buf[i];
      const info = table[c];
      if ((info & SPECIAL) !== 0) {
        if (c === 0x22) { this.plain = all !== 0; return i; }
        return SCAN.notVerbatim;
      }
      all &= info;
      s = delta[s + (info & SYMBOL_MASK)];
      if (s < 0) {
        s = -s - 1;
        this.hitBytes(buf, start, s, i + 1);
        if (this.tidy) return SCAN.notVerbatim;
      }
    }
    return SCAN.notVerbatim;
  }

  private hitString(text: string, start: number, end: number, at: number, hitEnd: number): void {
    const state = (at / this.symbols) | 0; // at: state x symbols
    for (let k = this.outStart[state]; k < this.outStart[state + 1]; k++) {
      const a = this.outList[k];
      if (this.found[a] === this.stamp) continue;
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
    const state = (at / this.symbols) | 0; // at: state x symbols
    for (let k = this.outStart[state]; k < this.outStart[state + 1]; k++) {
      const a = this.outList[k];
      if (this.found[a] === this.stamp) continue;
      const from = hitEnd - this.litLength[a];
      let ok = true;
      for (let j = this.anchorStart[a]; j < this.anchorStart[a + 1] && ok; j += 2) {
        const p = from + this.anchorList[j];
        const kind = this.anchorList[j + 1];
        if (kind === ANCHOR_START) ok = p === start;
        else if (kind === ANCHOR_END) ok = buf[p] === 0x22;
        else {
          const boundary = (p > start && isWordCode(buf[p - 1])) !== (p < buf.length && isWordCode(buf[p]));
          ok = kind === ANCHOR_WORD ? boundary : !boundary;
        }
      }
      if (ok) this.mark(a);
    }
  }

  private mark(a: number): void {
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
  /** Per rule: 1 when it is a candidate whatever the scan finds (no clause is known for it), over any text / over plain text. */
  readonly anyAlways: Uint8Array;
  readonly plainAlways: Uint8Array;
}

export function buildPrefilter(patterns: readonly string[]): Prefilter {
  const trees = patterns.map(readPattern);
  const trigger = (alphabet: string | null) => trees.map((t) => {
    const clauses = clausesOfTree(t, alphabet);
    return clauses === null ? null : clauses.length === 0 ? [] : bestClause(clauses)!;
  });
  const anyTrigger = trigger(null);
  const plainTrigger = trigger(PLAIN_CHARS);
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
    anyAlways: Uint8Array.from(anyTrigger, (c) => (c !== null && c.length === 0 ? 1 : 0)),
    plainAlways: Uint8Array.from(plainTrigger, (c) => (c !== null && c.length === 0 ? 1 : 0)),
  };
}

/** For tests and docs: an atom as text (assertions written as in the pattern). */
export function atomText(atom: string): string {
  return atom.replace(/\uE000/g, '\\b').replace(/\uE001/g, '\\B').replace(/\uE002/g, '^').replace(/\uE003/g, '$');
}
