// A bound the schema (control plane) and the filter (data plane) share, kept apart from the
// schema so the workers do not load zod.

/** Longest Origin the filter compares; a longer one is not allowed (it bounds a regex's work). */
export const MAX_ORIGIN_LENGTH = 256;
