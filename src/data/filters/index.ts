// Every filter factory a route's chain can name (CompiledRoute.filters[].name → factory).
// A new filter registers here and in the config compiler; nothing else changes.
import type { FilterFactory } from '../chain.js';
import { authJwt } from './auth-jwt.js';
import { identityStrip } from './identity-strip.js';
import { rateLimit } from './rate-limit.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each factory checks its own compiled config
export const FILTERS: Record<string, FilterFactory<any>> = {
  [authJwt.name]: authJwt,
  [identityStrip.name]: identityStrip,
  [rateLimit.name]: rateLimit,
};
