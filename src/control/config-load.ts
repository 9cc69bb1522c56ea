// Loading a YAML config: parse (keeping the document, so a key path can be mapped back to
// its line), substitute `${ENV}` references, validate, compile. Each phase reports every
// problem it finds; a later phase runs only when the earlier ones passed, since it could
// only report consequences of their errors.

import { readFile } from 'node:fs/promises';
import {
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  Scalar,
  type Document,
  type Node as YamlNode,
} from 'yaml';
import type { CompiledConfig } from '../shared/compiled-config.js';
import { compileConfig, validateConfig } from './compile.js';
import {
  ConfigError,
  formatKeyPath,
  issueAt,
  ROOT_PATH,
  type ConfigIssue,
  type KeyPath,
  type LineLocator,
} from './config-error.js';
import type { RawConfig } from './config-schema.js';

export interface ParsedConfig {
  /** Validated config, env references substituted, defaults filled in. */
  raw: RawConfig;
  /** Maps key paths of `raw` to lines of the source text. */
  locate: LineLocator;
}

export interface LoadedConfig {
  /** The file as read (the reload watcher compares it to tell real changes). */
  text: string;
  raw: RawConfig;
  compiled: CompiledConfig;
}

/** Reads, validates and compiles a config file. Throws ConfigError (also when the file cannot be read). */
export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<CompiledConfig> {
  return (await loadConfig(file, env)).compiled;
}

/** Like loadConfigFile, also returning the validated raw config (for `lobby check` and the admin API). */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError([{ file, path: ROOT_PATH, message: `cannot read the file (${reason})` }]);
  }
  const { raw, locate } = parseConfigDocument(text, file, env);
  return { text, raw, compiled: compileConfig(raw, file, locate) };
}

/** Validates and compiles config text; `file` names it in messages. Throws ConfigError. */
export function loadConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): CompiledConfig {
  const { raw, locate } = parseConfigDocument(text, file, env);
  return compileConfig(raw, file, locate);
}

/** Parses, substitutes and schema-validates config text, without compiling it. Throws ConfigError. */
export function parseConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): RawConfig {
  return parseConfigDocument(text, file, env).raw;
}

/** parseConfigText plus the line locator, so that compileConfig(raw, file, locate) can report lines. */
export function parseConfigDocument(text: string, file: string, env: NodeJS.ProcessEnv = process.env): ParsedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const lineAt = (offset: number): number => lineCounter.linePos(offset).line;

  if (doc.errors.length > 0) {
    // After a syntax error the parser is out of step and the errors that follow are mostly
    // echoes of it, so only the first is reported; duplicate keys are independent mistakes.
    const firstSyntaxError = doc.errors.find((error) => error.code !== 'DUPLICATE_KEY');
    const reported = doc.errors.filter((error) => error.code === 'DUPLICATE_KEY' || error === firstSyntaxError);
    throw new ConfigError(
      reported.map((error) => ({
        file,
        path: keyPathAt(doc, error.pos[0]),
        line: lineAt(error.pos[0]),
        message: `invalid YAML: ${error.message}`,
      })),
    );
  }
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    throw new ConfigError([{ file, path: ROOT_PATH, message: 'the file is empty; expected a mapping with server, services and routes' }]);
  }
  if (!isMap(doc.contents)) {
    const got = isSeq(doc.contents) ? 'a list' : 'a single value';
    throw new ConfigError([
      { file, path: ROOT_PATH, line: lineOf(doc.contents, lineAt), message: `expected a mapping (server, services, routes), got ${got}` },
    ]);
  }

  const locate: LineLocator = (path) => locateKeyPath(doc, path, lineAt);
  const envIssues: ConfigIssue[] = [];
  substituteEnvInNode(doc.contents, [], env, (path, message) => envIssues.push(issueAt(file, path, message, locate)));
  if (envIssues.length > 0) throw new ConfigError(envIssues);

  return { raw: validateConfig(doc.toJS(), file, locate), locate };
}

// ---------------------------------------------------------------------------------------
// Environment substitution.

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface Substitution {
  value: string;
  /** How many `${...}` references there were (0: the text had at most `$${` escapes). */
  references: number;
  errors: string[];
}

/**
 * Expands `${NAME}` and `${NAME:-default}` (default when unset or empty, as in sh) and
 * turns `$${` into a literal `${`. Values are inserted as they are, never expanded again.
 */
