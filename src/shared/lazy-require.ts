// Packages only some configs need are loaded on first use, synchronously (createRequire; each
// is CommonJS). Imported at load time, each cost every data-plane worker its heap and code
// whether or not the config used it (measured on Node 20: undici 5.2 MB of heap,
// hdr-histogram-js 1.4 MB, piscina 1.1 MB).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** A getter that loads package `id` on its first call and returns it from then on. */
export function lazily<T>(id: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(id) as T);
}
