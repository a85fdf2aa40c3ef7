import { spawn } from 'node:child_process';
import path from 'node:path';
import { expect, it } from 'vitest';
import {
  acquireRegistryLock,
  MaintenanceLockTimeout,
  withRegistryLock,
} from '../../core/db/maintenance-lock.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { repoRoot } from '../support/scratch.ts';

/** Settles to 'pending' unless `p` settled within `ms`. */
const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([
    p.then(
      () => 'taken',
      (e: Error) => e.name,
    ),
    new Promise<string>((r) => setTimeout(() => r('pending'), ms)),
  ]);

describeEachDatabase("the registry's maintenance lock", (dbs) => {
  it('lets builds share it, keeps the job out while a build holds it, and the job keeps builds out', async () => {
    const url = await dbs.fresh('lock_modes');
    const a = await acquireRegistryLock(url, 'shared', { timeoutMs: 5_000 });
    const b = await acquireRegistryLock(url, 'shared', { timeoutMs: 5_000 });
    // The job waits, bounded, and says so.
    let waited = 0;
    const t = Date.now();
    const refused = await acquireRegistryLock(url, 'exclusive', {
      timeoutMs: 800,
      onWait: () => waited++,
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(MaintenanceLockTimeout);
    expect(Date.now() - t).toBeGreaterThanOrEqual(700);
    expect(waited).toBe(1);
    // Once both builds are done, the job gets it; a build then waits for the job's release.
    await a.release();
    const job = acquireRegistryLock(url, 'exclusive', { timeoutMs: 10_000 });
    expect(await within(job, 500)).toBe('pending');
    await b.release();
    const held = await job;
    let buildWaited = false;
    const build = acquireRegistryLock(url, 'shared', {
      timeoutMs: 10_000,
      onWait: () => (buildWaited = true),
    });
    expect(await within(build, 500)).toBe('pending');
    expect(buildWaited).toBe(true);
    await held.release();
    await (await build).release();
  }, 60_000);

  it('queues later builds behind a waiting job (no starvation) and frees them when the job gives up', async () => {
    const url = await dbs.fresh('lock_queue');
    const first = await acquireRegistryLock(url, 'shared', { timeoutMs: 5_000 });
    const job = acquireRegistryLock(url, 'exclusive', { timeoutMs: 1_500 }).catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 300));
    const later = acquireRegistryLock(url, 'shared', { timeoutMs: 10_000 });
    expect(await within(later, 400)).toBe('pending');
    // The job times out (the first build still holds it): the later build goes through.
    expect(await job).toBeInstanceOf(MaintenanceLockTimeout);
    const held = await later;
    await held.release();
    await first.release();
  }, 60_000);

  it('is released when the work under it fails', async () => {
    const url = await dbs.fresh('lock_failure');
    const err = await withRegistryLock(url, 'exclusive', { timeoutMs: 5_000 }, async () => {
      throw new Error('restart failed');
    }).catch((e: Error) => e.message);
    expect(err).toBe('restart failed');
    const again = await acquireRegistryLock(url, 'exclusive', { timeoutMs: 2_000 });
    await again.release();
    // Released twice is harmless.
    await again.release();
    const build = await acquireRegistryLock(url, 'shared', { timeoutMs: 2_000 });
    await build.release();
  }, 60_000);

  it('is freed when the process holding it dies (the session ends)', async ({ skip }) => {
    const url = await dbs.fresh('lock_crash');
    // SQLite: one process only, whose in-process lock dies with it: nothing outlives it to test.
    if (url.startsWith('file:')) skip();
    const module = path.join(repoRoot, 'core/db/maintenance-lock.ts');
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(module)}); await m.acquireRegistryLock(process.env.URL, 'exclusive', { timeoutMs: 10000 }); console.log('held'); setInterval(() => {}, 1000);`,
      ],
      { env: { PATH: process.env.PATH, URL: url }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the child did not take the lock in 30 s')), 30_000);
        child.stdout?.on('data', (d: Buffer) => {
          if (d.toString().includes('held')) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => reject(new Error(`the child exited (${code})`)));
      });
      expect(
        await acquireRegistryLock(url, 'shared', { timeoutMs: 500 }).catch((e: unknown) => e),
      ).toBeInstanceOf(MaintenanceLockTimeout);
    } finally {
      child.kill('SIGKILL');
    }
    const build = await acquireRegistryLock(url, 'shared', { timeoutMs: 15_000 });
    await build.release();
  }, 60_000);
});
