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
