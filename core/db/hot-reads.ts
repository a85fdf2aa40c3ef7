import { createHash } from 'node:crypto';
import Database from 'libsql';
import type pg from 'pg';

/**
 * Reads on every request's path (the API key lookup) and of the most frequent tools (whoami's
 * overview, list_services' page), straight through the database driver with a statement
 * prepared once, instead of through Prisma's runtime (which costs several times the indexed read
 * itself). Writes and transactions stay with Prisma. Nothing is cached but the statement: each call reads the database anew.
 *
 * - Embedded SQLite: a connection of its own to the same file (libsql's synchronous API; a read
 *   outside a transaction sees every commit made before it, by any process).
 * - PostgreSQL: the pool Prisma's adapter uses too, with a named prepared statement.
 *
 * core/db/client.ts registers one reader per Prisma client it opens; SQL uses `?` placeholders.
 */
export type HotReader = {
  firstRow<T>(sql: string, params: readonly unknown[]): Promise<T | undefined>;
  /** Every row (callers bound their count in the SQL: a LIMIT). */
  allRows<T>(sql: string, params: readonly unknown[]): Promise<T[]>;
  close(): Promise<void>;
};

const readers = new WeakMap<object, HotReader>();

export function registerHotReader(prisma: object, reader: HotReader): void {
  readers.set(prisma, reader);
}

/** The first row `sql` returns on the database `prisma` was opened on (core/db/client.ts). */
export function firstRow<T>(prisma: object, sql: string, params: readonly unknown[]): Promise<T | undefined> {
  return readerOf(prisma).firstRow<T>(sql, params);
}

/** Every row `sql` returns on the database `prisma` was opened on; `sql` bounds them. */
export function allRows<T>(prisma: object, sql: string, params: readonly unknown[]): Promise<T[]> {
  return readerOf(prisma).allRows<T>(sql, params);
}

function readerOf(prisma: object): HotReader {
  const reader = readers.get(prisma);
  if (!reader) throw new Error('no hot reader for this database client: open it with openDatabase');
  return reader;
}

export function sqliteHotReader(file: string, busyTimeoutMs: number): HotReader {
  // Opened on the first read: most processes that open the database (CLI commands) never make one.
  let db: Database.Database | undefined;
  const statements = new Map<string, Database.Statement>();
  const prepared = (sql: string) => {
    let statement = statements.get(sql);
    if (!statement) {
      db ??= new Database(file, { timeout: busyTimeoutMs });
      statement = db.prepare(sql);
      statements.set(sql, statement);
    }
    return statement;
  };
  return {
    async firstRow<T>(sql: string, params: readonly unknown[]) {
      return (prepared(sql).get(...(params as unknown[])) ?? undefined) as T | undefined;
    },
    async allRows<T>(sql: string, params: readonly unknown[]) {
      return prepared(sql).all(...(params as unknown[])) as T[];
    },
    async close() {
      db?.close();
      db = undefined;
      statements.clear();
    },
  };
}

export function postgresHotReader(pool: pg.Pool): HotReader {
  const queries = new Map<string, { name: string; text: string }>();
  const rows = async (sql: string, params: readonly unknown[]) => {
    let query = queries.get(sql);
    if (!query) {
      let i = 0;
      const text = sql.replace(/\?/g, () => `$${++i}`);
      // Named: each pooled connection prepares it once.
      query = { name: `hot_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`, text };
      queries.set(sql, query);
    }
    return (await pool.query({ ...query, values: params as unknown[] })).rows;
  };
  return {
    async firstRow<T>(sql: string, params: readonly unknown[]) {
      return (await rows(sql, params))[0] as T | undefined;
    },
    async allRows<T>(sql: string, params: readonly unknown[]) {
      return (await rows(sql, params)) as T[];
    },
    // Prisma's adapter shares the pool: close once Prisma has disconnected.
    async close() {
      await pool.end();
    },
  };
}
