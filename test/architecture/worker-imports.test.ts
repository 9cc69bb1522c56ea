// The workers load the data plane only: no zod, no config schema or compile step, nothing
// under src/control/ (each would cost every worker heap and start-up time for code it never
// runs; zod alone is about 3 MB of heap). madge reads the .ts sources as the cycles test does;
// type-only imports are skipped here, since tsc erases them. And the two filter registries,
// the control plane's factories (index.ts) and the workers' builders (builders.ts), name the
// same filters with the same build functions.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import madge from 'madge';
import { FILTERS } from '../../src/filters/index.js';
import { FILTER_BUILDERS } from '../../src/filters/builders.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
/** Packages the workers load on first use only. */
const LAZY_PACKAGES = ['undici', 'hdr-histogram-js', 'piscina', 'ioredis'];

describe('what the workers load', () => {
  it('the worker entry files reach no zod, no src/control/ and no filter schema or compile module', async () => {
    const result = await madge([join(REPO, 'workers/data-plane.ts'), join(REPO, 'workers/jwt-verify.ts')], {
      baseDir: REPO,
      fileExtensions: ['ts'],
      tsConfig: join(REPO, 'tsconfig.json'),
      includeNpm: true,
      detectiveOptions: { ts: { skipTypeImports: true } },
    });
    const graph = result.obj();
    const files = Object.keys(graph);
    assert.ok(files.includes('src/data/server.ts') && files.includes('src/filters/builders.ts'), `madge read: ${files.join(', ')}`);
    const npm = new Set(Object.values(graph).flat().filter((d) => d.includes('node_modules/')).map((d) => d.split('node_modules/')[1].split('/')[0]));
    assert.ok(npm.has('pino'), 'npm imports are seen');
    assert.ok(!npm.has('zod'), 'zod is imported by a module the workers load');
    // Packages only some configs need load on first use (src/shared/lazy-require.ts): a static
    // import would cost every worker their heap whatever the config.
    for (const pkg of LAZY_PACKAGES) assert.ok(!npm.has(pkg), `${pkg} is imported at load time by a module the workers load (use lazily())`);
    const controlSide = files.filter((f) => f.startsWith('src/control/') || /^src\/filters\/[^/]+\/(schema|compile)\.ts$/.test(f) || f === 'src/filters/index.ts');
    assert.deepEqual(controlSide, [], 'control-plane modules in the workers');
  });

  it('the control plane loads ioredis and undici on first use only', async () => {
    const result = await madge([join(REPO, 'src/main.ts')], {
      baseDir: REPO,
      fileExtensions: ['ts'],
      tsConfig: join(REPO, 'tsconfig.json'),
      includeNpm: true,
      detectiveOptions: { ts: { skipTypeImports: true } },
    });
    const graph = result.obj();
    assert.ok(Object.keys(graph).includes('src/control/redis-client.ts'), 'madge read the control plane');
    const npm = new Set(Object.values(graph).flat().filter((d) => d.includes('node_modules/')).map((d) => d.split('node_modules/')[1].split('/')[0]));
    assert.ok(npm.has('prom-client'), 'npm imports are seen');
    // About 10 MB of RSS each on Node 20, for instances without Redis or token providers.
    for (const pkg of ['ioredis', 'undici']) assert.ok(!npm.has(pkg), `${pkg} is imported at load time by the control plane (use lazily())`);
  });

  it('builders.ts has every registered filter, with the factory\'s own build function', () => {
    assert.deepEqual(Object.keys(FILTER_BUILDERS).sort(), FILTERS.map((f) => f.name).sort());
    for (const f of FILTERS) assert.equal(FILTER_BUILDERS[f.name], f.build, `${f.name}: builders.ts and index.ts build differently`);
  });
});
