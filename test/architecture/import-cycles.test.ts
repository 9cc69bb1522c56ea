// No import cycles in src/ and workers/ (issue 10), type-only imports included: a circle of
// types still ties the files' design together. madge reads the .ts sources (this file runs
// from dist/test/architecture), resolving `./x.js` specifiers through tsconfig.json as tsc does.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import madge from 'madge';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const TSCONFIG = join(REPO, 'tsconfig.json');

/**
 * Cycles that exist today and are being removed by the data-plane rewrite of issue 10. The test
 * fails on any cycle not listed here and on a listed one that is gone, so this list only shrinks;
 * it must end empty.
 */
const KNOWN_CYCLES: readonly string[] = [];

async function cyclesUnder(baseDir: string, paths: string[]): Promise<{ cycles: string[]; files: string[]; skipped: string[] }> {
  const result = await madge(paths.map((p) => join(baseDir, p)), {
    baseDir,
    fileExtensions: ['ts'],
    tsConfig: TSCONFIG,
    detectiveOptions: { ts: { skipTypeImports: false } },
  });
  return {
    cycles: result.circular().map(canonicalCycle).sort(),
    files: Object.keys(result.obj()),
    skipped: result.warnings().skipped,
  };
}

/** A cycle written from its alphabetically first file, so the same circle always reads the same. */
function canonicalCycle(files: string[]): string {
  let start = 0;
  for (let i = 1; i < files.length; i++) if (files[i] < files[start]) start = i;
  return [...files.slice(start), ...files.slice(0, start)].join(' > ');
}

describe('import cycles', () => {
  it('src/ and workers/ have no import cycles except the known ones, which must still exist', async () => {
    const { cycles, files, skipped } = await cyclesUnder(REPO, ['src', 'workers']);
    // Guards against a check that passes because it read nothing.
    assert.ok(files.includes('src/main.ts') && files.includes('workers/data-plane.ts'), `madge read: ${files.join(', ')}`);
    assert.deepEqual(skipped, [], 'imports madge could not resolve (a cycle through them would go unseen)');
    const known = KNOWN_CYCLES.map((c) => canonicalCycle(c.split(' > '))).sort();
    const added = cycles.filter((c) => !known.includes(c));
    const gone = known.filter((c) => !cycles.includes(c));
    assert.ok(added.length === 0 && gone.length === 0, [
      ...(added.length > 0 ? ['new import cycles:', ...added.map((c) => `  ${c}`)] : []),
      ...(gone.length > 0 ? ['cycles in KNOWN_CYCLES that no longer exist (remove them from the list):', ...gone.map((c) => `  ${c}`)] : []),
    ].join('\n'));
  });

  it('counts a cycle made only of type imports written with .js specifiers', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'lobby-cycles-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'a.ts'), "import type { B } from './b.js';\nexport interface A { b: B }\n");
    await writeFile(join(dir, 'b.ts'), "import type { A } from './a.js';\nexport interface B { a?: A }\n");
    await writeFile(join(dir, 'c.ts'), "import type { A } from './a.js';\nexport type C = A;\n");
    const { cycles } = await cyclesUnder(dir, ['.']);
    assert.deepEqual(cycles, ['a.ts > b.ts']);
  });
});
