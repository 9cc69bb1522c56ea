// Every filter factory a route's chain can name (CompiledRoute.filters[].name → factory).
// A new filter registers here and in the config compiler; nothing else changes.
import type { FilterFactory } from '../chain.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each factory checks its own compiled config
export const FILTERS: Record<string, FilterFactory<any>> = {};
