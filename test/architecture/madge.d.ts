// The part of madge 8's JS API (lib/api.js) that the architecture tests use; madge ships no types.
declare module 'madge' {
  interface MadgeConfig {
    baseDir?: string;
    fileExtensions?: string[];
    tsConfig?: string | object;
    detectiveOptions?: Record<string, Record<string, unknown>>;
    /** List imports of npm packages too (as paths under node_modules). */
    includeNpm?: boolean;
  }
  interface MadgeInstance {
    /** Every file reached, relative to baseDir, with the files it imports. */
    obj(): Record<string, string[]>;
    /** Each cycle as the list of its files, relative to baseDir. */
    circular(): string[][];
    /** Imports madge could not resolve to a file. */
    warnings(): { skipped: string[] };
  }
  function madge(paths: string | string[], config?: MadgeConfig): Promise<MadgeInstance>;
  export default madge;
}
