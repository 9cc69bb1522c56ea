// The one error type of the proto3 JSON codec. The message names what was expected at a field
// path and never quotes the offending value: request bodies may carry secrets, and an error body
// that echoes client text is a reflection vector.

/** What kind of error, for callers that treat some differently (an unknown query parameter may
 * be ignored by configuration; a conflict with a path binding is the client's mistake). */
export type ProtoJsonErrorCode =
  | 'syntax'            // the JSON text itself (or its UTF-8)
  | 'unknown_field'     // a key or a bound field path this message does not have
  | 'invalid_value'     // a value of the wrong type or form, out of range, set twice, two oneof members
  | 'bound_conflict'    // a body or query value for a field already bound from the path (or query)
  | 'too_deep'          // nesting beyond MAX_DEPTH
  | 'malformed_binary'; // protobuf bytes that do not decode

export class ProtoJsonError extends Error {
  /** Dotted path of the field in error, in the names the client used ("book.author.name",
   * "shelves[2].id", "labels[\"k\"]" is never produced: map keys show as "labels[]").
   * Empty for errors of the JSON text itself. */
  readonly fieldPath: string;

  readonly code: ProtoJsonErrorCode;

  constructor(fieldPath: string, message: string, code: ProtoJsonErrorCode = 'invalid_value') {
    super(fieldPath === '' ? message : `${fieldPath}: ${message}`);
    this.name = 'ProtoJsonError';
    this.fieldPath = fieldPath;
    this.code = code;
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
