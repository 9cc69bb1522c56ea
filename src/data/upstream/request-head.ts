// The one place where a request becomes upstream bytes.
//
// Both upstream clients send only what passes `isSendable`: a token method, a request-target
// of visible ASCII, header names that are tokens and values that are byte strings without
// CR, LF, NUL or other controls (src/shared/http-syntax.ts). That covers every header, the
// client's (collected by front-door.ts) and the gateway's own (Host, X-Forwarded-*, the
// correlation id, identity headers from token claims, Content-Length). The purpose-built
// client gets its head from `encodeRequestHead`; undici gets the same checked parts and
// writes them itself (as 'latin1', which is exact for byte strings).
import { isFieldValueBytes, isHeaderName, isVisibleAsciiTarget } from '../../shared/http-syntax.js';

/** Whether method, target and every header may be written to an upstream as they are. */
export function isSendable(method: string, target: string, headers: readonly string[]): boolean {
  if (!isHeaderName(method) || !isVisibleAsciiTarget(target)) return false;
  for (let i = 0; i < headers.length; i += 2) {
    if (!isHeaderName(headers[i]) || !isFieldValueBytes(headers[i + 1])) return false;
  }
  return true;
}

/**
 * A request head that encodeRequestHead checked: a byte string (every character one byte,
 * at most 0xFF), so writing it with the 'latin1' encoding sends exactly these bytes. The
 * brand costs nothing at run time; it keeps any other string from being written as a head.
 */
export type RequestHead = string & { readonly __checkedRequestHead: true };

/**
 * The HTTP/1.1 request head, or null when any part may not be sent (see isSendable).
 * `headers` is a flat [name, value, ...] list of byte strings, Host included.
 * A string, not a Buffer: Node writes a 'latin1' string to the socket without a JS-side
 * copy (a Buffer.from here cost 0.4 µs per request), and the check above makes that write
 * exact: it can neither drop nor invent a byte.
 */
export function encodeRequestHead(method: string, target: string, headers: readonly string[]): RequestHead | null {
  if (!isSendable(method, target, headers)) return null;
  let head = method + ' ' + target + ' HTTP/1.1\r\n';
  for (let i = 0; i < headers.length; i += 2) head += headers[i] + ': ' + headers[i + 1] + '\r\n';
  return (head + '\r\n') as RequestHead;
}
