// Reloading the config file: on SIGHUP and when the file changes on disk (watched,
// debounced). Both go through ConfigStore.reloadFile, so a reload is validated and compiled
// like any admin change and an invalid file leaves the running config in place.
//
// The directory is watched, not the file: editors and config managers replace a file by
// renaming a new one over it, which ends a watch on the old inode. Content this process
// read or wrote last (admin.persist) is recognised by its hash and ignored.
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { log } from '../shared/log.js';
import { ConfigError } from './config-error.js';
import type { ChangeResult, ConfigStore } from './config-store.js';

/** Quiet time after the last file event before the file is read (editors write in several steps). */
export const WATCH_DEBOUNCE_MS = 200;

export class ConfigReloader {
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly store: ConfigStore) {}

  /** SIGHUP: re-read the file even when it did not change. */
  onSignal(): void {
    void this.reload('signal', true);
  }

  /** Watches the config file's directory; changes are applied WATCH_DEBOUNCE_MS after the last event. */
  watch(): void {
    const file = resolve(this.store.file);
    const name = basename(file);
    try {
      this.watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
        if (changed !== null && changed !== name) return;
        if (this.timer) clearTimeout(this.timer);
        this.timer = setTimeout(() => {
          this.timer = null;
          void this.reload('file', false);
        }, WATCH_DEBOUNCE_MS);
      });
      this.watcher.on('error', (error) => log.warn('config file watch failed; SIGHUP and POST /reload still reload', { file, error: error.message }));
    } catch (error) {
      log.warn('cannot watch the config file; SIGHUP and POST /reload still reload', { file, error: (error as Error).message });
    }
  }

  private async reload(source: 'file' | 'signal', force: boolean): Promise<ChangeResult | null> {
    try {
      const result = await this.store.reloadFile(source, force);
      if (result && !result.changed) log.info('config file reloaded: no change', { source, version: result.version });
      return result;
    } catch (error) {
      const detail = error instanceof ConfigError ? error.message : (error as Error).message;
      log.error('config reload refused; keeping the running config', { file: this.store.file, source, error: detail });
      return null;
    }
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.watcher?.close();
  }
}
