// `lobby hash-key` as an operator runs it: a real `node dist/src/main.js` process; what it
// prints is what consumers[].keys[].hash takes (the compiled table finds the key by it).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { MAIN_JS } from '../helpers/gateway.js';
import { compileConfig } from '../../src/control/compile.js';
import { ConsumerTable } from '../../src/filters/key-auth/consumer-table.js';

function hashKey(args: string[], stdin: string | Buffer | null): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [MAIN_JS, 'hash-key', ...args], { stdio: [stdin === null ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  if (stdin !== null) proc.stdin!.end(stdin);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error('lobby hash-key did not exit in 20 s')); }, 20_000);
    proc.once('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

const KEY = 'clé-0123456789abcdef';
const EXPECTED = `sha256:${createHash('sha256').update(KEY, 'utf8').digest('hex')}\n`;

test('lobby hash-key reads the key from stdin (one trailing newline dropped) or an argument, prints sha256:<hex>', async () => {
  assert.deepEqual(await hashKey([], `${KEY}\n`), { code: 0, stdout: EXPECTED, stderr: '' });
  assert.deepEqual(await hashKey([], `${KEY}\r\n`), { code: 0, stdout: EXPECTED, stderr: '' });
  assert.deepEqual(await hashKey([KEY], null), { code: 0, stdout: EXPECTED, stderr: '' });
  // Trailing spaces are part of a key: only the newline is not.
  const spaced = `sha256:${createHash('sha256').update(`${KEY} `, 'utf8').digest('hex')}\n`;
  assert.deepEqual(await hashKey([], `${KEY} \n`), { code: 0, stdout: spaced, stderr: '' });
  // Bytes that are not UTF-8 (a latin1 é) are hashed as they are, as the filter hashes a header's bytes.
  const latin1 = Buffer.from('cl\xe9-0123456789abcdef', 'latin1');
  const raw = `sha256:${createHash('sha256').update(latin1).digest('hex')}\n`;
  assert.deepEqual(await hashKey([], Buffer.concat([latin1, Buffer.from('\n')])), { code: 0, stdout: raw, stderr: '' });
});

test('lobby hash-key refuses an empty key (1) and two keys or flags (usage, 2)', async () => {
  const empty = await hashKey([], '\n');
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /the key is empty/);
  assert.equal((await hashKey(['a', 'b'], null)).code, 2);
  assert.equal((await hashKey(['--config', 'x.yaml', 'a'], null)).code, 2);
});

test('what lobby hash-key prints is what the config takes: the key then finds its consumer', async () => {
  const hash = (await hashKey([], KEY)).stdout.trim();
  const compiled = compileConfig({
    services: { s: { targets: ['http://127.0.0.1:9'] } },
    consumers: [{ name: 'c', keys: [{ id: 'k', hash }] }],
    routes: [{ name: 'r', match: { prefix: '/' }, service: 's', key_auth: {} }],
  }, 'test.yaml');
  const found = new ConsumerTable(compiled.consumers!).lookup(KEY);
  assert.ok(typeof found === 'object' && found.name === 'c');
});
