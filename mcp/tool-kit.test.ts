import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Caller } from '../core/api-keys.ts';
import { type Database, openDatabase } from '../core/db/client.ts';
import { migrate } from '../core/db/migrate.ts';
import { createLogger } from '../core/log.ts';
import { scratchDir } from '../test/support/scratch.ts';
import { callerAuthInfo, OUT_OF_DISK_SPACE_MESSAGE, runTool } from './tool-kit.ts';

describe('runTool: a full disk is a clear answer, not an internal error', () => {
  const work = scratchDir('tool-kit');
  let db: Database;
  const lines: { level: number; msg: string; tool?: string }[] = [];
  const log = createLogger({
    level: 'info',
    destination: new Writable({
      write(chunk, _enc, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    }),
  });
  const extra = { authInfo: callerAuthInfo({ userId: 'u1', keyPrefix: 'abc' } as Caller) };

  beforeAll(async () => {
    const url = `file:${path.join(work.dir, 'tools.db')}`;
    await migrate(url);
    db = await openDatabase(url);
  });
  afterAll(async () => {
    await db?.close();
    work.cleanup();
  });

  it('answers "out of disk space" when the database cannot grow (SQLITE_FULL), logged as an error', async () => {
    const res = await runTool(
      { db: db.prisma, log, publicUrl: 'http://x' },
      extra,
      'create_repo',
      async () => {
        // The database may not grow: SQLite answers SQLITE_FULL, exactly as on a full disk.
        const [row] = await db.prisma.$queryRawUnsafe<{ page_count: bigint }[]>('PRAGMA page_count');
        await db.prisma.$queryRawUnsafe(`PRAGMA max_page_count = ${Number(row?.page_count)}`);
        try {
          for (let i = 0; i < 500; i++)
            await db.prisma.user.create({ data: { email: `u${i}-${'x'.repeat(2000)}@example.com` } });
        } finally {
          await db.prisma.$queryRawUnsafe('PRAGMA max_page_count = 1073741823');
        }
        return {};
      },
    );
    expect(res).toEqual({ isError: true, content: [{ type: 'text', text: OUT_OF_DISK_SPACE_MESSAGE }] });
    expect(OUT_OF_DISK_SPACE_MESSAGE).toBe(
      'the server is out of disk space; the operator has been told (try again later)',
    );
    expect(lines.at(-1)).toMatchObject({
      level: 50,
      tool: 'create_repo',
      msg: 'tool failed: out of disk space',
    });
  });

  it('keeps every other server fault generic', async () => {
    const res = await runTool({ db: db.prisma, log, publicUrl: 'http://x' }, extra, 'whoami', async () => {
      throw new Error('connect ECONNREFUSED 10.0.0.5:5432');
    });
    expect(res.isError).toBe(true);
    expect(JSON.stringify(res.content)).toMatch(
      /^\[\{"type":"text","text":"Internal error \(ref [0-9a-f]{8}\)/,
    );
    expect(lines.at(-1)).toMatchObject({ level: 50, msg: 'tool failed' });
  });
});
