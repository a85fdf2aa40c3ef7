import { afterEach, describe, expect, it, vi } from 'vitest';
import { LiveLog } from './live-log.ts';

describe('LiveLog: the build log saved while it grows', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('saves the bounded tail on each tick when it changed, never two writes at once, nothing after close', async () => {
    vi.useFakeTimers();
    const saved: string[] = [];
    let running = 0;
    let overlapped = false;
    const release: (() => void)[] = [];
    const save = async (tail: string) => {
      running++;
      if (running > 1) overlapped = true;
      await new Promise<void>((r) => release.push(r));
      saved.push(tail);
      running--;
    };
    const log = new LiveLog(save, 3, 2000);
    log.record('a');
    log.record('b');
    await vi.advanceTimersByTimeAsync(2000);
    expect(release).toHaveLength(1); // first write started
    log.record('c');
    log.record('d');
    await vi.advanceTimersByTimeAsync(2000); // a second write queues behind the first
    release.shift()?.();
    await vi.advanceTimersByTimeAsync(0);
    release.shift()?.();
    await vi.advanceTimersByTimeAsync(0);
    expect(saved).toEqual(['a\nb', 'b\nc\nd']);
    await vi.advanceTimersByTimeAsync(4000); // unchanged: nothing written
    expect(release).toHaveLength(0);
    log.record('e');
    await log.close();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(release).toHaveLength(0);
    expect(log.text()).toBe('c\nd\ne');
    expect(overlapped).toBe(false);
  });

  it('tries a failed write again on the next tick', async () => {
    vi.useFakeTimers();
    const saved: string[] = [];
    let fail = true;
    const errors: unknown[] = [];
    const log = new LiveLog(
      async (tail) => {
        if (fail) throw new Error('database busy');
        saved.push(tail);
      },
      10,
      2000,
      (err) => errors.push(err),
    );
    log.record('x');
    await vi.advanceTimersByTimeAsync(2000);
    expect(errors).toHaveLength(1);
    fail = false;
    await vi.advanceTimersByTimeAsync(2000);
    expect(saved).toEqual(['x']);
    await log.close();
  });
});