export function substituteEnv(text: string, env: NodeJS.ProcessEnv): Substitution {
  const errors: string[] = [];
  let references = 0;
  let value = '';
  let from = 0;
  for (let dollar = text.indexOf('$', from); dollar !== -1; dollar = text.indexOf('$', from)) {
    value += text.slice(from, dollar);
    if (text.startsWith('$${', dollar)) {
      value += '${';
      from = dollar + 3;
      continue;
    }
    if (!text.startsWith('${', dollar)) {
      value += '$';
      from = dollar + 1;
      continue;
    }
    const close = text.indexOf('}', dollar + 2);
    if (close === -1) {
      errors.push('unterminated "${" (write "$${" for a literal "${")');
      return { value, references, errors };
    }
    references++;
    const reference = text.slice(dollar + 2, close);
    const defaultAt = reference.indexOf(':-');
    const name = defaultAt === -1 ? reference : reference.slice(0, defaultAt);
    const fallback = defaultAt === -1 ? undefined : reference.slice(defaultAt + 2);
    from = close + 1;
    if (!ENV_NAME.test(name)) {
      errors.push(`invalid environment variable name ${JSON.stringify(name)} in "\${${reference}}"`);
    } else if (fallback?.includes('${')) {
      errors.push(`nested references are not supported in "\${${reference}}"`);
    } else {
      const set = env[name];
      if (set !== undefined && (set !== '' || fallback === undefined)) value += set;
      else if (fallback !== undefined) value += fallback;
      else errors.push(`environment variable ${name} is not set (use \${${name}:-default} to give a default)`);
    }
  }
  return { value: value + text.slice(from), references, errors };
}

// YAML 1.2 core-schema numbers and booleans. An unquoted scalar whose text came from the
// environment gets the type it would have had if written literally, so `port: ${PORT}`
// gives a number; a quoted one stays a string.
const PLAIN_INT = /^[-+]?[0-9]+$/;
const PLAIN_FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/;
const PLAIN_TRUE = /^(?:true|True|TRUE)$/;
const PLAIN_FALSE = /^(?:false|False|FALSE)$/;

function plainScalarValue(text: string): string | number | boolean {
  if (PLAIN_INT.test(text) || PLAIN_FLOAT.test(text)) return Number(text);
  if (PLAIN_TRUE.test(text)) return true;
  if (PLAIN_FALSE.test(text)) return false;
  return text;
}

/** Substitutes in every string value (never in keys), in place, reporting problems at their key path. */
function substituteEnvInNode(
  node: unknown,
  path: KeyPath,
  env: NodeJS.ProcessEnv,
  report: (path: KeyPath, message: string) => void,
): void {
  if (isMap(node)) {
    for (const pair of node.items) substituteEnvInNode(pair.value, [...path, keyName(pair.key)], env, report);
  } else if (isSeq(node)) {
    node.items.forEach((item, index) => substituteEnvInNode(item, [...path, index], env, report));
  } else if (isScalar(node) && typeof node.value === 'string' && node.value.includes('$')) {
    const { value, references, errors } = substituteEnv(node.value, env);
    for (const error of errors) report(path, error);
    node.value = references > 0 && node.type === Scalar.PLAIN ? plainScalarValue(value) : value;
  }
  // Aliases are left alone: they share the (substituted) node of their anchor.
}

// ---------------------------------------------------------------------------------------
// Key paths ↔ positions in the document.

function keyName(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

function lineOf(node: unknown, lineAt: (offset: number) => number): number | undefined {
  const range = (node as YamlNode | null)?.range;
  return range ? lineAt(range[0]) : undefined;
}

/** Line of the deepest node along `path` (the key itself for a map entry). */
function locateKeyPath(doc: Document, path: KeyPath, lineAt: (offset: number) => number): number | undefined {
  let node: unknown = doc.contents;
  for (let i = 0; i < path.length; i++) {
    if (isAlias(node)) node = node.resolve(doc);
    const segment = path[i];
    if (isMap(node)) {
      const pair = node.items.find((item) => keyName(item.key) === String(segment));
      if (!pair) break;
      if (i === path.length - 1) return lineOf(pair.key, lineAt) ?? lineOf(pair.value, lineAt);
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
      node = node.items[segment];
    } else {
      break;
    }
  }
  return lineOf(node, lineAt);
}

/** Key path of the deepest entry containing `offset` (for YAML errors, which only carry a position). */
function keyPathAt(doc: Document, offset: number): string {
  const path: (string | number)[] = [];
  const contains = (node: unknown): boolean => {
    const range = (node as YamlNode | null)?.range;
    return range !== undefined && range !== null && range[0] <= offset && offset < range[2];
  };
  let node: unknown = doc.contents;
  for (;;) {
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((item) => contains(item.key) || contains(item.value));
      if (pair) {
        path.push(keyName(pair.key));
        next = contains(pair.key) ? undefined : pair.value;
      }
    } else if (isSeq(node)) {
      const index = node.items.findIndex(contains);
      if (index !== -1) {
        path.push(index);
        next = node.items[index];
      }
    }
    if (next === undefined) break;
    node = next;
  }
  return formatKeyPath(path);
}
