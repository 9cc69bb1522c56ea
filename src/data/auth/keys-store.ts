// The key sets of JWKS providers in this worker, as pushed by the control plane's JWKS
// manager (src/control/jwks.ts) in `keys` messages: one fetch per instance, not per thread.
// Providers subscribe by URI. A worker asks for a refetch (unknown `kid`) with one message at
// a time per URI, and not while the control plane's cooldown holds: every `keys` message says
// how much of it is left (`refetchInMs`), so worker and control plane agree on when the next
// unknown kid may cause a fetch (at once after a start-up or scheduled fetch, which start no
// cooldown; refetch_cooldown_s after a kid-triggered one).
import type { Jwk } from '../../shared/auth-config.js';
import type { FromWorker } from '../../shared/messages.js';

export interface KeySet {
  /** Bumped by the control plane whenever the set changes; 0 = never fetched. */
  version: number;
  keys: Jwk[] | null;
}

type Listener = (set: KeySet) => void;

interface UriState {
  set: KeySet;
  listeners: Set<Listener>;
  /** A refetch was asked for and not answered yet. */
  outstanding: boolean;
  /** performance.now() before which no refetch is asked for (the control plane's cooldown). */
  askAfter: number;
}

const NO_KEYS: KeySet = { version: 0, keys: null };
const byUri = new Map<string, UriState>();

function stateOf(uri: string): UriState {
  let s = byUri.get(uri);
  if (s === undefined) {
    s = { set: NO_KEYS, listeners: new Set(), outstanding: false, askAfter: -Infinity };
    byUri.set(uri, s);
  }
  return s;
}

/** A `keys` message from the control plane (also the answer to a refetch request). */
export function receiveKeys(uri: string, version: number, keys: Jwk[] | null, refetchInMs: number, nowMs = performance.now()): void {
  const s = stateOf(uri);
  if (version >= s.set.version) s.set = { version, keys };
  s.outstanding = false;
  s.askAfter = nowMs + refetchInMs;
  for (const listener of [...s.listeners]) listener(s.set);
}

export function keySetOf(uri: string): KeySet {
  return stateOf(uri).set;
}

/** Calls `listener` on every `keys` message for `uri`; returns the unsubscribe function. */
export function subscribeKeys(uri: string, listener: Listener): () => void {
  const s = stateOf(uri);
  s.listeners.add(listener);
  return () => s.listeners.delete(listener);
}

/**
 * Asks the control plane to refetch `uri` now, unless its last answer said the cooldown
 * holds. True when an answer (a `keys` message) is on its way: the caller may wait for it;
 * false when the cooldown refuses a new request.
 */
export function requestRefetch(uri: string, post: (msg: FromWorker) => void, nowMs = performance.now()): boolean {
  const s = stateOf(uri);
  if (s.outstanding) return true;
  if (nowMs < s.askAfter) return false;
  s.outstanding = true;
  post({ type: 'jwks-refetch', uri });
  return true;
}

/**
 * Forgets an unanswered request (the control plane did not answer in time) and asks no more
 * for `cooldownMs`: a lost answer must not turn every unknown kid into a message.
 */
export function abandonRefetch(uri: string, cooldownMs: number, nowMs = performance.now()): void {
  const s = stateOf(uri);
  s.outstanding = false;
  s.askAfter = nowMs + cooldownMs;
}

/** Tests: forget everything. */
export function resetKeyStore(): void {
  byUri.clear();
}
