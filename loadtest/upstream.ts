// The static upstream both proxies forward to: nginx (`return 200`, the cheapest possible upstream) when
// installed, else a uWebSockets.js server in a child process. It shares a core with the load driver.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LARGE_BODY_PATH, largeBody } from './upstream-content.js';
import { startNginx, upstreamNginxConfig } from './nginx.js';
import { waitForHttp, type ManagedProcess, type ProcessGroup } from './processes.js';

export type UpstreamKind = 'nginx' | 'uws';

export interface RunningUpstream {
  kind: UpstreamKind;
  host: string;
  port: number;
  url: string;
  process: ManagedProcess;
}

export interface UpstreamOptions {
  kind: UpstreamKind;
  host: string;
  port: number;
  cpu: number | null;
  workDir: string;
  nginxBinary: string | null;
}

const UWS_UPSTREAM_ENTRY = fileURLToPath(new URL('./upstream-uws.js', import.meta.url));

export async function startUpstream(group: ProcessGroup, options: UpstreamOptions): Promise<RunningUpstream> {
  let upstream: ManagedProcess;
  if (options.kind === 'nginx') {
    if (!options.nginxBinary) throw new Error('nginx upstream requested but nginx is not installed');
    const staticDir = join(options.workDir, 'static');
    mkdirSync(staticDir, { recursive: true, mode: 0o755 });
    writeFileSync(join(staticDir, LARGE_BODY_PATH.slice(1)), largeBody(), { mode: 0o644 });
    const config = upstreamNginxConfig({ workDir: options.workDir, port: options.port, staticDir });
    upstream = startNginx(group, options.nginxBinary, 'upstream', options.workDir, config, options.cpu);
  } else {
    upstream = group.spawn('upstream (uWebSockets.js)', process.execPath, [UWS_UPSTREAM_ENTRY, String(options.port)], { cpu: options.cpu });
  }
  await waitForHttp(options.host, options.port, upstream, 10_000);
  return { kind: options.kind, host: options.host, port: options.port, url: `http://${options.host}:${options.port}`, process: upstream };
}
