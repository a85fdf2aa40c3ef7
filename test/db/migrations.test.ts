import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { diffDatabaseToSchema } from '../../core/db/drift.ts';
import { MIGRATIONS_DIR, migrate, readMigrations } from '../../core/db/migrate.ts';
import { openSqlConnection } from '../../core/db/sql-connection.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

const run = promisify(execFile);

describeEachDatabase('migrations', (db) => {
  it('apply from empty to exactly the Prisma schema (no drift), then are a no-op', async () => {
    const url = await db.fresh('migrate');
    const first = await migrate(url);
    expect(first.applied).toEqual(readMigrations().map((m) => m.name));
    const drift = await diffDatabaseToSchema(url);
    expect(drift.script).toBe('');
    expect(drift.inSync).toBe(true);
    const second = await migrate(url);
    expect(second).toEqual({ applied: [], alreadyApplied: first.applied.length });
  });

  it('drift check reports a database that differs from the schema', async () => {
    const url = await db.fresh('drift');
    await migrate(url);
    const conn = await openSqlConnection(url);
    try {
      await conn.exec('ALTER TABLE "AuditEvent" DROP COLUMN "detail"');
    } finally {
      await conn.close();
    }
    const drift = await diffDatabaseToSchema(url);
    expect(drift.inSync).toBe(false);
    expect(drift.script).toContain('detail');
  });

  it('runs concurrent migrator processes safely: each migration is applied once', async () => {
    const url = await db.fresh('concurrent');
    const env = { ...process.env, DEPLOY_MCP_DATABASE_URL: url };
    const outputs = await Promise.all(
      [1, 2, 3].map(
        async () => (await run(path.join(repoRoot, 'bin/deploy-mcp'), ['migrate'], { env })).stdout,
      ),
    );
    const appliedOnce = outputs.filter((o) => o.startsWith('applied '));
    expect(appliedOnce).toHaveLength(1);
    expect(outputs.filter((o) => o.startsWith('database is up to date'))).toHaveLength(2);
    expect((await migrate(url)).alreadyApplied).toBe(readMigrations().length);
  });

  it('refuses a migration edited after it was applied, and rolls back a failing one', async () => {
    const url = await db.fresh('edited');
    const tmp = scratchDir('migrations');
    try {
      fs.cpSync(MIGRATIONS_DIR, tmp.dir, { recursive: true });
      await migrate(url, tmp.dir);
      const first = path.join(tmp.dir, readMigrations(tmp.dir)[0]?.name ?? '', 'migration.sql');
      fs.appendFileSync(first, '\n-- edited\n');
      await expect(migrate(url, tmp.dir)).rejects.toThrow(/was changed after it was applied/);

      fs.writeFileSync(
        first,
        fs.readFileSync(path.join(MIGRATIONS_DIR, path.basename(path.dirname(first)), 'migration.sql')),
      );
      fs.mkdirSync(path.join(tmp.dir, '9999_broken'));
      fs.writeFileSync(
        path.join(tmp.dir, '9999_broken', 'migration.sql'),
        'CREATE TABLE "Half" ("id" TEXT NOT NULL PRIMARY KEY);\nTHIS IS NOT SQL;\n',
      );
      await expect(migrate(url, tmp.dir)).rejects.toThrow(/migration 9999_broken failed/);
      const conn = await openSqlConnection(url);
      try {
        const tables =
          conn.dialect === 'sqlite'
            ? await conn.query<{ name: string }>("SELECT name FROM sqlite_master WHERE name = 'Half'")
            : await conn.query<{ name: string }>(
                "SELECT tablename AS name FROM pg_tables WHERE tablename = 'Half'",
              );
        expect(tables).toEqual([]);
      } finally {
        await conn.close();
      }
    } finally {
      tmp.cleanup();
    }
  });
});
