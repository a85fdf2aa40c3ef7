/**
 * Daemons started on the first need and stopped after an idle period (the embedded runtime's
 * registry, buildkitd and podman's API service: needed only while a build or deploy runs).
 *
 * - `use(fn)` holds a lease while `fn` runs: the daemons are started first if they are not
 *   running (a start already under way is joined; a stop under way is waited for, then they
 *   start again), and nothing is stopped while any lease is held.
 * - When the last lease ends, a timer of `idleMs` starts; when it fires with no lease held, the
 *   daemons are stopped (their state on disk stays: the next start finds it).
 * - A start that fails is not kept: the lease fails with its error and the next `use` starts
 *   again.
 * - `shutdown()` (the server stopping) stops them whatever the leases; `use` fails afterwards.
 */
export type Started = { stop: () => Promise<void> };

export type OnDemandOptions = {
  /** Starts the daemons and resolves once they serve; `stop()` stops every one of them. */
  start: () => Promise<Started>;
  /** How long they stay up with no lease held. */
  idleMs: number;
  /** Told of each start (with its duration) and stop, for the logs. */
  onEvent?: (
    event: { kind: 'started'; ms: number } | { kind: 'stopped'; reason: 'idle' | 'shutdown' },
  ) => void;
  /** Told of a failed `onStart` hook (the start stands). */
  onHookError?: (err: unknown) => void;
  /** Told of a failed idle stop (the daemons are then taken as stopped; the next start replaces them). */
  onStopError?: (err: unknown) => void;
};

export class DaemonsShutDownError extends Error {
  override name = 'DaemonsShutDownError';
}

export class OnDemandDaemons {
  private leases = 0;
  private running: Promise<Started> | undefined;
  private stopping: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /**
   * Runs after each start, before the leases waiting for it go on (e.g. a sweep that needs the
   * daemons); a failure goes to `onHookError` and the start stands.
   */
  onStart: (() => Promise<void>) | undefined;

  private readonly o: OnDemandOptions;

  constructor(o: OnDemandOptions) {
    this.o = o;
  }

  /** Runs `fn` with the daemons up; they stay up until it settles. */
  async use<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Starts the daemons if needed and holds a lease; call the returned function once to release it. */
  async acquire(): Promise<() => void> {
    if (this.closed) throw new DaemonsShutDownError('the daemons were shut down');
    this.leases++;
    this.clearTimer();
    try {
      // A stop under way completes first (its processes must be gone before new ones start).
      await this.stopping;
      if (this.closed) throw new DaemonsShutDownError('the daemons were shut down');
      this.running ??= this.startOnce();
      await this.running;
    } catch (err) {
      this.releaseOne();
      throw err;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.releaseOne();
    };
  }

  /** True while the daemons run (or are starting). */
  get up(): boolean {
    return this.running !== undefined;
  }

  /** Leases held right now. */
  get held(): number {
    return this.leases;
  }

  /** Stops the daemons (if running) for good. */
  async shutdown(): Promise<void> {
    this.closed = true;
    this.clearTimer();
    await this.stopping;
    await this.stopNow('shutdown');
  }

  private startOnce(): Promise<Started> {
    const t0 = Date.now();
    const started = this.o.start().then(
      async (s) => {
        await this.onStart?.().catch((err: unknown) => this.o.onHookError?.(err));
        this.o.onEvent?.({ kind: 'started', ms: Date.now() - t0 });
        return s;
      },
      (err: unknown) => {
        if (this.running === started) this.running = undefined;
        throw err;
      },
    );
    return started;
  }

  private releaseOne() {
    this.leases--;
    if (this.leases === 0 && !this.closed && this.running !== undefined) {
      this.clearTimer();
      this.timer = setTimeout(() => this.onIdle(), this.o.idleMs);
      this.timer.unref();
    }
  }

  private onIdle() {
    this.timer = undefined;
    if (this.leases > 0 || this.closed || this.running === undefined) return;
    this.stopping = this.stopNow('idle')
      .catch((err: unknown) => this.o.onStopError?.(err))
      .finally(() => {
        this.stopping = undefined;
      });
  }

  private async stopNow(reason: 'idle' | 'shutdown'): Promise<void> {
    const running = this.running;
    this.running = undefined;
    if (!running) return;
    const started = await running.catch(() => undefined);
    if (!started) return;
    await started.stop();
    this.o.onEvent?.({ kind: 'stopped', reason });
  }

  private clearTimer() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
