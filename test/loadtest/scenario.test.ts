import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';

import { loadScenario, parseScenario, parseSeconds, SCENARIO_DIR, ScenarioError } from '../../loadtest/scenario.js';

const parse = (raw: unknown) => parseScenario(raw, 'test.yaml', 'fallback');

describe('loadtest scenario parsing', () => {
  it('fills defaults for a minimal scenario', () => {
    const scenario = parse({});
    assert.equal(scenario.name, 'fallback');
    assert.equal(scenario.method, 'GET');
    assert.equal(scenario.path, '/');
    assert.equal(scenario.connections, 64);
    assert.equal(scenario.durationSec, 10);
    assert.equal(scenario.warmupSec, 3);
    assert.equal(scenario.pipelining, 1);
    assert.equal(scenario.rate, null);
    assert.deepEqual(scenario.targets, ['lobby', 'nginx']);
    assert.equal(scenario.soak, null);
  });

  it('accepts durations as numbers or strings with units', () => {
    const scenario = parse({ duration: '1.5s', warmup: '500ms' });
    assert.equal(scenario.durationSec, 1.5);
    assert.equal(scenario.warmupSec, 0.5);
    assert.equal(parseSeconds('2m'), 120);
    assert.ok(Number.isNaN(parseSeconds('ten')));
  });

  it('lower-cases header names and upper-cases the method', () => {
    const scenario = parse({ method: 'post', bodySize: 10, headers: { 'X-Api-Key': 'abc', Accept: 'application/json' } });
    assert.equal(scenario.method, 'POST');
    assert.deepEqual(scenario.headers, { 'x-api-key': 'abc', accept: 'application/json' });
  });

  it('https scenarios: tls only for lobby and nginx; a new connection per request sends Connection: close', () => {
    const https = parse({ tls: true, newConnectionPerRequest: true });
    assert.equal(https.tls, true);
    assert.equal(https.headers.connection, 'close');
    assert.equal(parse({}).tls, false);
    assert.throws(() => parse({ tls: true, targets: ['lobby', 'haproxy'] }), /targets\[1\] haproxy has no HTTPS setup/);
    assert.throws(() => parse({ tls: 'yes' }), /tls must be true or false/);
    assert.throws(() => parse({ newConnectionPerRequest: true, pipelining: 4 }), /cannot be combined with pipelining/);
  });

  it('names the offending key in every error', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ conections: 10 }, /conections is not a scenario key/],
      [{ connections: 0 }, /connections must be an integer >= 1/],
      [{ connections: 1.5 }, /connections must be an integer/],
      [{ duration: 'soon' }, /duration must be a number of seconds/],
      [{ method: 'BREW' }, /method must be one of/],
      [{ path: 'no-slash' }, /path must start with "\/"/],
      [{ bodySize: 100 }, /bodySize must be 0 for GET/],
      [{ headers: { 'content-length': '5' } }, /headers.content-length is set by the driver/],
      [{ headers: { 'x-bad': 'a\r\nb' } }, /headers.x-bad must not contain CR, LF or NUL/],
      [{ headers: { 'bad header': 'x' } }, /not a valid header name/],
      [{ rate: -5 }, /rate must be a positive number/],
      [{ targets: ['envoy'] }, /targets\[0\] must be one of lobby, nginx/],
      [{ lobby: [1] }, /lobby must be a mapping/],
      [{ nginx: { server: 'x' } }, /nginx.server is not known/],
      [{ soak: { checkpoints: [10] } }, /soak.checkpoints must list at least two/],
      [{ soak: { checkpoints: [10, 5] } }, /soak.checkpoints\[1\] must be an integer larger/],
      [{ name: 'a/b' }, /name may only contain/],
      ['just a string', /must be a mapping/],
    ];
    for (const [raw, message] of cases) {
      assert.throws(() => parse(raw), (error: unknown) => error instanceof ScenarioError && message.test(error.message), `expected ${message} for ${JSON.stringify(raw)}`);
    }
  });

  it('parses the soak section with its default growth limit', () => {
    const scenario = parse({ soak: { checkpoints: [200000, 2000000] } });
    assert.deepEqual(scenario.soak, { checkpoints: [200000, 2000000], maxGrowth: 0.1 });
  });

  it('loads every shipped scenario, including the ones the issue requires', () => {
    const names = readdirSync(SCENARIO_DIR).filter((file) => /\.(ya?ml|json)$/.test(file)).map((file) => file.replace(/\.(ya?ml|json)$/, ''));
    for (const required of ['proxy', 'post-16k', 'download-1m', 'soak']) assert.ok(names.includes(required), `${required} scenario missing`);
    for (const name of names) {
      const scenario = loadScenario(name);
      assert.equal(scenario.name, name, `scenario file ${name} should be named after its file`);
    }
    assert.equal(loadScenario('post-16k').bodySize, 16384);
    assert.equal(loadScenario('download-1m').path, '/1m');
    assert.deepEqual(loadScenario('soak').soak?.checkpoints, [200000, 2000000]);
  });

  it('reports unknown scenarios with the directory searched', () => {
    assert.throws(() => loadScenario('no-such-scenario'), /unknown scenario "no-such-scenario"/);
  });
});
