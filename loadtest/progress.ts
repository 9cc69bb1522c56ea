// Progress on stderr while a run goes (stdout carries only the summary, so it can be piped).
// On a terminal the status line is rewritten in place; in a log each status is its own line.

export class ProgressReporter {
  private statusShown = false;
  private readonly interactive = Boolean(process.stderr.isTTY);

  /** A permanent line. */
  log(text: string): void {
    this.clearStatus();
    process.stderr.write(`${text}\n`);
  }

  /** A transient status (e.g. "measure 4/10 s"). */
  status(text: string): void {
    if (this.interactive) {
      process.stderr.write(`\r\x1b[K${text}`);
      this.statusShown = true;
    } else {
      process.stderr.write(`${text}\n`);
    }
  }

  clearStatus(): void {
    if (this.statusShown) {
      process.stderr.write('\r\x1b[K');
      this.statusShown = false;
    }
  }
}

export function formatCount(value: number): string {
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  return value.toFixed(0);
}
