// Process lifecycle: a crashed worker is replaced while the others serve; SIGTERM drains
// in-flight requests and exits 0; the CLI refuses bad configs and the uWS fallback.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { Agent, request } from 'undici';
import { MAIN_JS, startGateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { freePort } from '../helpers/ports.js';

let up: Upstream;

before(async () => {
  up = await startUpstream('up', (req, res) => {
    const delay = Number(new URL(req.url!, 'http://x').searchParams.get('delay') ?? '0');
    setTimeout(() => res.end(`done after ${delay}`), delay);
  });
});

after(async () => {
  await up?.close();
});

function config(workers: number, extra = '') {
  return `
server: { host: 127.0.0.1, port: __PORT__, workers: ${workers}, drain_timeout_ms: 5000 }
services: { up: { targets: ["${up.origin}"] } }
routes: [ { name: all, match: { prefix: / }, service: up } ]
${extra}`;
}

/** A request on a fresh connection (so SO_REUSEPORT may pick any worker). */
async function fresh(url: string) {
  const agent = new Agent({ pipelining: 0 });
  try {
    const res = await request(url, { dispatcher: agent, headers: { connection: 'close' } });
    return { status: res.statusCode, text: await res.body.text() };
  } finally {
    await agent.close();
  }
}

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [MAIN_JS, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('worker faults', () => {
  it('replaces a crashed worker while the others keep serving', async () => {
    const gw = await startGateway(config(2), { env: { LOBBY_TEST_HOOKS: '1' } });
    try {
      await request(gw.url + '/crash', { headers: { 'x-lobby-test-crash': '1' } }).then((r) => r.body.dump(), () => undefined);
      // Once the crashed worker is gone (its sockets closed), every request succeeds on the
      // other worker, while the replacement starts and after it joins. (Connections the
      // kernel handed the crashing worker in its last milliseconds die with it.)
      const gone = Date.now() + 5000;
      while (!gw.stderr().includes('starting a replacement') && Date.now() < gone) await new Promise((r) => setTimeout(r, 10));
      let ok = 0;
      let lastError = '';
      for (let i = 0; i < 40; i++) {
        const r = await fresh(gw.url + '/after').catch((e: Error) => { lastError = String(e); return { status: 0, text: '' }; });
        if (r.status === 200) ok++;
      }
      assert.equal(ok, 40, `${ok}/40 requests succeeded after the crash; ${lastError}\n${gw.stderr()}`);
      const deadline = Date.now() + 5000;
      while (!gw.stderr().includes('data-plane worker replaced') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.match(gw.stderr(), /data-plane worker fault/);
      assert.match(gw.stderr(), /data-plane worker replaced/);
      for (let i = 0; i < 20; i++) assert.equal((await fresh(gw.url + '/later')).status, 200);
      assert.equal(gw.proc.exitCode, null, 'the process is still running');
    } finally {
      await gw.stop();
    }
  });
});

describe('request faults', () => {
  it('a throw in the request handler answers 500 with the correlation id, which the fault log line carries', async () => {
    const gw = await startGateway(config(1), { env: { LOBBY_TEST_HOOKS: '1' } });
    try {
      const r = await request(gw.url + '/fault', { headers: { 'x-lobby-test-fault': '1', 'x-correlation-id': 'fault-trace-42' } });
      assert.equal(r.statusCode, 500);
      assert.equal(r.headers['x-correlation-id'], 'fault-trace-42');
      assert.match(await r.body.text(), /"code":"internal_error".*"correlation_id":"fault-trace-42"/);
      const deadline = Date.now() + 5000;
      while (!gw.stderr().includes('request handler fault') && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
      const line = gw.stderr().split('\n').find((l) => l.includes('request handler fault'));
      assert.ok(line, gw.stderr());
      assert.equal(JSON.parse(line).correlation_id, 'fault-trace-42');
      assert.equal((await fresh(gw.url + '/after')).status, 200, 'the worker still serves');
    } finally {
      await gw.stop();
    }
  });
});

describe('SIGTERM', () => {
  it('finishes in-flight requests, refuses new connections, exits 0', async () => {
    const gw = await startGateway(config(2));
    const inFlight = request(gw.url + '/slow?delay=800').then(async (r) => ({ status: r.statusCode, text: await r.body.text() }));
    await new Promise((r) => setTimeout(r, 150));
    const t0 = Date.now();
    gw.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    const refused = await fresh(gw.url + '/new').then(() => false, () => true);
    const done = await inFlight;
    assert.equal(done.status, 200);
    assert.equal(done.text, 'done after 800');
    const code = await gw.stop();
    assert.equal(code, 0);
    assert.ok(refused, 'a new connection during the drain was refused');
    assert.ok(Date.now() - t0 < 5000);
  });

  it('finishes a request that was still sending its body when SIGTERM came', async () => {
    const gw = await startGateway(config(1));
    const sock = connect(gw.port, '127.0.0.1');
    let answer = '';
    sock.on('data', (d) => { answer += d.toString('latin1'); });
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    sock.write('POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345');
    await new Promise((r) => setTimeout(r, 150));
    gw.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    sock.write('67890');
    const code = await gw.stop();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
    sock.destroy();
    assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(answer.endsWith('done after 0'), answer);
    assert.equal(code, 0);
  });

  it('exits 0 at the drain deadline even when a request is still running', async () => {
    const gw = await startGateway(config(1).replace('drain_timeout_ms: 5000', 'drain_timeout_ms: 300'));
    const inFlight = request(gw.url + '/stuck?delay=10000').then((r) => r.statusCode, () => 'closed');
    await new Promise((r) => setTimeout(r, 150));
    const t0 = Date.now();
    gw.proc.kill('SIGTERM');
    const code = await gw.stop();
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 4000, `stopped after ${Date.now() - t0} ms`);
    assert.equal(await inFlight, 'closed');
  });
});

describe('CLI', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'lobby-cli-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('lobby --help documents start and check', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /lobby start/);
    assert.match(r.stdout, /lobby check/);
  });

  it('lobby check prints the route table of the demo config', async () => {
    const r = await run(['check', '--config', 'config/gateway.yaml']);
    assert.equal(r.code, 0, r.stderr);
    for (const name of ['users', 'user-v2', 'orders', '/v1/users', '/v2/users/{id}', 'api.example.com']) assert.ok(r.stdout.includes(name), name);
  });

  it('lobby check and start exit 1 listing every error with file and key path', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, `
server: { port: 8080, colour: blue }
services: { s: { targets: ["http://127.0.0.1:1"] } }
routes:
  - { name: r, match: { prefix: v1 }, service: s }
`);
    for (const cmd of ['check', 'start']) {
      const r = await run([cmd, '--config', file]);
      assert.equal(r.code, 1, cmd);
      assert.ok(r.stderr.includes(`${file}`), r.stderr);
      assert.match(r.stderr, /server\.colour/);
      assert.match(r.stderr, /routes\[0\]\.match\.prefix/);
    }
  });

  it('refuses to start on the pure-JS uWebSockets.js fallback', async () => {
    // On a free port: the port probe runs first, and 8080 may be taken on this machine.
    const dir = await mkdtemp(join(tmpdir(), 'lobby-fallback-'));
    try {
      const file = join(dir, 'gateway.yaml');
      await writeFile(file, `server: { host: 127.0.0.1, port: ${await freePort()} }\nservices: { up: { targets: ["${up.origin}"] } }\nroutes: [ { name: all, match: { prefix: / }, service: up } ]\n`);
      const r = await run(['start', '--config', file], { UWS_USE_FALLBACK: '1' });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /native uWebSockets\.js/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
