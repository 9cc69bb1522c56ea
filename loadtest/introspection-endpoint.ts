// The RFC 7662 introspection endpoint of scenarios with `introspection: true` (run as its own
// process: node dist/loadtest/introspection-endpoint.js HOST PORT). It answers every POST with
// one active token's response; the scenario's Lobby overlay reaches it through the
// `${introspection}` placeholder (its URL). The load test repeats one token, so Lobby calls it
// once per run (then answers from its caches): the real authorization server of the tests
// (oidc-provider, test/helpers/oauth-server.ts) is not needed here.
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { isPortOpen, sleep, type ManagedProcess, type ProcessGroup } from './processes.js';

export const INTROSPECTION_PLACEHOLDER = '${introspection}';

/** What the endpoint answers: active until 2100, with the scenario's audience and scopes. */
export const INTROSPECTION_RESPONSE = JSON.stringify({
  active: true, iss: 'https://auth.bench.test', aud: 'bench', sub: 'bench-user', client_id: 'bench-client',
  scope: 'bench:read bench:write', token_type: 'Bearer', exp: 4102444800,
});

export interface RunningIntrospection { url: string; process: ManagedProcess }

export async function startIntrospectionEndpoint(group: ProcessGroup, host: string, port: number, cpu: number | null): Promise<RunningIntrospection> {
  const script = fileURLToPath(import.meta.url);
  const process_ = group.spawn('introspection', process.execPath, [script, host, String(port)], { cpu });
  const deadline = Date.now() + 15_000;
  while (!(await isPortOpen(host, port))) {
    if (!process_.running) throw new Error(`the introspection endpoint exited during start:\n${process_.outputTail()}`);
    if (Date.now() > deadline) throw new Error(`the introspection endpoint did not listen on ${host}:${port} in 15 s`);
    await sleep(50);
  }
  return { url: `http://${host}:${port}/introspect`, process: process_ };
}

/** The overlay with `${introspection}` replaced by the endpoint's URL. */
export function withIntrospectionUrl(overlay: Record<string, unknown>, url: string | null): Record<string, unknown> {
  if (url === null) return overlay;
  return JSON.parse(JSON.stringify(overlay).split(INTROSPECTION_PLACEHOLDER).join(url)) as Record<string, unknown>;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [host, port] = [process.argv[2], Number(process.argv[3])];
  let calls = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      calls++;
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(INTROSPECTION_RESPONSE);
    });
  });
  server.listen(port, host);
  process.on('SIGTERM', () => { console.log(`introspection calls: ${calls}`); process.exit(0); });
}
