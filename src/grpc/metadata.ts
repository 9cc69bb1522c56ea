// gRPC metadata syntax (grpc/grpc doc/PROTOCOL-HTTP2.md, "Custom-Metadata"): what a request
// may carry upstream as metadata, and what a -bin value is. The one place these rules live:
// compile.ts checks the configured names with them, client.ts every pair where it writes it.

/** Header-Name: lower case [0-9a-z_.-] (no pseudo-headers, no upper case). */
const METADATA_NAME = /^[0-9a-z_.-]+$/;
/** ASCII-Value: printable ASCII (no CR, LF, NUL or other controls, nothing above 0x7E). */
const ASCII_VALUE = /^[\x20-\x7e]*$/;
/**
 * Binary-Value as it travels: base64 (RFC 4648 §4), padded or not, as the spec says a receiver
 * must take both. Groups of four, then a last group of two or three characters, with its
 * padding or without; its pad bits zero (the canonical form, the only one an encoder writes: a
 * value two strings could stand for is refused). Nothing else: no whitespace, no URL-safe
 * alphabet, no padding in the middle or more than the group needs.
 */
const BASE64_VALUE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw](?:==)?|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=?)?$/;
/** Names the client writes itself, or that HTTP/2 forbids (RFC 9113 §8.2.2). */
const RESERVED_NAMES = new Set(['content-type', 'te', 'user-agent', 'host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings']);

/** Whether `value` is a -bin metadata value as the spec allows it on the wire. */
export function isBinaryMetadataValue(value: string): boolean {
  return BASE64_VALUE.test(value);
}

/** Why `name` (lower case) cannot be custom metadata, or null when it can. */
export function metadataNameProblem(name: string): string | null {
  if (!METADATA_NAME.test(name)) return 'is not a gRPC metadata name (lower-case letters, digits, "_", "." and "-" only)';
  if (name.startsWith('grpc-')) return 'is a grpc-* name, which gRPC reserves for itself';
  if (RESERVED_NAMES.has(name)) return 'is a header the gRPC client writes itself, or that HTTP/2 forbids';
  if (name === '__proto__') return 'cannot be used';
  return null;
}

/** Whether [name, value] may go upstream as custom metadata: a name metadataNameProblem
 * accepts, and an ASCII-Value, or for a -bin name a Binary-Value as it travels. */
export function isCustomMetadata(name: string, value: string): boolean {
  if (metadataNameProblem(name) !== null) return false;
  return name.endsWith('-bin') ? BASE64_VALUE.test(value) : ASCII_VALUE.test(value);
}
