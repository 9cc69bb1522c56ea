import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import type { CompiledConfig } from '../../src/shared/compiled-config.js';
import { DEFAULT_METHOD_MASK, methodMask, OTHER_METHOD_BIT } from '../../src/shared/methods.js';
import { runCheck } from '../../src/control/check.js';
import { compileConfig } from '../../src/control/compile.js';
import { closestName, ConfigError, editDistance, formatKeyPath, type ConfigIssue } from '../../src/control/config-error.js';
import { loadConfigFile, loadConfigText, parseConfigText, substituteEnv } from '../../src/control/config-load.js';

const FILE = 'config/gateway.yaml';

// The example from the issue, verbatim.
const ISSUE_EXAMPLE = `server:
  host: 0.0.0.0
  port: 8080
  workers: auto            # data-plane threads; an integer or auto (= available cores)
  limits: { max_url_bytes: 8192, max_header_bytes: 16384, max_body_bytes: 10485760 }
services:
  users:
    targets: [ "http://127.0.0.1:9001", "http://127.0.0.1:9011" ]
    balance: round_robin   # or least_request
    timeouts: { connect_ms: 1000, response_ms: 15000, idle_ms: 60000 }
routes:
  - name: users
    match: { prefix: /v1/users, methods: [GET, POST, PUT, DELETE] }
    service: users
    strip_prefix: /v1                      # /v1/users/42?x=1 -> /users/42?x=1
  - name: user-v2
    match: { path: "/v2/users/{id}", host: api.example.com }
    service: users
    rewrite: "/users/{id}"                 # templated rewrite from captured params
`;

const SERVICES = `services:
  s:
    targets: ["http://127.0.0.1:9001"]
`;

/** A config with one service `s` and the given routes (YAML list items, indented 2). */
function withRoutes(routes: string): string {
  return `${SERVICES}routes:\n${routes}`;
}

function load(text: string, env: NodeJS.ProcessEnv = {}): CompiledConfig {
  return loadConfigText(text, FILE, env);
}

/** The issues of a config that must be rejected. */
function issuesOf(text: string, env: NodeJS.ProcessEnv = {}): ConfigIssue[] {
  try {
    load(text, env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.code, 'LOBBY_CONFIG_INVALID');
    return error.issues;
  }
  assert.fail('expected the config to be rejected');
}

/** Asserts exactly one issue, at `path`, whose message contains `fragment`; returns it. */
function expectIssue(text: string, path: string, fragment: string | RegExp, env: NodeJS.ProcessEnv = {}): ConfigIssue {
  const issues = issuesOf(text, env);
  assert.equal(issues.length, 1, `expected one issue, got:\n${issues.map((i) => `${i.path}: ${i.message}`).join('\n')}`);
  assert.equal(issues[0].path, path);
  if (typeof fragment === 'string') assert.ok(issues[0].message.includes(fragment), issues[0].message);
  else assert.match(issues[0].message, fragment);
  assert.equal(issues[0].file, FILE);
  return issues[0];
}

describe('config: the issue example', () => {
  it('compiles to exactly the expected CompiledConfig', () => {
    const expected: CompiledConfig = {
      source: FILE,
      server: {
        host: '0.0.0.0',
        port: 8080,
        workers: availableParallelism(),
        limits: { maxUrlBytes: 8192, maxHeaderBytes: 16384, maxBodyBytes: 10485760 },
        drainTimeoutMs: 30000,
        drainDelayMs: 0,
        escapedSlashes: 'reject',
        tls: null,
        tlsSource: null,
      },
      services: [
        {
          name: 'users',
          targets: [
            { origin: 'http://127.0.0.1:9001', hostHeader: '127.0.0.1:9001' },
            { origin: 'http://127.0.0.1:9011', hostHeader: '127.0.0.1:9011' },
          ],
          tls: null,
          balance: 'round_robin',
          timeouts: { connectMs: 1000, responseMs: 15000, idleMs: 60000 },
          connectionsPerTarget: 64,
          pipelining: 1,
        },
      ],
      routes: [
        {
          name: 'users',
          service: 0,
          match: { kind: 'prefix', path: '/v1/users', host: null, methodMask: methodMask(['GET', 'POST', 'PUT', 'DELETE']) },
          paramNames: [],
          stripPrefix: '/v1',
          rewrite: null,
          preserveHost: false,
          escapedSlashes: 'reject',
          filters: [],
        },
        {
          name: 'user-v2',
          service: 0,
          match: { kind: 'template', path: '/v2/users/{id}', host: 'api.example.com', methodMask: DEFAULT_METHOD_MASK },
          paramNames: ['id'],
          stripPrefix: null,
          rewrite: [{ literal: '/users/' }, { param: 0 }],
          preserveHost: false,
          escapedSlashes: 'reject',
          filters: [],
        },
      ],
    };
    assert.deepEqual(load(ISSUE_EXAMPLE), expected);
  });

  it('is structured-cloneable (it crosses to worker threads)', () => {
    const config = load(ISSUE_EXAMPLE);
    assert.deepEqual(structuredClone(config), config);
  });
});

