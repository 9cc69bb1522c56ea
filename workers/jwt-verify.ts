// The piscina task of the verification pool (src/data/auth/verify-pool.ts): verifies a batch
// of tokens with node:crypto (src/data/auth/jwt.ts; the fastest verifier for every algorithm,
// see docs/performance.md) against the bundle the task names, and returns the claims the
// gateway needs (identity headers, scopes, exp) or a coded refusal. Synchronous: a
// signature check is tens of microseconds of CPU, nothing to await.
import { TokenVerifier, type VerifyResult } from '../src/data/auth/jwt.js';
import { decodeBundle, type VerifyTask } from '../src/data/auth/verify-pool.js';

/** Bundles this thread has decoded, by id (a handful live at a time: one per provider and key set). */
const verifiers = new Map<number, TokenVerifier>();
const MAX_VERIFIERS = 64;
const testHooks = process.env.LOBBY_TEST_HOOKS === '1';

function verifierFor(task: VerifyTask): TokenVerifier {
  let v = verifiers.get(task.bundle);
  if (v === undefined) {
    const { spec, keys } = decodeBundle(task.data);
    v = new TokenVerifier(spec, keys);
    if (verifiers.size >= MAX_VERIFIERS) verifiers.delete(verifiers.keys().next().value!);
    verifiers.set(task.bundle, v);
  }
  return v;
}

export default function verify(task: VerifyTask): VerifyResult[] {
  const verifier = verifierFor(task);
  const now = Date.now();
  const results = new Array<VerifyResult>(task.tokens.length);
  for (let i = 0; i < task.tokens.length; i++) {
    results[i] = verifier.verify(task.tokens[i], now);
    if (testHooks) testDelay(task.tokens[i]);
  }
  return results;
}

/** Test hook (LOBBY_TEST_HOOKS=1 only): a `lobby_test_delay_ms` claim makes this task that slow. */
function testDelay(token: string): void {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
    const ms = payload.lobby_test_delay_ms;
    if (typeof ms !== 'number' || ms <= 0) return;
    const until = performance.now() + Math.min(ms, 10_000);
    while (performance.now() < until) { /* busy: a slow verification */ }
  } catch {
    // not a test token
  }
}
