// The issues a config load reports, as `path: message` lines: what config tests compare.
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/control/config-error.js';

/** Runs `load`, which must throw a ConfigError, and returns its issues as `path: message`. */
export function configIssues(load: () => unknown): string[] {
  try {
    load();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.issues.map((i) => `${i.path}: ${i.message}`);
  }
  assert.fail('expected a ConfigError');
}
