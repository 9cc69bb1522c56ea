// The one place where a request becomes upstream bytes.
//
// Both upstream clients send only what passes `isSendable`: a token method, a request-target
// of visible ASCII, header names that are tokens and values that are byte strings without
// CR, LF, NUL or other controls (src/shared/http-syntax.ts). That covers every header, the
// client's (collected by front-door.ts) and the gateway's own (Host, X-Forwarded-*, the
// correlation id, identity headers from token claims, Content-Length). The purpose-built
// client gets its head from `encodeRequestHead`; undici gets the same checked parts and
// writes them itself (as 'latin1', which is exact for byte strings).
import { isFieldValueBytes, isToken, isVisibleAsciiTarget } from '../../shared/http-syntax.js';

/** Whether method, target and every header may be written to an upstream as they are. */
export function isSendable(method: string, target: string, headers: readonly string[]): boolean {
  if (!isToken(method) || !isVisibleAsciiTarget(target)) return false;
  for (let i = 0; i < headers.length; i += 2) {
    if (!isToken(headers[i]) || !isFieldValueBytes(headers[i + 1])) return false;
  }
  return true;
}

/**
 * The HTTP/1.1 request head as bytes, or null when any part may not be sent (see
 * isSendable). `headers` is a flat [name, value, ...] list of byte strings, Host included.
 * Every character was checked to be one byte (<= 0xFF), so the 'latin1' write below is
 * exact: it can neither drop nor invent a byte.
 */
export function encodeRequestHead(method: string, target: string, headers: readonly string[]): Buffer | null {
  if (!isSendable(method, target, headers)) return null;
  let head = method + ' ' + target + ' HTTP/1.1\r\n';
  for (let i = 0; i < headers.length; i += 2) head += headers[i] + ': ' + headers[i + 1] + '\r\n';
  head += '\r\n';
  return Buffer.from(head, 'latin1');
}