describe('config: defaults and extra keys', () => {
  it('fills every default', () => {
    const config = load(withRoutes('  - name: r\n    match: { prefix: / }\n    service: s\n'));
    assert.deepEqual(config.server, {
      host: '0.0.0.0',
      port: 8080,
      workers: availableParallelism(),
      limits: { maxUrlBytes: 8192, maxHeaderBytes: 16384, maxBodyBytes: 10485760 },
      drainTimeoutMs: 30000,
      drainDelayMs: 0,
      escapedSlashes: 'reject',
      tls: null,
      tlsSource: null,
    });
    assert.deepEqual(config.services[0], {
      name: 's',
      targets: [{ origin: 'http://127.0.0.1:9001', hostHeader: '127.0.0.1:9001' }],
      tls: null,
      balance: 'round_robin',
      timeouts: { connectMs: 1000, responseMs: 15000, idleMs: 60000 },
      connectionsPerTarget: 64,
      pipelining: 1,
    });
    assert.deepEqual(config.routes[0], {
      name: 'r',
      service: 0,
      match: { kind: 'prefix', path: '/', host: null, methodMask: DEFAULT_METHOD_MASK },
      paramNames: [],
      stripPrefix: null,
      rewrite: null,
      preserveHost: false,
      escapedSlashes: 'reject',
      filters: [],
    });
  });

  it('a partial limits or timeouts mapping keeps the other defaults', () => {
    const config = load(`server:
  limits: { max_body_bytes: 1024 }
services:
  s:
    targets: ["http://127.0.0.1:9001"]
    timeouts: { response_ms: 500 }
routes: []
`);
    assert.deepEqual(config.server.limits, { maxUrlBytes: 8192, maxHeaderBytes: 16384, maxBodyBytes: 1024 });
    assert.deepEqual(config.services[0].timeouts, { connectMs: 1000, responseMs: 500, idleMs: 60000 });
  });

  it('resolves escaped_slashes per route: its own, else the server\'s', () => {
    const config = load(`server: { escaped_slashes: unescape }
services: { s: { targets: ["http://127.0.0.1:9001"] } }
routes:
  - { name: own, match: { prefix: /a }, service: s, escaped_slashes: keep }
  - { name: inherits, match: { prefix: /b }, service: s }
`);
    assert.equal(config.server.escapedSlashes, 'unescape');
    assert.deepEqual(config.routes.map((r) => r.escapedSlashes), ['keep', 'unescape']);
  });

  it('reads drain_timeout_ms, drain_delay_ms, connections, preserve_host, an integer workers and least_request', () => {
    const config = load(`server:
  workers: 3
  drain_timeout_ms: 5000
  drain_delay_ms: 1500
  port: 9090
  host: 127.0.0.1
services:
  s:
    targets: ["http://127.0.0.1:9001"]
    connections: 8
    balance: least_request
routes:
  - name: r
    match: { prefix: / }
    service: s
    preserve_host: true
`);
    assert.equal(config.server.workers, 3);
    assert.equal(config.server.drainTimeoutMs, 5000);
    assert.equal(config.server.drainDelayMs, 1500);
    assert.equal(config.server.port, 9090);
    assert.equal(config.server.host, '127.0.0.1');
    assert.equal(config.services[0].connectionsPerTarget, 8);
    assert.equal(config.services[0].balance, 'least_request');
    assert.equal(config.routes[0].preserveHost, true);
  });

  it('workers: auto is os.availableParallelism()', () => {
    const config = load('server: { workers: auto }\n');
    assert.equal(config.server.workers, availableParallelism());
  });

  it('an empty mapping is a valid config with no routes', () => {
    const config = load('{}\n');
    assert.deepEqual(config.routes, []);
    assert.deepEqual(config.services, []);
  });
});

describe('config: canonical forms', () => {
  const routeOf = (match: string, extra = '') =>
    load(withRoutes(`  - name: r\n    match: ${match}\n    service: s\n${extra}`)).routes[0];

  it('removes a trailing / from prefixes and paths, keeps the root /', () => {
    assert.equal(routeOf('{ prefix: /v1/users/ }').match.path, '/v1/users');
    assert.equal(routeOf('{ path: /v1/users/ }').match.path, '/v1/users');
    assert.equal(routeOf('{ path: "/v1/users/{id}/" }').match.path, '/v1/users/{id}');
    assert.equal(routeOf('{ prefix: / }').match.path, '/');
    assert.equal(routeOf('{ path: / }').match.kind, 'exact');
  });

  it('a path without {name} is exact; with, a template with params in order', () => {
    assert.equal(routeOf('{ path: /health }').match.kind, 'exact');
    const route = routeOf('{ path: "/orgs/{org}/users/{user_id}" }');
    assert.equal(route.match.kind, 'template');
    assert.deepEqual(route.paramNames, ['org', 'user_id']);
  });

  it('lower-cases the host', () => {
    assert.equal(routeOf('{ prefix: /, host: API.Example.COM }').match.host, 'api.example.com');
  });

  it('maps unknown-but-valid methods to the OTHER bit', () => {
    const route = routeOf('{ prefix: /, methods: [GET, PURGE] }');
    assert.equal(route.match.methodMask, methodMask(['GET']) | OTHER_METHOD_BIT);
  });

  it('compiles templated and literal-only rewrites', () => {
    assert.deepEqual(routeOf('{ path: "/a/{x}/b/{y}" }', '    rewrite: "/{y}/{x}.json"\n').rewrite, [
      { literal: '/' },
      { param: 1 },
      { literal: '/' },
      { param: 0 },
      { literal: '.json' },
    ]);
    assert.deepEqual(routeOf('{ prefix: /old }', '    rewrite: /new\n').rewrite, [{ literal: '/new' }]);
  });

  it('stores strip_prefix canonically; a whole-path strip is allowed', () => {
    assert.equal(routeOf('{ prefix: /v1/users }', '    strip_prefix: /v1/\n').stripPrefix, '/v1');
    assert.equal(routeOf('{ prefix: /v1/users }', '    strip_prefix: /v1/users\n').stripPrefix, '/v1/users');
    assert.equal(routeOf('{ path: "/v2/users/{id}" }', '    strip_prefix: /v2\n').stripPrefix, '/v2');
  });

  it('targets: port 80 by default, Host header without :80; host lower-cased', () => {
    const config = load(`services:
  s:
    targets: ["http://Backend.internal", "http://10.0.0.1:80/", "http://[::1]:9000"]
`);
    assert.deepEqual(config.services[0].targets, [
      { origin: 'http://backend.internal:80', hostHeader: 'backend.internal' },
      { origin: 'http://10.0.0.1:80', hostHeader: '10.0.0.1' },
      { origin: 'http://[::1]:9000', hostHeader: '[::1]:9000' },
    ]);
  });

  it('routes on the same path are fine with disjoint methods, different hosts or different kinds', () => {
    const config = load(
      withRoutes(`  - { name: a, match: { prefix: /x, methods: [GET] }, service: s }
  - { name: b, match: { prefix: /x, methods: [POST] }, service: s }
  - { name: c, match: { prefix: /x, host: a.example.com }, service: s }
  - { name: d, match: { path: /x }, service: s }
  - { name: e, match: { path: "/x/{id}" }, service: s }
  - { name: f, match: { path: /x/me }, service: s }
`),
    );
    assert.equal(config.routes.length, 6);
  });
});

