// The error catalogue: each entry of GW_ERR is named by its code, codes are unique, and
// docs/errors.md lists exactly the codes of the table (no code answered undocumented, no
// documented code that nothing answers).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GW_ERR } from '../../src/shared/errors.js';

const ERRORS_MD = fileURLToPath(new URL('../../../docs/errors.md', import.meta.url));

describe('error catalogue', () => {
  it('names every entry by its code; codes are unique', () => {
    for (const [name, spec] of Object.entries(GW_ERR)) assert.equal(name, spec.code);
    const codes = Object.values(GW_ERR).map((s) => s.code);
    assert.equal(new Set(codes).size, codes.length);
  });

  it('docs/errors.md lists exactly the codes in the table, with their statuses', () => {
    const documented = new Map<string, Set<number>>();
    for (const line of readFileSync(ERRORS_MD, 'utf8').split('\n')) {
      const m = /^\| (\d{3}) \| `([a-z_]+)` \|/.exec(line);
      if (m === null) continue;
      const statuses = documented.get(m[2]) ?? new Set<number>();
      statuses.add(Number(m[1]));
      documented.set(m[2], statuses);
    }
    assert.deepEqual([...documented.keys()].sort(), Object.values(GW_ERR).map((s) => s.code).sort());
    for (const spec of Object.values(GW_ERR)) {
      assert.ok(documented.get(spec.code)!.has(spec.status), `${spec.code} documented with status ${spec.status}`);
    }
  });
});
