// admin.persist: writing a config changed at runtime back to its file.
//
// The file is edited, not regenerated: only the values that changed are replaced, down to
// the single key (a route or provider is matched by its name, so a changed route rewrites
// that route only); instance keys (server.host/port/workers, admin, redis) and everything
// unchanged keep their text, comments and `${ENV}` references, so a persisted file never
// gains the admin token or a secret from the environment in clear. A secret written anew
// (`secret`, a JWK's `k`, e.g. a provider renamed or added with a redacted secret) whose value
// is what a `${VAR}` of a secret in the file resolves to is written as that `${VAR}`; any
// other new text with `${` is escaped as `$${`, so that it reads back as written. A file that
// no longer parses is not overwritten (the caller reports why). The write is atomic: temp
// file, then rename.
import { randomBytes } from 'node:crypto';
import { rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isMap, isPair, isScalar, isSeq, parseDocument, Scalar, visit, type Document, type Node as YamlNode, type YAMLMap, type YAMLSeq } from 'yaml';
import { parseConfigDocument, substituteEnv } from './config-load.js';
import type { RawConfig } from './config-schema.js';
import { canonicalJson, isPlainObject as isRecord, sharedPart } from './config-shared.js';

/** Keys whose string values are secrets: a resolved `${VAR}` of one is never written in clear. */
const SECRET_FIELDS = new Set(['secret', 'k', 'client_secret']);

const keyOf = (pair: unknown): string | undefined => (isPair(pair) ? String(isScalar(pair.key) ? pair.key.value : pair.key) : undefined);

/** `previousText` with every changed shared value replaced by its value in `raw`. Throws when the file does not parse. */
export function renderConfigFile(previousText: string, raw: RawConfig, file: string, env: NodeJS.ProcessEnv): string {
  let current: RawConfig;
  try {
    current = parseConfigDocument(previousText, file, env).raw;
  } catch (error) {
    throw new Error(`${file} is not a valid config any more, so it was not overwritten:\n${(error as Error).message}`);
  }
  const before = sharedPart(current);
  const after = sharedPart(raw);
  const wanted = canonicalJson(after);
  // Value by value first; when that does not read back as `raw` (YAML merge keys or anchors
  // in the file), whole changed sections; never a file that would load differently.
  for (const wholeSections of [false, true]) {
    const doc = parseDocument(previousText);
    if (!isMap(doc.contents)) throw new Error(`${file} is not a mapping; not overwritten`);
    const writer = new Patcher(doc, secretReferences(doc, env), wholeSections);
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) writer.patch(doc.contents, key, before[key], after[key]);
    const text = doc.toString({ lineWidth: 0 });
    try {
      if (canonicalJson(sharedPart(parseConfigDocument(text, file, env).raw)) === wanted) return text;
    } catch {
      // did not parse back: try the next way
    }
  }
  throw new Error(`${file}: the change cannot be written so that the file loads as the running config; not overwritten`);
}

/** Resolved value → `${...}` text, for every secret field of the file written with an env reference. */
function secretReferences(doc: Document, env: NodeJS.ProcessEnv): Map<string, string> {
  const out = new Map<string, string>();
  visit(doc, {
    Pair(_key, pair) {
      const name = keyOf(pair);
      if (name === undefined || !SECRET_FIELDS.has(name) || !isScalar(pair.value) || typeof pair.value.value !== 'string') return;
      const text = pair.value.value;
      const resolved = substituteEnv(text, env);
      if (resolved.references > 0 && resolved.errors.length === 0 && resolved.value !== '') out.set(resolved.value, text);
    },
  });
  return out;
}

class Patcher {
  constructor(private readonly doc: Document, private readonly references: Map<string, string>, private readonly wholeSections: boolean) {}

  /** Makes `parent[key]` (whose value in the file is `before`) hold `after`, touching only what differs. */
  patch(parent: YAMLMap | YAMLSeq, key: string | number, before: unknown, after: unknown, depth = 0): void {
    if (canonicalJson(before) === canonicalJson(after)) return;
    if (after === undefined) {
      parent.delete(key);
      return;
    }
    const node = parent.get(key, true) as unknown;
    // A section is a top-level key, or a key of server (server.limits, ...).
    if (this.wholeSections && (depth === 0 ? key !== 'server' : depth === 1)) {
      parent.set(key, this.fresh(after, key as string));
      return;
    }
    if (isMap(node) && isRecord(before) && isRecord(after)) {
      for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) this.patch(node, k, before[k], after[k], depth + 1);
      return;
    }
    if (isSeq(node) && Array.isArray(before) && Array.isArray(after) && node.items.length === before.length) {
      const named = (list: unknown[]) => list.every((item) => isRecord(item) && typeof item.name === 'string');
      if (named(before) && named(after)) {
        // Routes, providers: matched by name, so an insert or a reorder keeps the others' text.
        const at = new Map(before.map((item, i) => [(item as { name: string }).name, i]));
        const used = new Set<number>();
        node.items = after.map((item) => {
          const i = at.get((item as { name: string }).name);
          if (i === undefined || used.has(i)) return this.fresh(item, undefined);
          used.add(i);
          this.patch(node, i, before[i], item, depth + 1);
          return node.items[i];
        });
        return;
      }
      if (before.length === after.length) {
        after.forEach((item, i) => this.patch(node, i, before[i], item, depth + 1));
        return;
      }
    }
    parent.set(key, this.fresh(after, typeof key === 'string' ? key : undefined));
  }

  /** A new node for `value` (placed under `field`): env-sourced secrets as their reference, other `${` escaped. */
  private fresh(value: unknown, field: string | undefined): YamlNode {
    const node = this.doc.createNode(value) as YamlNode;
    const write = (scalar: Scalar, name: string | undefined) => {
      if (typeof scalar.value !== 'string') return;
      const reference = name !== undefined && SECRET_FIELDS.has(name) ? this.references.get(scalar.value) : undefined;
      if (reference !== undefined) {
        scalar.value = reference;
        scalar.type = Scalar.QUOTE_DOUBLE; // a quoted reference stays a string, whatever it resolves to
      } else if (scalar.value.includes('${')) {
        scalar.value = scalar.value.replaceAll('${', () => '$${'); // a function: '$$' in a replacement string is one '$'
      }
    };
    if (isScalar(node)) {
      write(node, field);
      return node;
    }
    visit(node, {
      Scalar(key, scalar, path) {
        if (key === 'key') return; // keys are never substituted
        write(scalar, key === 'value' ? keyOf(path[path.length - 1]) : undefined);
      },
    });
    return node;
  }
}

/** Writes `text` to a temp file next to `file` (same mode) and renames it over `file`. */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const temp = join(dirname(file), `.${basename(file)}.${randomBytes(4).toString('hex')}.tmp`);
  const mode = await stat(file).then((s) => s.mode & 0o777, () => 0o644);
  try {
    await writeFile(temp, text, { mode });
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}