describe('config: environment substitution', () => {
  const text = `server:
  host: "\${LISTEN_HOST}"
  port: \${PORT:-8081}
services:
  s:
    targets: ["http://\${UPSTREAM:-127.0.0.1}:9001"]
routes:
  - name: "\${ROUTE_NAME:-r}"
    match: { prefix: / }
    service: s
`;

  it('substitutes set variables and defaults', () => {
    const config = load(text, { LISTEN_HOST: '127.0.0.2', UPSTREAM: 'backend', ROUTE_NAME: 'main' });
    assert.equal(config.server.host, '127.0.0.2');
    assert.equal(config.server.port, 8081);
    assert.equal(config.services[0].targets[0].origin, 'http://backend:9001');
    assert.equal(config.routes[0].name, 'main');
  });

  it('an unquoted reference takes the YAML type of its value; a quoted one stays a string', () => {
    assert.equal(load(text, { LISTEN_HOST: 'h', PORT: '9000' }).server.port, 9000);
    const issue = expectIssue('server: { port: "${PORT}" }\n', 'server.port', 'expected a number', { PORT: '9000' });
    assert.equal(issue.line, 1);
  });

  it('uses the default when the variable is empty, as sh does', () => {
    assert.equal(load(text, { LISTEN_HOST: 'h', UPSTREAM: '' }).services[0].targets[0].origin, 'http://127.0.0.1:9001');
  });

  it('a missing variable without default is an error naming the key path and the variable', () => {
    const issues = issuesOf(text, {});
    assert.equal(issues.length, 1);
    assert.equal(issues[0].path, 'server.host');
    assert.equal(issues[0].line, 2);
    assert.match(issues[0].message, /LISTEN_HOST is not set/);
  });

  it('reports every missing variable', () => {
    const issues = issuesOf(`services:
  s:
    targets: ["http://\${A}:1", "http://\${B}:\${C}"]
`);
    assert.deepEqual(
      issues.map((i) => [i.path, i.line, i.message.split(' ')[2]]),
      [
        ['services.s.targets[0]', 3, 'A'],
        ['services.s.targets[1]', 3, 'B'],
        ['services.s.targets[1]', 3, 'C'],
      ],
    );
  });

  it('$${ is a literal ${, and a lone $ is kept', () => {
    assert.deepEqual(substituteEnv('a$${B}c $x $$ ${A}', { A: '1' }), { value: 'a${B}c $x $$ 1', references: 1, errors: [] });
    // An escape alone is not a reference: the unquoted scalar stays a string.
    assert.deepEqual(substituteEnv('$${X}', {}), { value: '${X}', references: 0, errors: [] });
    // Not substituted (no "not set" error): the literal `${X}` reaches validation.
    expectIssue(withRoutes('  - name: r\n    match: { prefix: "/$${X}" }\n    service: s\n'), 'routes[0].match.prefix', 'must not contain "{"');
  });

  it('does not substitute in keys', () => {
    expectIssue('services:\n  ${NAME}:\n    targets: ["http://a"]\n', 'services["${NAME}"]', '[A-Za-z0-9_.-]+');
  });

  it('rejects malformed references', () => {
    expectIssue('server: { host: "${1BAD}" }\n', 'server.host', 'invalid environment variable name');
    expectIssue('server: { host: "${OPEN" }\n', 'server.host', 'unterminated');
    expectIssue('server: { host: "${A:-${B}}" }\n', 'server.host', 'nested');
  });
});

describe('config: unknown keys', () => {
  it('rejects an unknown key with its path and line, listing the allowed keys', () => {
    const issue = expectIssue('server:\n  port: 8080\n  prot: 8081\n', 'server.prot', 'unknown key');
    assert.equal(issue.line, 3);
    assert.match(issue.message, /allowed: host, port, workers, limits, drain_timeout_ms/);
  });

  it('rejects top-level sections that do not exist (tls, plugins)', () => {
    const issues = issuesOf('admin: {}\ntls: {}\nplugins: {}\n');
    assert.deepEqual(
      issues.map((i) => [i.path, i.line]),
      [
        ['tls', 2],
        ['plugins', 3],
      ],
    );
  });

  it('rejects unknown keys inside routes, match, services, limits and timeouts', () => {
    const issues = issuesOf(`server:
  limits: { max_bytes: 1 }
services:
  s:
    targets: ["http://127.0.0.1:9001"]
    timeouts: { read_ms: 1 }
    weight: 2
routes:
  - name: r
    match: { prefix: /, header: x }
    service: s
    retries: 3
`);
    assert.deepEqual(
      issues.map((i) => [i.path, i.line]),
      [
        ['server.limits.max_bytes', 2],
        ['services.s.timeouts.read_ms', 6],
        ['services.s.weight', 7],
        ['routes[0].match.header', 10],
        ['routes[0].retries', 12],
      ],
    );
  });
});

