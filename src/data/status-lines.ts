// Status lines ("404 Not Found") built once, so a reply never concatenates one.
import { STATUS_CODES } from 'node:http';

const lines: string[] = [];
const phrases: string[] = [];
for (let code = 100; code < 600; code++) {
  const phrase = STATUS_CODES[code] ?? 'Unknown';
  phrases[code] = phrase;
  lines[code] = `${code} ${phrase}`;
}

/** Status line for a code with its standard reason phrase. */
export function statusLine(code: number): string {
  return lines[code] ?? `${code} Unknown`;
}

/**
 * Status line keeping an upstream's own reason phrase when it is safe to forward
 * (visible ASCII and spaces only), the standard phrase otherwise.
 */
export function upstreamStatusLine(code: number, phrase: string | undefined): string {
  if (!phrase || phrase === phrases[code]) return statusLine(code);
  for (let i = 0; i < phrase.length; i++) {
    const c = phrase.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c > 0x7e) return statusLine(code);
  }
  return `${code} ${phrase}`;
}
