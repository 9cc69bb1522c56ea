// A real nginx (Debian's nginx-light) as an upstream for tests: runs in the foreground as our
// child on a temp config (`-p dir -c conf -g 'daemon off; ...'`, as loadtest/nginx.ts does),
// with everything it writes inside the temp dir. Used where the test must see how nginx itself
// resolves a path (its `$uri` is the decoded, normalized path).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export const NGINX = process.env.LOBBY_TEST_NGINX ?? '/usr/sbin/nginx';

/** Why nginx tests cannot run here, or false (under CI a missing nginx is a failure, not a skip). */
export const NGINX_MISSING: string | false = existsSync(NGINX) || process.env.CI
  ? false
  : `nginx not found at ${NGINX} (apt-get install nginx-light, or set LOBBY_TEST_NGINX)`;

export interface Nginx {
  readonly port: number;
  readonly origin: string;
  /** Everything nginx wrote to stderr so far. */
  stderr(): string;
  /** Stops nginx (SIGTERM, SIGKILL after 5 s) and removes its temp dir; idempotent. */
  stop(): Promise<void>;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => resolve(false));
  });
}

/** Starts nginx with one `server` whose body (locations, directives) is `serverBody`. */
export async function startNginx(serverBody: string): Promise<Nginx> {
  const dir = await mkdtemp(join(tmpdir(), 'lobby-nginx-'));
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  const temp = (name: string) => `${name}_temp_path ${join(dir, name)};`;
  await writeFile(conf, `worker_processes 1;
events { worker_connections 256; }
http {
    access_log off;
    ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}
    server {
        listen 127.0.0.1:${port};
        default_type text/plain;
${serverBody}
    }
}
`);
  // -e stderr: the start-up error log, otherwise opened in /var/log/nginx before the config is read.
  const proc = spawn(NGINX, ['-e', 'stderr', '-p', dir, '-c', conf, '-g', `daemon off; pid ${join(dir, 'nginx.pid')}; error_log stderr;`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  let exited = false;
  const gone = new Promise<void>((resolve) => proc.once('exit', () => { exited = true; resolve(); }));
  const stop = async () => {
    if (!exited) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  while (!(await accepts(port))) {
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`nginx did not listen on ${port}:\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 30));
  }
  return { port, origin: `http://127.0.0.1:${port}`, stderr: () => err, stop };
}