describe('config: errors, each at its exact key path', () => {
  const route = (match: string, extra = '') => withRoutes(`  - name: r\n    match: ${match}\n    service: s\n${extra}`);

  const cases: [title: string, text: string, path: string, fragment: string | RegExp][] = [
    // match
    ['both prefix and path', route('{ prefix: /a, path: /a }'), 'routes[0].match', 'exactly one'],
    ['neither prefix nor path', route('{ methods: [GET] }'), 'routes[0].match', 'needs a prefix or a path'],
    ['prefix without leading /', route('{ prefix: v1 }'), 'routes[0].match.prefix', 'must start with "/"'],
    ['path without leading /', route('{ path: v1 }'), 'routes[0].match.path', 'must start with "/"'],
    ['prefix with {', route('{ prefix: "/v1/{id}" }'), 'routes[0].match.prefix', 'must not contain "{"'],
    ['path with a query', route('{ path: "/v1?x=1" }'), 'routes[0].match.path', 'query'],
    ['prefix with a query', route('{ prefix: "/v1?x" }'), 'routes[0].match.prefix', 'query'],
    ['path not normalized (//)', route('{ path: /a//b }'), 'routes[0].match.path', 'write "/a/b"'],
    ['prefix not normalized (..)', route('{ prefix: /a/../b }'), 'routes[0].match.prefix', 'write "/b"'],
    ['path with an escaped letter', route('{ path: /%61 }'), 'routes[0].match.path', 'write "/a"'],
    ['template not normalized', route('{ path: "/a/./{id}" }'), 'routes[0].match.path', 'write "/a/{id}"'],
    ['path with a space', route('{ path: "/a b" }'), 'routes[0].match.path', 'must not contain " "'],
    ['param not a whole segment', route('{ path: "/v1/{id}.json" }'), 'routes[0].match.path', 'whole segment'],
    ['bad param name', route('{ path: "/v1/{1id}" }'), 'routes[0].match.path', 'parameter name "1id"'],
    ['duplicate param', route('{ path: "/{id}/x/{id}" }'), 'routes[0].match.path', '"{id}" appears twice'],
    ['host with a port', route('{ prefix: /, host: "api.example.com:8443" }'), 'routes[0].match.host', 'must not include a port'],
    ['host with a wildcard', route('{ prefix: /, host: "*.example.com" }'), 'routes[0].match.host', 'host name'],
    ['host with a scheme', route('{ prefix: /, host: "http//x" }'), 'routes[0].match.host', 'host name'],
    ['empty methods', route('{ prefix: /, methods: [] }'), 'routes[0].match.methods', 'at least one method'],
    ['lower-case method', route('{ prefix: /, methods: [GET, post] }'), 'routes[0].match.methods[1]', 'upper-case ("POST")'],
    ['invalid method token', route('{ prefix: /, methods: ["GE T"] }'), 'routes[0].match.methods[0]', 'method token'],
    // route
    ['unknown service', withRoutes('  - name: r\n    match: { prefix: / }\n    service: nope\n'), 'routes[0].service', 'unknown service "nope"'],
    ['missing name', withRoutes('  - match: { prefix: / }\n    service: s\n'), 'routes[0].name', 'is required'],
    ['bad name', withRoutes('  - name: "a b"\n    match: { prefix: / }\n    service: s\n'), 'routes[0].name', '[A-Za-z0-9_.-]+'],
    ['missing service', withRoutes('  - name: r\n    match: { prefix: / }\n'), 'routes[0].service', 'is required'],
    [
      'duplicate route name',
      withRoutes('  - { name: r, match: { prefix: /a }, service: s }\n  - { name: r, match: { prefix: /b }, service: s }\n'),
      'routes[1].name',
      'duplicate route name "r" (also routes[0])',
    ],
    ['strip_prefix not segment-aligned', route('{ prefix: /v1/users }', '    strip_prefix: /v1/us\n'), 'routes[0].strip_prefix', 'whole-segment prefix'],
    ['strip_prefix longer than the prefix', route('{ prefix: /v1 }', '    strip_prefix: /v1/users\n'), 'routes[0].strip_prefix', 'whole-segment prefix'],
    ['strip_prefix /', route('{ prefix: /v1 }', '    strip_prefix: /\n'), 'routes[0].strip_prefix', 'strips nothing'],
    [
      'strip_prefix with rewrite',
      route('{ prefix: /v1/users }', '    strip_prefix: /v1\n    rewrite: /users\n'),
      'routes[0].rewrite',
      'cannot be combined with strip_prefix',
    ],
    ['rewrite without leading /', route('{ prefix: /v1 }', '    rewrite: v2\n'), 'routes[0].rewrite', 'must start with "/"'],
    ['rewrite with a query', route('{ prefix: /v1 }', '    rewrite: "/v2?a=1"\n'), 'routes[0].rewrite', 'query'],
    ['rewrite with an unclosed {', route('{ path: "/u/{id}" }', '    rewrite: "/x/{id"\n'), 'routes[0].rewrite', 'unmatched'],
    [
      'rewrite with an unknown param',
      route('{ path: "/u/{id}" }', '    rewrite: "/users/{uid}"\n'),
      'routes[0].rewrite',
      '"{uid}" is not a parameter of match.path "/u/{id}"',
    ],
    ['rewrite param on a prefix route', route('{ prefix: /u }', '    rewrite: "/users/{id}"\n'), 'routes[0].rewrite', 'not captured'],
    [
      'ambiguous routes',
      withRoutes(
        '  - { name: one, match: { prefix: /a/, methods: [GET, POST] }, service: s }\n' +
          '  - { name: two, match: { prefix: /a, methods: [POST, PUT] }, service: s }\n',
      ),
      'routes[1].match',
      /ambiguous with routes\[0\] \("one"\).*POST/,
    ],
    [
      'ambiguous templates with different param names',
      withRoutes('  - { name: one, match: { path: "/u/{id}" }, service: s }\n  - { name: two, match: { path: "/u/{uid}" }, service: s }\n'),
      'routes[1].match',
      'ambiguous with routes[0] ("one")',
    ],
    [
      'ambiguous on the same host',
      withRoutes(
        '  - { name: one, match: { path: /x, host: a.com }, service: s }\n  - { name: two, match: { path: /x, host: A.com }, service: s }\n',
      ),
      'routes[1].match',
      'same host (a.com)',
    ],
    // services
    ['no targets', 'services:\n  s:\n    targets: []\n', 'services.s.targets', 'at least one target'],
    ['ftp target', 'services:\n  s:\n    targets: ["ftp://a:21"]\n', 'services.s.targets[0]', 'http:// or https:// URL'],
    ['https target with a path', 'services:\n  s:\n    targets: ["https://a:443/x"]\n', 'services.s.targets[0]', 'no path'],
    ['target with a path', 'services:\n  s:\n    targets: ["http://a:1/api"]\n', 'services.s.targets[0]', 'no path'],
    ['target with a query', 'services:\n  s:\n    targets: ["http://a:1?x"]\n', 'services.s.targets[0]', 'query'],
    ['target with userinfo', 'services:\n  s:\n    targets: ["http://u:p@a:1"]\n', 'services.s.targets[0]', 'credentials'],
    ['target without scheme', 'services:\n  s:\n    targets: ["127.0.0.1:9001"]\n', 'services.s.targets[0]', 'http:// or https:// URL'],
    ['target with a bad port', 'services:\n  s:\n    targets: ["http://a:99999"]\n', 'services.s.targets[0]', 'not a valid URL'],
    ['duplicate target', 'services:\n  s:\n    targets: ["http://a:80", "http://a"]\n', 'services.s.targets[1]', 'already listed as targets[0]'],
    ['bad balance', 'services:\n  s:\n    targets: ["http://a"]\n    balance: random\n', 'services.s.balance', '"round_robin", "least_request"'],
    ['zero timeout', 'services:\n  s:\n    targets: ["http://a"]\n    timeouts: { connect_ms: 0 }\n', 'services.s.timeouts.connect_ms', 'greater than 0'],
    ['fractional timeout', 'services:\n  s:\n    targets: ["http://a"]\n    timeouts: { idle_ms: 1.5 }\n', 'services.s.timeouts.idle_ms', 'integer'],
    ['huge timeout', 'services:\n  s:\n    targets: ["http://a"]\n    timeouts: { response_ms: 3000000000 }\n', 'services.s.timeouts.response_ms', 'longest timer'],
    ['zero connections', 'services:\n  s:\n    targets: ["http://a"]\n    connections: 0\n', 'services.s.connections', 'greater than 0'],
    ['bad service name', 'services:\n  "a b":\n    targets: ["http://a"]\n', 'services["a b"]', '[A-Za-z0-9_.-]+'],
    ['service without targets', 'services:\n  s: {}\n', 'services.s.targets', 'is required'],
    // server
    ['workers 0', 'server: { workers: 0 }\n', 'server.workers', '"auto" or an integer from 1 to 256'],
    ['workers 257', 'server: { workers: 257 }\n', 'server.workers', '"auto" or an integer from 1 to 256'],
    ['workers as text', 'server: { workers: many }\n', 'server.workers', '"auto" or an integer'],
    ['port 0', 'server: { port: 0 }\n', 'server.port', 'at least 1'],
    ['port 65536', 'server: { port: 65536 }\n', 'server.port', 'at most 65535'],
    ['port as text', 'server: { port: "80" }\n', 'server.port', 'expected a number, got the string "80"'],
    ['zero limit', 'server: { limits: { max_body_bytes: 0 } }\n', 'server.limits.max_body_bytes', 'greater than 0'],
    ['negative limit', 'server: { limits: { max_url_bytes: -1 } }\n', 'server.limits.max_url_bytes', 'greater than 0'],
    ['zero drain timeout', 'server: { drain_timeout_ms: 0 }\n', 'server.drain_timeout_ms', 'greater than 0'],
    ['negative drain delay', 'server: { drain_delay_ms: -1 }\n', 'server.drain_delay_ms', 'at least 0'],
    ['huge drain delay', 'server: { drain_delay_ms: 3000000000 }\n', 'server.drain_delay_ms', 'longest timer'],
    ['listen host with a port', 'server: { host: "0.0.0.0:80" }\n', 'server.host', 'port'],
    // shapes
    ['routes not a list', 'routes: { a: 1 }\n', 'routes', 'expected a list, got a mapping'],
    ['services not a mapping', 'services: [a]\n', 'services', 'expected a mapping, got a list'],
    ['null section', 'server:\n', 'server', 'expected a mapping, got null'],
    ['preserve_host not a boolean', route('{ prefix: / }', '    preserve_host: "yes"\n'), 'routes[0].preserve_host', 'true or false'],
    ['prefix with a ..; segment', route('{ prefix: "/a/..;x" }'), 'routes[0].match.prefix', 'segment with ";" parameters'],
    ['prefix with a bad escape', route('{ prefix: "/a%zz" }'), 'routes[0].match.prefix', 'malformed percent-escape'],
    ['rewrite with %00', route('{ prefix: /a }', '    rewrite: "/b%00"\n'), 'routes[0].rewrite', '%00'],
    ['bad server escaped_slashes', 'server: { escaped_slashes: decode }\n', 'server.escaped_slashes', '"reject", "keep", "unescape", got the string "decode"'],
    ['bad route escaped_slashes', route('{ prefix: / }', '    escaped_slashes: true\n'), 'routes[0].escaped_slashes', '"reject", "keep", "unescape", got true'],
  ];

  for (const [title, text, path, fragment] of cases) {
    it(`${title} → ${path}`, () => {
      expectIssue(text, path, fragment);
    });
  }

  it('the ambiguity message names both routes', () => {
    const issue = expectIssue(
      withRoutes('  - { name: first, match: { path: /x }, service: s }\n  - { name: second, match: { path: /x }, service: s }\n'),
      'routes[1].match',
      'ambiguous',
    );
    assert.match(issue.message, /routes\[0\] \("first"\)/);
    assert.equal(issue.line, 6); // the later route: the one that cannot be reached
  });
});

