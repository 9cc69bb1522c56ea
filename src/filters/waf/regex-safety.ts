// The WAF's regex-safety rule (issue 16: regexes must not be a denial-of-service vector). The
// rules run on V8's backtracking engine, which the engine bench found 25x faster than `re2`
// here (native-bench/waf-engines.bench.ts), so every pattern is proven safe at load instead:
//   - every quantifier is bounded: {m,n} with n <= MAX_REPEAT, or ?; no *, +, {m,};
//   - only a single character (a literal, an escape class, [...], .) is repeated: a group may
//     be optional (?) but never repeated, so there is no repetition inside a repetition
//     (star height 1: no exponential backtracking);
//   - no backreferences and no lookaround;
//   - the number of ways the pattern can match from one start position (the product over a
//     sequence, the sum over alternatives, n-m+1 per quantifier) is at most MAX_PATHS.
// Together: matching a value of length L costs at most L x paths steps, linear in L with a
// per-rule constant known at load. A pattern that breaks a rule is refused with the reason.

export const MAX_REPEAT = 1024;
export const MAX_PATHS = 1e10;

export interface SafetyVerdict {
  readonly ok: boolean;
  readonly reason: string;
  /** Upper bound of backtracking paths from one start position. */
  readonly paths: number;
}

interface Parser { readonly src: string; pos: number }

class Unsafe extends Error {}

/** Checks one pattern (no flags other than the WAF's own); the reason names the first problem. */
export function checkRegexSafety(pattern: string): SafetyVerdict {
  try {
    new RegExp(pattern);
  } catch (err) {
    return { ok: false, reason: `not a valid regex: ${(err as Error).message}`, paths: 0 };
  }
  const p: Parser = { src: pattern, pos: 0 };
  try {
    const paths = alternation(p);
    if (p.pos !== pattern.length) throw new Unsafe(`unbalanced ) at ${p.pos}`);
    if (paths > MAX_PATHS) throw new Unsafe(`too many ways to match from one position (${paths.toExponential(1)} > ${MAX_PATHS.toExponential(0)})`);
    return { ok: true, reason: '', paths };
  } catch (err) {
    if (err instanceof Unsafe) return { ok: false, reason: err.message, paths: 0 };
    throw err;
  }
}

function alternation(p: Parser): number {
  let total = sequence(p);
  while (p.src[p.pos] === '|') {
    p.pos++;
    total += sequence(p);
  }
  return total;
}

function sequence(p: Parser): number {
  let product = 1;
  while (p.pos < p.src.length && p.src[p.pos] !== '|' && p.src[p.pos] !== ')') {
    const start = p.pos;
    const [inner, single] = atom(p);
    const [min, max] = quantifier(p);
    if (max === Infinity) throw new Unsafe(`unbounded quantifier after ${JSON.stringify(p.src.slice(start, p.pos))}: use {m,n} with n <= ${MAX_REPEAT}`);
    if (max > MAX_REPEAT) throw new Unsafe(`quantifier {${min},${max}} over ${MAX_REPEAT}`);
    if (max > 1 && !single) throw new Unsafe(`a group is repeated at ${start} (only single characters may repeat: no repetition inside a repetition)`);
    product *= max === 1 && min === 0 ? inner + 1 : inner * (max - min + 1);
  }
  return product;
}

/** One atom: [ways to match it, whether it is a single character]. */
function atom(p: Parser): [number, boolean] {
  const c = p.src[p.pos];
  if (c === '(') {
    p.pos++;
    if (p.src[p.pos] === '?') {
      if (p.src[p.pos + 1] !== ':') throw new Unsafe(`lookaround or named group at ${p.pos - 1}: only (?:...) groups are allowed`);
      p.pos += 2;
    }
    const inner = alternation(p);
    if (p.src[p.pos] !== ')') throw new Unsafe('unclosed group');
    p.pos++;
    return [inner, false];
  }
  if (c === '[') {
    p.pos++;
    if (p.src[p.pos] === '^') p.pos++;
    if (p.src[p.pos] === ']') p.pos++;
    while (p.pos < p.src.length && p.src[p.pos] !== ']') p.pos += p.src[p.pos] === '\\' ? 2 : 1;
    if (p.pos >= p.src.length) throw new Unsafe('unclosed character class');
    p.pos++;
    return [1, true];
  }
  if (c === '\\') {
    const e = p.src[p.pos + 1];
    if (e >= '1' && e <= '9') throw new Unsafe(`backreference \\${e}`);
    if (e === 'k') throw new Unsafe('named backreference');
    p.pos += 2;
    if (e === 'x') p.pos += 2;
    else if (e === 'u') p.pos += 4;
    // \b and \B match no character: never repeated (the quantifier check sees them as single, harmlessly).
    return [1, true];
  }
  if (c === '*' || c === '+' || c === '?' || c === '{') throw new Unsafe(`quantifier without an atom at ${p.pos}`);
  p.pos++;
  return [1, c !== '^' && c !== '$'];
}

function quantifier(p: Parser): [number, number] {
  const c = p.src[p.pos];
  let range: [number, number] = [1, 1];
  if (c === '*') { p.pos++; range = [0, Infinity]; }
  else if (c === '+') { p.pos++; range = [1, Infinity]; }
  else if (c === '?') { p.pos++; range = [0, 1]; }
  else if (c === '{') {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(p.src.slice(p.pos));
    if (m === null) throw new Unsafe(`malformed quantifier at ${p.pos}`);
    p.pos += m[0].length;
    const min = Number(m[1]);
    range = [min, m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3])];
  }
  if (range[1] !== 1 || range[0] !== 1) {
    if (p.src[p.pos] === '?') p.pos++; // lazy: the same paths in another order
    const next = p.src[p.pos];
    if (next === '*' || next === '+' || next === '{' || next === '?') throw new Unsafe(`quantifier of a quantifier at ${p.pos}`);
  }
  return range;
}
