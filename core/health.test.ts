import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../test/support/scratch.ts';
import { diskSpaceCheck, healthHandler } from './health.ts';
import { type Listening, listen } from './http.ts';

describe('/healthz with a disk-space check', () => {
  // A real 8 MiB tmpfs: its free space is exact, so the thresholds below are too (tests run as root).
  const work = scratchDir('health');
  const disk = path.join(work.dir, 'disk');
  let http: Listening;
  let minFreeMb = 4;

  beforeAll(async () => {
    fs.mkdirSync(disk);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', disk]);
    const app = express();
    app.get(
      '/healthz',
      healthHandler('server', {
        database: async () => undefined,
        disk: () => diskSpaceCheck({ path: disk, minFreeMb })(),
      }),
    );
    http = await listen(app, '127.0.0.1', 0);
  });
  afterAll(async () => {
    await http?.close();
    execFileSync('umount', [disk]);
    work.cleanup();
  });

  const get = async () => {
    const res = await fetch(`http://127.0.0.1:${http.port}/healthz`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('is ok while free space is at or above the threshold', async () => {
    expect(await get()).toEqual({
      status: 200,
      body: { status: 'ok', role: 'server', checks: { database: 'ok', disk: 'ok' } },
    });
  });

  it('reports degraded (503) naming the path and the free MiB while below it, and recovers', async () => {
    fs.writeFileSync(path.join(disk, 'filler'), Buffer.alloc(6 * 1024 * 1024));
    expect(await get()).toEqual({
      status: 503,
      body: {
        status: 'degraded',
        role: 'server',
        checks: { database: 'ok', disk: 'failing' },
        reason: `disk: 2 MiB free on ${disk} (below 4 MiB)`,
      },
    });
    minFreeMb = 0; // 0 turns the check off
    expect((await get()).status).toBe(200);
    minFreeMb = 4;
    fs.rmSync(path.join(disk, 'filler'));
    expect((await get()).status).toBe(200);
  });

  it('says which other check fails, without its internal error', async () => {
    const app = express();
    app.get(
      '/healthz',
      healthHandler('deployer-server', {
        database: async () => {
          throw new Error('connect ECONNREFUSED 10.0.0.5:5432 (password=hunter2)');
        },
      }),
    );
    const other = await listen(app, '127.0.0.1', 0);
    try {
      const res = await fetch(`http://127.0.0.1:${other.port}/healthz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        status: 'degraded',
        role: 'deployer-server',
        checks: { database: 'failing' },
        reason: 'database: failing',
      });
    } finally {
      await other.close();
    }
  });
});
