import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../test/support/scratch.ts';
import { type Database, openDatabase } from './db/client.ts';
import { migrate } from './db/migrate.ts';
import { diskFault, outOfDiskSpace } from './resource-faults.ts';

const run = promisify(execFile);

/** The error `fn` rejects with. */
async function failure(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure');
}

describe('diskFault: out of disk space in every shape it reaches us', () => {
  const work = scratchDir('resource-faults');
  let db: Database;

  beforeAll(async () => {
    const url = `file:${path.join(work.dir, 'faults.db')}`;
    await migrate(url);
    db = await openDatabase(url);
  });
  afterAll(async () => {
    await db?.close();
    work.cleanup();
  });

  it('recognises a Node write to a full device (ENOSPC), with its path when Node names it', async () => {
    const write = await failure(async () => fs.writeFileSync('/dev/full', 'x'));
    expect((write as NodeJS.ErrnoException).code).toBe('ENOSPC');
    expect(diskFault(write)).toMatchObject({ source: 'filesystem' });
    const wrapped = new Error('saving the build log failed', { cause: write });
    expect(diskFault(wrapped)).toMatchObject({ source: 'filesystem' });
  });

  it("recognises a child process's own words (git, BuildKit and Pulumi print them)", async () => {
    const child = await failure(() => run('sh', ['-c', 'head -c 4096 /dev/zero > /dev/full']));
    expect(String((child as { stderr: string }).stderr)).toMatch(/No space left on device/);
    expect(diskFault(child)).toEqual({ source: 'filesystem' });
    // A build's error names the failing step; the raw BuildKit lines sit in its log tail.
    const build = Object.assign(new Error('build failed: failed to solve: failed to copy files'), {
      logTail: [
        '#7 [2/3] COPY . /app',
        '#7 ERROR: failed to copy files: copy file range failed: no space left on device',
      ],
    });
    expect(diskFault(build)).toEqual({ source: 'filesystem' });
    const pulumi = new Error(
      'the stack update failed: write /data/pulumi/.pulumi/stacks/app.json: no space left on device',
    );
    expect(diskFault(new AggregateError([new Error('other'), pulumi]))).toEqual({ source: 'filesystem' });
  });

  it('recognises SQLITE_FULL from the real database client as a database fault', async () => {
    // The database may not grow past its current pages: SQLite answers SQLITE_FULL, as on a full disk.
    const [row] = await db.prisma.$queryRawUnsafe<{ page_count: bigint }[]>('PRAGMA page_count');
    await db.prisma.$queryRawUnsafe(`PRAGMA max_page_count = ${Number(row?.page_count)}`);
    const full = await failure(async () => {
      for (let i = 0; i < 500; i++)
        await db.prisma.user.create({ data: { email: `u${i}-${'x'.repeat(2000)}@example.com` } });
    });
    expect(String(full)).toMatch(/SQLITE_FULL|database or disk is full/);
    expect(diskFault(full)).toEqual({ source: 'database', engine: 'sqlite' });
    // Interactive transactions throw libSQL's own error, not Prisma's.
    const inTransaction = await failure(() =>
      db.prisma.$transaction(async (tx) => {
        for (let i = 0; i < 500; i++)
          await tx.user.create({ data: { email: `t${i}-${'x'.repeat(2000)}@example.com` } });
      }),
    );
    expect(diskFault(inTransaction)).toEqual({ source: 'database', engine: 'sqlite' });
    await db.prisma.$queryRawUnsafe('PRAGMA max_page_count = 1073741823');
  });

  it('counts a database I/O error as a full disk only while the disk is nearly full, and names that disk', async () => {
    const disk = path.join(work.dir, 'disk');
    fs.mkdirSync(disk);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', disk]);
    try {
      // What the database client threw for a read on a full tmpfs (SQLITE_IOERR_SHORT_READ).
      const ioerr = Object.assign(
        new Error('Database error. Code: `522`. Message: `SQLITE_IOERR: disk I/O error`'),
        {
          name: 'PrismaClientKnownRequestError',
          code: 'P2039',
          meta: {
            driverAdapterError: {
              name: 'DriverAdapterError',
              cause: {
                originalCode: '522',
                originalMessage: 'SQLITE_IOERR: disk I/O error',
                kind: 'sqlite',
                extendedCode: 522,
              },
            },
          },
        },
      );
      expect(diskFault(ioerr)).toBeUndefined();
      expect(await outOfDiskSpace(ioerr, [disk])).toBeUndefined();
      fs.writeFileSync(path.join(disk, 'filler'), Buffer.alloc(4 * 1024 * 1024 - 64 * 1024));
      expect(await outOfDiskSpace(ioerr, [work.dir, disk])).toEqual({
        source: 'database',
        engine: 'sqlite',
        full: disk,
      });
      // A certain fault names the full disk among those given, or none.
      const write = await failure(async () => fs.writeFileSync('/dev/full', 'x'));
      expect(await outOfDiskSpace(write, [undefined, work.dir, disk])).toMatchObject({ full: disk });
      expect(await outOfDiskSpace(write, [work.dir])).toEqual({ source: 'filesystem' });
      expect(await outOfDiskSpace(new Error('connection refused'), [disk])).toBeUndefined();
    } finally {
      execFileSync('umount', [disk]);
    }
  });

  it('leaves every other fault alone', async () => {
    await db.prisma.user.create({ data: { email: 'twice@example.com' } });
    const unique = await failure(() => db.prisma.user.create({ data: { email: 'twice@example.com' } }));
    expect(diskFault(unique)).toBeUndefined();
    const refused = await failure(() => run('git', ['ls-remote', 'http://127.0.0.1:1/none.git']));
    expect(diskFault(refused)).toBeUndefined();
    const build = Object.assign(new Error('build failed at [2/3] RUN npm ci: npm error missing script'), {
      logTail: ['#7 0.5 npm error missing script: build'],
    });
    expect(diskFault(build)).toBeUndefined();
    const loop = new Error('a cycle');
    (loop as { cause?: unknown }).cause = loop;
    expect(diskFault(loop)).toBeUndefined();
    expect(diskFault('no space left on device')).toBeUndefined(); // only errors are classified
    expect(diskFault(undefined)).toBeUndefined();
  });
});
