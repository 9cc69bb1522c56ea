// Starts loadtest/upstream-grpc.ts for a scenario with `grpc: true`; the scenario's `lobby`
// overlay reaches it through the `${grpc}` placeholder (host:port).
import { fileURLToPath } from 'node:url';
import { isPortOpen, sleep, type ManagedProcess, type ProcessGroup } from './processes.js';

export const GRPC_PLACEHOLDER = '${grpc}';

export interface RunningGrpc { address: string; process: ManagedProcess }

export async function startGrpcUpstream(group: ProcessGroup, host: string, port: number, cpu: number | null): Promise<RunningGrpc> {
  const script = fileURLToPath(new URL('./upstream-grpc.js', import.meta.url));
  const process_ = group.spawn('grpc-upstream', process.execPath, [script, host, String(port)], { cpu });
  const deadline = Date.now() + 15_000;
  while (!(await isPortOpen(host, port))) {
    if (!process_.running) throw new Error(`the gRPC upstream exited during start:\n${process_.outputTail()}`);
    if (Date.now() > deadline) throw new Error(`the gRPC upstream did not listen on ${host}:${port} in 15 s`);
    await sleep(50);
  }
  return { address: `${host}:${port}`, process: process_ };
}
