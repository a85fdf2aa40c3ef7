import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { DaemonsShutDownError, OnDemandDaemons } from './on-demand.ts';

/** A start function that counts starts and stops, with the daemons' "process" as a flag. */
function counted(o: { failFirst?: boolean; startMs?: number } = {}) {
  const state = { starts: 0, stops: 0, up: false, overlapped: false };
  let attempts = 0;
  const start = async () => {
    attempts++;
    if (state.up) state.overlapped = true; // a start while the previous instance still runs
    await sleep(o.startMs ?? 5);
    if (o.failFirst && attempts === 1) throw new Error('port in use');
    state.starts++;
    state.up = true;
    return {
      stop: async () => {
        await sleep(20);
        state.up = false;
        state.stops++;
      },
    };
  };
  return { state, start };
}

/** Bounded wait for `cond` (the idle timer fires on its own). */
async function until(cond: () => boolean, ms = 5_000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(5);
  }
}

describe('OnDemandDaemons', () => {
  it('starts on the first use, once for concurrent uses, and stops only after the idle period', async () => {
    const { state, start } = counted({ startMs: 30 });
    const d = new OnDemandDaemons({ start, idleMs: 50 });
    expect(d.up).toBe(false);
    const seen = await Promise.all([1, 2, 3].map((n) => d.use(async () => (state.up ? n : -n))));
    expect(seen).toEqual([1, 2, 3]);
    expect(state.starts).toBe(1);
    expect(d.held).toBe(0);
    await until(() => state.stops === 1);
    expect(state.up).toBe(false);
    expect(d.up).toBe(false);
    await d.shutdown();
  });

  it('never stops while a lease is held, however long past the idle period', async () => {
    const { state, start } = counted();
    const d = new OnDemandDaemons({ start, idleMs: 20 });
    await d.use(async () => undefined); // idle timer armed
    const release = await d.acquire(); // taken again before it fires
    await sleep(150);
    expect(state).toMatchObject({ starts: 1, stops: 0, up: true });
    release();
    release(); // a second call is a no-op
    expect(d.held).toBe(0);
    await until(() => state.stops === 1);
    await d.shutdown();
  });

  it('starts again after an idle stop, never over a stop still under way', async () => {
    const { state, start } = counted();
    const d = new OnDemandDaemons({ start, idleMs: 10 });
    await d.use(async () => undefined);
    await until(() => !d.up); // the stop has begun (takes 20 ms)
    await d.use(async () => expect(state.up).toBe(true));
    expect(state.starts).toBe(2);
    expect(state.overlapped).toBe(false);
    await d.shutdown();
    expect(state.up).toBe(false);
  });

  it('a failed start fails the lease and the next use starts again', async () => {
    const { state, start } = counted({ failFirst: true });
    const d = new OnDemandDaemons({ start, idleMs: 1_000 });
    await expect(d.use(async () => 1)).rejects.toThrow('port in use');
    expect(d.held).toBe(0);
    expect(await d.use(async () => 2)).toBe(2);
    expect(state.starts).toBe(1);
    await d.shutdown();
    expect(state.stops).toBe(1);
  });

  it('runs the after-start hook before the leases go on; its failure does not fail the start', async () => {
    const { start } = counted();
    const order: string[] = [];
    const errors: unknown[] = [];
    const d = new OnDemandDaemons({ start, idleMs: 10, onHookError: (err) => errors.push(err) });
    d.onStart = async () => {
      order.push('hook');
      if (order.length > 1) throw new Error('sweep failed');
    };
    await d.use(async () => order.push('use'));
    await until(() => !d.up);
    await until(() => d.held === 0);
    await sleep(30);
    await d.use(async () => order.push('use'));
    expect(order).toEqual(['hook', 'use', 'hook', 'use']);
    expect(errors).toHaveLength(1);
    await d.shutdown();
  });

  it('shutdown stops them whatever the leases, and later uses fail', async () => {
    const { state, start } = counted();
    const d = new OnDemandDaemons({ start, idleMs: 60_000 });
    const release = await d.acquire();
    await d.shutdown();
    expect(state).toMatchObject({ starts: 1, stops: 1, up: false });
    release();
    await expect(d.use(async () => 1)).rejects.toBeInstanceOf(DaemonsShutDownError);
    expect(state.starts).toBe(1);
  });
});
