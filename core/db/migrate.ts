import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { openSqlConnection, type SqlConnection } from './sql-connection.ts';

/** prisma/migrations: one folder per migration, each with a portable migration.sql. */
export const MIGRATIONS_DIR = path.resolve(import.meta.dirname, '../../prisma/migrations');

export type Migration = { name: string; sql: string; checksum: string };

export type MigrateResult = { applied: string[]; alreadyApplied: number };

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/** Reads the migrations in order (folder names sort chronologically: 0001_…, 0002_…). */
export function readMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const sql = fs.readFileSync(path.join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

/**
 * Applies pending migrations, each in its own transaction, recording them in
 * `_deploy_mcp_migrations`. Safe to run concurrently: a database lock serializes runners.
 * Refuses to run when an applied migration's file has changed since.
 */
export async function migrate(databaseUrl: string, dir: string = MIGRATIONS_DIR): Promise<MigrateResult> {
  const migrations = readMigrations(dir);
  const conn = await openSqlConnection(databaseUrl);
  try {
    return await conn.exclusive(async () => {
      await conn.exec(
        'CREATE TABLE IF NOT EXISTS "_deploy_mcp_migrations" ("name" TEXT NOT NULL PRIMARY KEY, ' +
          '"checksum" TEXT NOT NULL, "appliedAt" TEXT NOT NULL)',
      );
      const rows = await conn.query<{ name: string; checksum: string }>(
        'SELECT "name", "checksum" FROM "_deploy_mcp_migrations"',
      );
      const applied = new Map(rows.map((r) => [r.name, r.checksum]));
      for (const name of applied.keys()) {
        if (!migrations.some((m) => m.name === name)) {
          throw new MigrationError(`database has migration ${name}, which this version does not know`);
        }
      }
      const done: string[] = [];
      for (const m of migrations) {
        const checksum = applied.get(m.name);
        if (checksum === m.checksum) continue;
        if (checksum !== undefined) {
          throw new MigrationError(`migration ${m.name} was changed after it was applied`);
        }
        await applyOne(conn, m);
        done.push(m.name);
      }
      return { applied: done, alreadyApplied: applied.size };
    });
  } finally {
    await conn.close();
  }
}

async function applyOne(conn: SqlConnection, m: Migration) {
  try {
    await conn.transaction(async () => {
      await conn.exec(conn.dialect === 'sqlite' ? sqliteDialect(m.sql) : m.sql);
      await conn.run(
        'INSERT INTO "_deploy_mcp_migrations" ("name", "checksum", "appliedAt") VALUES (?, ?, ?)',
        [m.name, m.checksum, new Date().toISOString()],
      );
    });
  } catch (err) {
    throw new MigrationError(`migration ${m.name} failed: ${(err as Error).message}`);
  }
}

/**
 * Migrations are written in PostgreSQL's SQL, kept to the subset SQLite shares. The one
 * difference SQLite needs bridged is type names Prisma's SQLite driver keys on: it reads
 * DATETIME columns as dates.
 */
export function sqliteDialect(sql: string): string {
  return sql.replace(/\bTIMESTAMP\(3\)/g, 'DATETIME').replace(/\bDOUBLE PRECISION\b/g, 'REAL');
}