describe('config: file-level problems', () => {
  it('an empty file is a clear error', () => {
    for (const text of ['', '# only a comment\n', '~\n']) {
      const issue = expectIssue(text, '(root)', 'the file is empty');
      assert.equal(issue.line, undefined);
    }
  });

  it('a root that is not a mapping is a clear error', () => {
    expectIssue('- a\n- b\n', '(root)', 'expected a mapping (server, services, routes), got a list');
    expectIssue('hello\n', '(root)', 'got a single value');
  });

  it('a YAML syntax error carries its line', () => {
    const issues = issuesOf('server:\n  port: 8080\nroutes: [ { name: a }\nservices: {}\n');
    assert.equal(issues.length, 1); // the first error only: the rest would be echoes of it
    assert.match(issues[0].message, /^invalid YAML: /);
    assert.equal(issues[0].line, 4);
  });

  it('a duplicate key is reported at its path and line', () => {
    const issue = expectIssue('server:\n  port: 1\n  port: 2\n', 'server.port', 'Map keys must be unique');
    assert.equal(issue.line, 3);
  });
});

describe('config: several errors are reported together', () => {
  const text = `server:
  port: 0
  workerz: 2
services:
  s:
    targets: ["ftp://a:1"]
routes:
  - name: a
    match: { prefix: v1 }
    service: s
  - name: b
    match: { path: "/x/{id}", host: "a.com:1" }
    service: s
`;

  it('lists every schema issue, in file order, with lines', () => {
    const issues = issuesOf(text);
    assert.deepEqual(
      issues.map((i) => [i.path, i.line]),
      [
        ['server.port', 2],
        ['server.workerz', 3],
        ['services.s.targets[0]', 6],
        ['routes[0].match.prefix', 9],
        ['routes[1].match.host', 12],
      ],
    );
  });

  it('lists every cross-reference issue together', () => {
    const issues = issuesOf(
      withRoutes(`  - { name: a, match: { prefix: /a }, service: nope }
  - { name: a, match: { prefix: /b }, service: s, strip_prefix: /c }
  - { name: c, match: { prefix: /b }, service: s }
`),
    );
    assert.deepEqual(
      issues.map((i) => i.path).sort(),
      ['routes[0].service', 'routes[1].name', 'routes[1].strip_prefix', 'routes[2].match'],
    );
  });

  it('the message has one line per issue: file:line path: message', () => {
    try {
      load(text);
      assert.fail('expected a ConfigError');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      const lines = error.message.split('\n');
      assert.equal(lines.length, 5);
      assert.equal(lines[0], 'config/gateway.yaml:2 server.port: must be at least 1');
      assert.equal(lines[3], 'config/gateway.yaml:9 routes[0].match.prefix: must start with "/"');
    }
  });
});

