// Header names both planes of the `ext-authz` filter need (the schema refuses them in config,
// the runtime sets them): a module of its own, so the worker does not load the schema.

/** Carries the verified subject (ctx.subject, the JWT's `sub`) to the authorization service. */
export const SUBJECT_HEADER = 'x-lobby-subject';
/** Set to `true` on the upstream request when a `failure_mode_allow` route let a request
 * through because the authorization service failed; client copies are removed. */
export const EXT_AUTHZ_FAILURE_HEADER = 'x-lobby-ext-authz-failure';
/** The longest denial body relayed to the client; a longer one is replaced (filter.ts). */
export const MAX_DENIAL_BODY_BYTES = 64 * 1024;
