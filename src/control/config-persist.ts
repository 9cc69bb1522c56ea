// admin.persist: writing a config changed at runtime back to its file.
//
// The file is edited, not regenerated: only the shared sections whose value changed are
// replaced (services, routes, server.limits, ...); instance keys (server.host/port/workers,
// admin, redis) and unchanged sections keep their text, comments and `${ENV}` references,
// so a persisted file never gains the admin token in clear. A file that no longer parses is
// not overwritten (the caller reports why). The write is atomic: temp file, then rename.
import { randomBytes } from 'node:crypto';
import { rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isMap, parseDocument } from 'yaml';
import { parseConfigDocument } from './config-load.js';
import type { RawConfig } from './config-schema.js';
import { canonicalJson, sharedPart } from './config-store.js';

/** `previousText` with every changed shared section replaced by its value in `raw`. Throws when the file does not parse. */
export function renderConfigFile(previousText: string, raw: RawConfig, file: string, env: NodeJS.ProcessEnv): string {
  let current: RawConfig;
  try {
    current = parseConfigDocument(previousText, file, env).raw;
  } catch (error) {
    throw new Error(`${file} is not a valid config any more, so it was not overwritten:\n${(error as Error).message}`);
  }
  const doc = parseDocument(previousText);
  if (!isMap(doc.contents)) throw new Error(`${file} is not a mapping; not overwritten`);
  const before = sharedPart(current);
  const after = sharedPart(raw);
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (key === 'server') {
      const a = (before.server ?? {}) as Record<string, unknown>;
      const b = (after.server ?? {}) as Record<string, unknown>;
      for (const sub of new Set([...Object.keys(a), ...Object.keys(b)])) {
        if (canonicalJson(a[sub]) === canonicalJson(b[sub])) continue;
        if (b[sub] === undefined) doc.deleteIn(['server', sub]);
        else doc.setIn(['server', sub], b[sub]);
      }
      continue;
    }
    if (canonicalJson(before[key]) === canonicalJson(after[key])) continue;
    if (after[key] === undefined) doc.delete(key);
    else doc.set(key, after[key]);
  }
  return doc.toString({ lineWidth: 0 });
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