describe('config: schema and reference errors in one pass', () => {
  it('a file with five mistakes reports exactly those five, with file, line, path and problem', () => {
    const issues = issuesOf(`server:
  workerz: 2
services:
  users:
    targets: ["http://127.0.0.1:9001"]
    balance: round_robbin
  orders:
    targets: ["http://127.0.0.1:9002"]
rate_limits:
  per_ip: { key: ip, rate: 10 }
routes:
  - name: users
    match: { prefix: /v1/users }
    service: usres
  - name: orders
    match: { prefix: /v1/orders }
    service: orders
    rate_limit: [per_ipp]
  - name: users
    match: { prefix: /v1/other }
    service: orders
`);
    assert.deepEqual(issues.map((i) => [i.file, i.line, i.path, i.message]), [
      [FILE, 2, 'server.workerz', 'unknown key, did you mean "workers"? (allowed: host, port, workers, limits, drain_timeout_ms, drain_delay_ms, trusted_proxies, rate_limit_keys, escaped_slashes, reuse_port, tls, max_connections, overload)'],
      [FILE, 6, 'services.users.balance', 'must be one of "round_robin", "least_request", got the string "round_robbin"; did you mean "round_robin"?'],
      [FILE, 14, 'routes[0].service', 'unknown service "usres" (did you mean "users"? defined services: users, orders)'],
      [FILE, 18, 'routes[1].rate_limit[0]', 'unknown limit "per_ipp" (did you mean "per_ip"? defined limits: per_ip)'],
      [FILE, 19, 'routes[2].name', 'duplicate route name "users" (also routes[0])'],
    ]);
  });

  it('a route with a schema error still has its references checked', () => {
    const issues = issuesOf(withRoutes('  - { name: r, match: { prefix: v1 }, service: nope, strip_prefx: /v1 }\n'));
    assert.deepEqual(issues.map((i) => i.path), ['routes[0].match.prefix', 'routes[0].strip_prefx', 'routes[0].service']);
    assert.match(issues[1].message, /^unknown key, did you mean "strip_prefix"\?/);
  });

  it('reports no echoes of a schema error: references to a part that failed resolve', () => {
    // A service, a limit and a provider that fail the schema still exist by name.
    const issues = issuesOf(`services:
  s: { targets: ["http://127.0.0.1:9001"], balance: random }
  "bad name": { targets: ["http://127.0.0.1:9002"] }
rate_limits:
  per_user: { key: "claim:sub", rate: 0 }
  by_sub: { key: "claim:sub", rate: 5 }
auth:
  providers:
    - { name: p, issuer: i, algorithms: [RS999], jwks_uri: "http://127.0.0.1:1/k", claims_to_headers: { sub: X-User } }
routes:
  - { name: a, match: { prefix: /a }, service: s, rate_limit: [per_user] }
  - { name: b, match: { prefix: /b }, service: "bad name" }
  - { name: c, match: { prefix: /c }, service: s, auth: { provider: p }, rate_limit: [by_sub] }
  - { name: d, match: { prefix: /d }, service: s, rate_limit: [by_sub] }
`);
    assert.deepEqual(issues.map((i) => i.path), [
      'services.s.balance',
      'services["bad name"]',
      'rate_limits.per_user.rate',
      'auth.providers[0].algorithms[0]',
      // The one real reference mistake: a claim limit on a route without auth.
      'routes[3].rate_limit[0]',
    ]);
    assert.match(issues[4].message, /keyed by claim:sub, but the route has no auth/);
  });

  it('suggests only close names: distance <= 2, <= 1 for names of up to 4 characters', () => {
    assert.equal(editDistance('usres', 'users'), 1); // a transposition is one edit
    assert.equal(editDistance('Users', 'users'), 0);
    assert.equal(closestName('ordrs', ['users', 'orders']), 'orders');
    assert.equal(closestName('odrs', ['orders']), undefined); // 4 characters, distance 2
    assert.equal(closestName('q', ['p']), undefined);
    assert.equal(closestName('billing', ['users', 'orders']), undefined);
    const [issue] = issuesOf(withRoutes('  - { name: r, match: { prefix: /a }, service: billing }\n'));
    assert.equal(issue.message, 'unknown service "billing" (defined services: s)');
  });
});

