// Versioning configuration (`versioning`, `routes[].match.version`, `routes[].version`):
// each mistake is an error at its key path, all in one pass; what a good config compiles to.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configIssues } from '../helpers/config-issues.js';
import { loadConfigText } from '../../src/control/config-load.js';
import { VERSION_SOURCE } from '../../src/shared/api-version.js';

const BASE = `
services: { s: { targets: ["http://127.0.0.1:9001"] } }
`;
const VERSIONS = `
versioning:
  versions: { "1": {}, "2": {} }
`;

function compile(yaml: string) {
  return loadConfigText(BASE + yaml, 'v.yaml');
}

function issues(yaml: string): string[] {
  return configIssues(() => compile(yaml));
}

describe('versioning config errors name the key path', () => {
  it('an unknown source, with a suggestion; "path" is explained; a source twice', () => {
    const got = issues(`
versioning:
  sources: [accept, headr, path, query, query]
  versions: { "1": {} }
routes: []
`);
    assert.deepEqual(got.filter((i) => i.startsWith('versioning.sources[1]')), [
      'versioning.sources[1]: must be one of "accept", "header", "query", got "headr"; did you mean "header"?',
    ]);
    assert.ok(got.some((i) => i.startsWith('versioning.sources[2]: "path" is not a source to configure: a version in the path')), got.join('\n'));
  });

  it('a source listed twice', () => {
    assert.deepEqual(issues(`
versioning: { sources: [header, query, header], versions: { "1": {} } }
`), ['versioning.sources[2]: lists "header" twice (also sources[0])']);
  });

  it('a duplicate version on one path; a version-less route beside versioned ones', () => {
    const got = issues(`${VERSIONS}
routes:
  - { name: a, match: { prefix: /users, version: "1" }, service: s }
  - { name: b, match: { prefix: /users, version: ["2", "1"] }, service: s }
  - { name: c, match: { prefix: /users, version: "2", methods: [POST] }, service: s }
  - { name: d, match: { prefix: /orders, version: "1" }, service: s }
  - { name: e, match: { prefix: /orders }, service: s }
`);
    assert.deepEqual(got, [
      'routes[1].match: ambiguous with routes[0] ("a"): same host (*), prefix /users and methods (both match any method) and versions (both serve 1)',
      'routes[2].match: ambiguous with routes[1] ("b"): same host (*), prefix /users and methods (both match POST) and versions (both serve 2)',
      'routes[4].match: ambiguous with routes[3] ("d"): same host (*), prefix /orders and methods (both match any method) and versions (a route without match.version serves every version, so both serve 1)',
    ]);
  });

  it('two versions on one path, or one version with different methods, are fine', () => {
    const config = compile(`${VERSIONS}
routes:
  - { name: a, match: { prefix: /users, version: "1" }, service: s }
  - { name: b, match: { prefix: /users, version: 2 }, service: s }
  - { name: c, match: { path: "/users/{id}", version: "1", methods: [GET] }, service: s }
  - { name: d, match: { path: "/users/{id}", version: "1", methods: [PUT] }, service: s }
`);
    assert.deepEqual(config.routes.map((r) => r.match.versionMask), [1, 2, 1, 1]);
    assert.deepEqual(config.routes[0].filters.map((f) => f.name), ['api-version']);
  });

  it('unknown versions, defaults and labels; a version without a versioning section', () => {
    assert.deepEqual(issues(`
versioning:
  default: "3"
  versions: { "1": {}, "2": {} }
routes:
  - { name: a, match: { prefix: /a, version: "3" }, service: s }
  - { name: b, match: { prefix: /b, version: ["1", "22"] }, service: s }
  - { name: c, match: { prefix: /c }, version: "9", service: s }
  - { name: d, match: { prefix: /d, version: "1" }, version: "1", service: s }
`).sort(), [
      'routes[0].match.version: unknown version "3" (defined versions: 1, 2)',
      'routes[1].match.version[1]: unknown version "22" (did you mean "2"? defined versions: 1, 2)',
      'routes[2].version: unknown version "9" (defined versions: 1, 2)',
      'routes[3].version: cannot be combined with match.version: version names the version of a path-versioned route, match.version chooses a route by the version the request names',
      'versioning.default: unknown version "3" (defined versions: 1, 2)',
    ].sort());
    assert.deepEqual(issues(`
routes: [{ name: a, match: { prefix: /a, version: "1" }, service: s }]
`), ['routes[0].match.version: needs a top-level versioning section that declares its versions (versioning.versions)']);
  });

  it('bad values: names, dates, links, headers', () => {
    const got = issues(`
versioning:
  header: Content-Length
  vendor: Company
  versions:
    "V1": {}
    "2": { deprecated: "2025-13-45", sunset: soon, successor_link: "https://x.example/a b" }
    "3": { deprecated: "2026-01-01", sunset: "2025-01-01" }
    "4": { successor_link: /docs/v5 }
`);
    const at = (key: string) => got.find((i) => i.startsWith(key + ':')) ?? `(nothing at ${key})`;
    assert.match(at('versioning.versions.V1'), /must be a version name/);
    assert.match(at('versioning.versions["2"].deprecated'), /ISO 8601/);
    assert.match(at('versioning.versions["2"].sunset'), /ISO 8601/);
    assert.match(at('versioning.versions["2"].successor_link'), /URI characters/);
    assert.match(at('versioning.vendor'), /lower-case vendor/);
    const second = issues(`
versioning:
  header: Content-Length
  versions:
    "3": { deprecated: "2026-01-01", sunset: "2025-01-01" }
    "4": { successor_link: /docs/v5 }
`);
    assert.deepEqual(second, [
      'versioning.header: cannot be Content-Length: the gateway handles that header itself',
      'versioning.versions["3"].sunset: 2025-01-01 is before deprecated (2026-01-01); a version is deprecated before it is retired',
      'versioning.versions["4"].successor_link: is sent with a deprecated version only: set deprecated (or sunset) too',
    ]);
  });
});

describe('versioning compiles', () => {
  it('to the runtime the workers read', () => {
    const config = compile(`
versioning:
  sources: [header, accept]
  header: X-API-Version
  vendor: acme
  default: 2
  versions: { "1": { deprecated: "2025-01-01T12:00:00Z" }, "2": {} }
routes: [{ name: a, match: { prefix: /a, version: "1" }, service: s }]
`);
    const v = config.versioning!;
    assert.deepEqual({ ...v, vary: undefined }, {
      sources: ['header', 'accept'], header: 'X-API-Version', headerLower: 'x-api-version', query: 'version', vendor: 'acme',
      versions: ['1', '2'], defaultIndex: 1, constrained: true, vary: undefined,
    });
    assert.equal(v.vary[VERSION_SOURCE.HEADER], 'X-API-Version');
    assert.equal(v.vary[VERSION_SOURCE.ACCEPT], 'X-API-Version, Accept');
    assert.equal(v.vary[VERSION_SOURCE.DEFAULT], 'X-API-Version, Accept');
    const filter = config.routes[0].filters[0].config as { deprecation: string[] };
    assert.deepEqual(filter.deprecation, ['@1735732800', '']);
  });

  it('no versioning section: no runtime, no filter, no masks', () => {
    const config = compile(`routes: [{ name: a, match: { prefix: /a }, service: s }]`);
    assert.equal(config.versioning, undefined);
    assert.deepEqual(config.routes[0].filters, []);
    assert.equal(config.routes[0].match.versionMask, undefined);
  });
});
