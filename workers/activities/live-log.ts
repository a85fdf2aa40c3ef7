/**
 * A bounded log tail that is saved while it grows: `record` keeps the last `maxLines` lines, and
 * every `everyMs` the tail is written through `save` when it changed, so an agent reads the build
 * log as it is produced. Writes never overlap, and `close` writes the final tail after any write
 * still running (an older tail never overwrites a newer one).
 */
export class LiveLog {
  private readonly lines: string[] = [];
  private changed = false;
  private writing: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;

  private readonly save: (tail: string) => Promise<unknown>;
  private readonly maxLines: number;
  /** Told when a periodic write fails (the next one, or close, tries again). */
  private readonly onError: (err: unknown) => void;

  constructor(
    save: (tail: string) => Promise<unknown>,
    maxLines: number,
    everyMs = 2_000,
    onError: (err: unknown) => void = () => undefined,
  ) {
    this.save = save;
    this.maxLines = maxLines;
    this.onError = onError;
    this.timer = setInterval(() => {
      this.flush().catch(this.onError);
    }, everyMs);
    this.timer.unref();
  }

  record(line: string) {
    this.lines.push(line);
    if (this.lines.length > this.maxLines) this.lines.shift();
    this.changed = true;
  }

  text(): string {
    return this.lines.join('\n');
  }

  private flush(): Promise<void> {
    if (!this.changed) return this.writing;
    this.changed = false;
    const tail = this.text();
    this.writing = this.writing
      .catch(() => undefined)
      .then(() => this.save(tail))
      .then(
        () => undefined,
        (err: unknown) => {
          this.changed = true; // try again next time
          throw err;
        },
      );
    return this.writing;
  }

  /** Stops the periodic writes and waits for the last one. The caller writes the final tail. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.writing.catch(() => undefined);
  }
}