describe('config: targets that are Lobby itself', () => {
  const services = (targets: string[]) => `services:\n  x:\n    targets: [${targets.map((t) => JSON.stringify(t)).join(', ')}]\n`;
  const paths = (text: string) => issuesOf(text).map((i) => [i.path, i.message]);

  it('refuses a target that is the admin listener (loopback equivalents included)', () => {
    const text = `server: { host: 127.0.0.1, port: 8080 }\nadmin: { host: 127.0.0.1, port: 9901 }\n` +
      services(['http://127.0.0.1:9901', 'http://localhost:9901', 'http://0.0.0.0:9901', 'http://127.0.0.1:9902', 'http://10.1.2.3:9901']);
    assert.deepEqual(paths(text), [
      ['services.x.targets[0]', 'http://127.0.0.1:9901 is Lobby\'s own admin API (admin.host 127.0.0.1, admin.port 9901): requests would reach the admin listener, not an upstream'],
      ['services.x.targets[1]', 'http://localhost:9901 is Lobby\'s own admin API (admin.host 127.0.0.1, admin.port 9901): requests would reach the admin listener, not an upstream'],
      ['services.x.targets[2]', 'http://0.0.0.0:9901 is Lobby\'s own admin API (admin.host 127.0.0.1, admin.port 9901): requests would reach the admin listener, not an upstream'],
    ]);
  });

  it('an admin API on a wildcard address is reached through every loopback name', () => {
    const text = `admin: { host: "::", port: 9901, token: "0123456789abcdef" }\n` +
      services(['http://127.0.0.5:9901', 'http://[::1]:9901', 'http://localhost:9901', 'http://[::1]:9000']);
    assert.deepEqual(issuesOf(text).map((i) => i.path), ['services.x.targets[0]', 'services.x.targets[1]', 'services.x.targets[2]']);
    // 0.0.0.0 is IPv4 only: ::1 does not reach it.
    const v4 = `admin: { host: 0.0.0.0, port: 9901, token: "0123456789abcdef" }\n` + services(['http://[::1]:9901', 'http://127.0.0.1:9901']);
    assert.deepEqual(issuesOf(v4).map((i) => i.path), ['services.x.targets[1]']);
  });

  it('refuses a target that is the data-plane listener (a request loop)', () => {
    const text = `server: { port: 8080 }\n` + services(['http://127.0.0.1:8080', 'http://127.0.0.1:8081']);
    assert.deepEqual(paths(text), [
      ['services.x.targets[0]', 'http://127.0.0.1:8080 is Lobby\'s own listener (server.host 0.0.0.0, server.port 8080): every request would loop through the gateway'],
    ]);
    // server.port defaults to 8080, and http:// to port 80.
    assert.deepEqual(issuesOf(`server: { port: 80 }\n` + services(['http://localhost'])).map((i) => i.path), ['services.x.targets[0]']);
  });
});

