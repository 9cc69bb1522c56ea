// The access-log, tracing and server-timing keys through the real config compiler: the example
// loads, each route gets its filters, and bad values are refused with their key path.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadConfigFile, loadConfigText } from '../../src/control/config-load.js';
import { ACCESS_LOG_FIELDS } from '../../src/filters/access-log/fields.js';

const example = fileURLToPath(new URL('../../../config/examples/observability.yaml', import.meta.url));

function errorOf(text: string): string {
  try { loadConfigText(text, '/tmp/obs.yaml'); } catch (err) { return (err as Error).message; }
  return '';
}

const BASE = `
services: { app: { targets: ["http://127.0.0.1:3000"] } }
routes: [ { name: r, match: { prefix: / }, service: app } ]
`;

describe('observability config', () => {
  it('the example loads: filters per route, the unrouted access log', async () => {
    const config = await loadConfigFile(example);
    const names = (i: number) => config.routes[i].filters.map((f) => f.name);
    assert.deepEqual(names(0), ['tracing', 'server-timing', 'access-log']);
    assert.deepEqual(names(1), ['access-log']);
    assert.deepEqual(config.routes[1].filters[0].config, { path: 'stdout', sample: 1, onlyErrors: true, fields: [...ACCESS_LOG_FIELDS] });
    assert.deepEqual(config.unroutedFilters?.map((f) => f.name), ['access-log']);
  });

  it('no access_log section: no filter, no unrouted line', () => {
    const config = loadConfigText(BASE, '/tmp/obs.yaml');
    assert.deepEqual(config.routes[0].filters, []);
    assert.equal(config.unroutedFilters, undefined);
  });

  it('refuses bad values with their key path', () => {
    assert.match(errorOf(BASE + 'access_log: { sample: 2 }'), /access_log\.sample/);
    assert.match(errorOf(BASE + 'access_log: { fields: [status, nope] }'), /access_log\.fields\[1\]/);
    assert.match(errorOf(BASE + 'access_log: { path: /no/such/folder/access.log }'), /access_log\.path: cannot write the access log: folder \/no\/such\/folder does not exist/);
    assert.match(errorOf(BASE + 'access_log: { colour: red }'), /access_log\.colour: unknown key/);
    assert.match(errorOf(BASE + 'tracing: { otlp: { endpoint: "ftp://x" } }'), /tracing\.otlp\.endpoint: must be an http/);
    assert.match(errorOf(BASE + 'tracing: { sample: -1 }'), /tracing\.sample/);
  });
});
