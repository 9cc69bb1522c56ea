// The one error type of the proto3 JSON codec. The message names what was expected at a field
// path and never quotes the offending value: request bodies may carry secrets, and an error body
// that echoes client text is a reflection vector.

export class ProtoJsonError extends Error {
  /** Dotted path of the field in error, in the names the client used ("book.author.name",
   * "shelves[2].id", "labels[\"k\"]" is never produced: map keys show as "labels[]").
   * Empty for errors of the JSON text itself. */
  readonly fieldPath: string;

  constructor(fieldPath: string, message: string) {
    super(fieldPath === '' ? message : `${fieldPath}: ${message}`);
    this.name = 'ProtoJsonError';
    this.fieldPath = fieldPath;
  }
}

/** Nesting bound for JSON text and for messages, both ways (protobuf's own parsers use 100). */
export const MAX_DEPTH = 100;

export function childPath(path: string, name: string): string {
  return path === '' ? name : `${path}.${name}`;
}

/** A client-supplied key, shown in an error only when it looks like a field name. */
export function safeName(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(key) ? key : '<invalid name>';
}