describe('config: API-style objects (no file, no lines)', () => {
  it('compileConfig validates a plain object with the same rules', () => {
    const config = compileConfig(
      { services: { s: { targets: ['http://a:1'] } }, routes: [{ name: 'r', match: { prefix: '/x/' }, service: 's' }] },
      'admin-api',
    );
    assert.equal(config.routes[0].match.path, '/x');
    assert.equal(config.source, 'admin-api');

    assert.throws(
      () => compileConfig({ routes: [{ name: 'r', match: { prefix: 'x' }, service: 's' }] }, 'admin-api'),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.message, [
          'admin-api routes[0].match.prefix: must start with "/"',
          'admin-api routes[0].service: unknown service "s" (no services are defined)',
        ].join('\n'));
        return true;
      },
    );
  });

  it('parseConfigText returns the substituted raw config with defaults', () => {
    // Block style: inside a flow mapping `{ }` an unquoted `${` would be YAML syntax.
    const raw = parseConfigText('server:\n  port: ${P}\n', FILE, { P: '81' });
    assert.equal(raw.server.port, 81);
    assert.equal(raw.server.workers, 'auto');
    assert.deepEqual(raw.routes, []);
  });

  it('formatKeyPath writes list indexes in brackets and odd keys quoted', () => {
    assert.equal(formatKeyPath([]), '(root)');
    assert.equal(formatKeyPath(['routes', 2, 'match', 'prefix']), 'routes[2].match.prefix');
    assert.equal(formatKeyPath(['services', 'api.v1', 'targets', 0]), 'services["api.v1"].targets[0]');
  });
});

describe('config: files', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lobby-config-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loadConfigFile reads and compiles a file, naming it as the source', async () => {
    const file = join(dir, 'gateway.yaml');
    await writeFile(file, ISSUE_EXAMPLE);
    const config = await loadConfigFile(file);
    assert.equal(config.source, file);
    assert.equal(config.routes.length, 2);
  });

  it('a missing file is a ConfigError', async () => {
    const file = join(dir, 'missing.yaml');
    await assert.rejects(loadConfigFile(file), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /missing\.yaml \(root\): cannot read the file \(ENOENT\)/);
      return true;
    });
  });

  it('runCheck prints the route table and a summary, and returns 0', async () => {
    const file = join(dir, 'ok.yaml');
    await writeFile(file, ISSUE_EXAMPLE);
    const out = collector();
    const err = collector();
    assert.equal(await runCheck(file, out, err), 0);
    assert.equal(err.text, '');
    const lines = out.text.split('\n');
    assert.match(lines[0], /^ROUTE\s+HOST\s+METHODS\s+MATCH\s+SERVICE\s+TARGETS\s+PATH CHANGE\s+FILTERS$/);
    assert.match(lines[1], /^users\s+\*\s+GET,POST,PUT,DELETE\s+prefix \/v1\/users\s+users\s+round_robin: http:\/\/127\.0\.0\.1:9001, http:\/\/127\.0\.0\.1:9011\s+strip_prefix \/v1\s+-$/);
    assert.match(lines[2], /^user-v2\s+api\.example\.com\s+\*\s+template \/v2\/users\/\{id\}\s+users\s+round_robin: .*\s+rewrite \/users\/\{id\}\s+-$/);
    // Columns are aligned: every cell of a column starts at the same offset.
    assert.equal(lines[1].indexOf('prefix'), lines[0].indexOf('MATCH'));
    assert.equal(lines[2].indexOf('template'), lines[0].indexOf('MATCH'));
    const workers = availableParallelism();
    assert.ok(
      out.text.includes(`OK: 2 routes, 1 service, ${workers} ${workers === 1 ? 'worker' : 'workers'} (auto), listening on 0.0.0.0:8080`),
      out.text,
    );
  });

  it('runCheck prints every issue and returns 1', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, withRoutes('  - { name: a, match: { prefix: v1 }, service: nope }\n  - { name: b, match: { prefix: /b }, service: s, bogus: 1 }\n'));
    const out = collector();
    const err = collector();
    assert.equal(await runCheck(file, out, err), 1);
    assert.equal(out.text, '');
    assert.ok(err.text.includes(`${file}:5 routes[0].match.prefix: must start with "/"`), err.text);
    assert.ok(err.text.includes(`${file}:5 routes[0].service: unknown service "nope" (defined services: s)`), err.text);
    assert.ok(err.text.includes(`${file}:6 routes[1].bogus: unknown key`), err.text);
    assert.ok(err.text.includes('invalid configuration (3 issues)'), err.text);
  });

  it('the example configs load (so they never rot)', async () => {
    const examples = fileURLToPath(new URL('../../../config/examples/', import.meta.url));
    const minimal = await loadConfigFile(join(examples, 'minimal.yaml'));
    assert.equal(minimal.routes.length, 1);
    const routing = await loadConfigFile(join(examples, 'routing.yaml'));
    assert.deepEqual(
      routing.routes.map((r) => [r.name, r.match.kind, r.match.path]),
      [
        ['users', 'prefix', '/v1/users'],
        ['user-v2', 'template', '/v2/users/{id}'],
        ['me-v2', 'exact', '/v2/users/me'],
        ['search-read', 'prefix', '/search'],
        ['search-write', 'prefix', '/search'],
        ['legacy', 'prefix', '/'],
      ],
    );
    for (const name of ['minimal.yaml', 'routing.yaml']) {
      assert.equal(await runCheck(join(examples, name), collector(), collector()), 0);
    }
  });
});

function collector(): { text: string; write(chunk: string): boolean } {
  return {
    text: '',
    write(chunk: string) {
      this.text += chunk;
      return true;
    },
  };
}
