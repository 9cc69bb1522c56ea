// The one error type of configuration loading. It carries every problem found, not just
// the first, so an operator fixes a config in one round instead of one error per run.

export interface ConfigIssue {
  file: string;
  /** Key path like `routes[2].match.prefix`, or `(root)` for the top level. */
  path: string;
  /** 1-based line in the file, when the path can be located in it. */
  line?: number;
  message: string;
}

/** Key path segments as they come from the parsed document: map keys and list indexes. */
export type KeyPath = readonly (string | number)[];

/** Maps a key path to its 1-based line in the source file (undefined when unknown, e.g. JSON from an API). */
export type LineLocator = (path: KeyPath) => number | undefined;

export const ROOT_PATH = '(root)';

// Keys that can be written after a `.` without confusing the reader; anything else (a
// service named `api.v1`, a key with spaces) is written as `["api.v1"]`.
const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `['routes', 2, 'match', 'prefix']` → `routes[2].match.prefix`; `[]` → `(root)`. */
export function formatKeyPath(path: KeyPath): string {
  if (path.length === 0) return ROOT_PATH;
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (PLAIN_KEY.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** An issue at a key path, located in the file when a locator is given. */
export function issueAt(file: string, path: KeyPath, message: string, locate?: LineLocator): ConfigIssue {
  const line = locate?.(path);
  return line === undefined
    ? { file, path: formatKeyPath(path), message }
    : { file, path: formatKeyPath(path), line, message };
}

/** One issue as a single line: `config/gateway.yaml:14 routes[2].match.prefix: must start with "/"`. */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line === undefined ? issue.file : `${issue.file}:${issue.line}`;
  return `${where} ${issue.path}: ${issue.message}`;
}

/** Issues in file order (unlocated ones last; otherwise the order they were found). */
export function sortIssues(issues: readonly ConfigIssue[]): ConfigIssue[] {
  return issues
    .map((issue, order) => ({ issue, order }))
    .sort((a, b) => (a.issue.line ?? Infinity) - (b.issue.line ?? Infinity) || a.order - b.order)
    .map(({ issue }) => issue);
}

export class ConfigError extends Error {
  readonly code = 'LOBBY_CONFIG_INVALID';
  readonly issues: ConfigIssue[];

  /** Issues are sorted into file order; the message lists them one per line. */
  constructor(issues: readonly ConfigIssue[]) {
    const sorted = sortIssues(issues);
    super(sorted.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = sorted;
  }
}

/**
 * Edit distance with adjacent transpositions (Damerau-Levenshtein, optimal string alignment
 * variant), case-insensitive: `workerz`→`workers` 1, `prefx`→`prefix` 1, `usres`→`users` 1.
 */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  // Three rows suffice: a transposition looks back two rows.
  let before = new Array<number>(t.length + 1).fill(0);
  let previous = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const current = [i];
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      let d = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost);
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) d = Math.min(d, before[j - 2] + 1);
      current.push(d);
    }
    before = previous;
    previous = current;
  }
  return previous[t.length];
}

/**
 * The candidate `name` is most likely a typo of, or undefined. Allowed distance: 1 for names
 * of up to 4 characters (at 2, `auth` would "mean" `path`), 2 for longer ones, and always
 * less than the name's length (`q` does not "mean" `p`); ties go to the candidate listed first.
 */
export function closestName(name: string, candidates: Iterable<string>): string | undefined {
  const limit = Math.min(name.length <= 4 ? 1 : 2, name.length - 1);
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of candidates) {
    if (candidate === name) continue;
    const distance = editDistance(name, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** ` did you mean "users"?` (with the leading space), or '' when no candidate is close. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const closest = closestName(name, candidates);
  return closest === undefined ? '' : ` did you mean ${JSON.stringify(closest)}?`;
}

/**
 * The message for a reference to an undefined name, e.g. `unknown service "usres" (did you
 * mean "users"? defined services: users, orders)`.
 */
export function unknownNameMessage(kind: string, name: string, defined: readonly string[], noneDefined: string): string {
  const hint = defined.length > 0 ? `defined ${kind}s: ${defined.join(', ')}` : noneDefined;
  const suggestion = didYouMean(name, defined).trim();
  return `unknown ${kind} ${JSON.stringify(name)} (${suggestion === '' ? '' : `${suggestion} `}${hint})`;
}
