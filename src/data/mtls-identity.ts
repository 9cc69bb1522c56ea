// The verified client certificate as header values (server.tls.client_auth.headers), made
// once per TLS connection. A certificate's names may hold any character (commas, quotes,
// UTF-8, even control characters), and a header value may not, so every value is the
// certificate's text with `%`, the control characters, DEL and every non-ASCII byte
// percent-encoded from its UTF-8: the value is then visible ASCII and spaces only.
// Decoding is percent-decoding (UTF-8), then parsing the subject as RFC 4514.
import type { X509Certificate } from 'node:crypto';
import { isFieldValueBytes } from '../shared/http-syntax.js';
import type { ClientPeer } from '../shared/tls-config.js';

const HEX = '0123456789ABCDEF';
const NEEDS_ESCAPE = /[^\x20-\x24\x26-\x7e]/;

/** `s` with `%`, controls, DEL and non-ASCII percent-encoded from UTF-8 (ASCII-safe text as is). */
export function headerSafe(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return s;
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : '%' + HEX[byte >> 4] + HEX[byte & 15];
  }
  return out;
}

/**
 * The subject as an RFC 4514 string: most specific RDN first (`CN=alice,O=Acme,C=DE`).
 * Node prints one RDN per line in certificate order, with RFC 2253 escapes (`\,` `\+` `\"`
 * `\\` `\<` `\>` `\;`, a leading `#` or space, a trailing space) and control characters as
 * `\XX`, so a line break only ever separates RDNs.
 */
export function rfc4514Subject(cert: X509Certificate): string {
  return cert.subject.split('\n').reverse().join(',');
}

/** The peer of a TLS connection: its address and (when it sent one) the certificate's identity. */
export function clientPeer(clientIp: string, cert: X509Certificate | undefined): ClientPeer {
  if (cert === undefined) return { clientIp, subject: null, san: null, fingerprint: null };
  const peer: ClientPeer = {
    clientIp,
    subject: headerSafe(rfc4514Subject(cert)),
    san: cert.subjectAltName === undefined ? null : headerSafe(cert.subjectAltName),
    fingerprint: cert.fingerprint256.replace(/:/g, '').toLowerCase(),
  };
  // By construction; checked anyway, as everything that becomes header bytes is.
  for (const v of [peer.subject, peer.san, peer.fingerprint]) {
    if (v !== null && !isFieldValueBytes(v)) throw new Error('client certificate identity is not a header value');
  }
  return peer;
}
