// What a data-plane worker does besides serving, for parts that keep per-worker state
// outside a generation (the access log's open files, the trace exporter's batch): they
// register here when first built, and workers/data-plane.ts runs the hooks on `drain` (before
// the worker exits: nothing buffered is lost), on `reopen-logs` (SIGUSR1, logrotate) and on a
// fatal error (synchronous, best effort). Registering costs nothing per request.
type AsyncHook = () => Promise<void>;
type SyncHook = () => void;

const drainHooks = new Set<AsyncHook>();
const reopenHooks = new Set<SyncHook>();
const fatalHooks = new Set<SyncHook>();

export function onWorkerDrain(hook: AsyncHook): void { drainHooks.add(hook); }
export function onWorkerReopenLogs(hook: SyncHook): void { reopenHooks.add(hook); }
export function onWorkerFatal(hook: SyncHook): void { fatalHooks.add(hook); }

/** After the last request ended: flush what is buffered. A failing hook does not stop the others. */
export async function runDrainHooks(): Promise<void> {
  await Promise.all([...drainHooks].map((hook) => hook().catch(() => {})));
}

export function runReopenHooks(): void {
  for (const hook of reopenHooks) { try { hook(); } catch { /* reported by the hook's owner */ } }
}

export function runFatalHooks(): void {
  for (const hook of fatalHooks) { try { hook(); } catch { /* exiting anyway */ } }
}
