import fs from 'node:fs';
import path from 'node:path';
import { createClient, type InArgs, type Transaction } from '@libsql/client';
import pg from 'pg';

/** One plain SQL connection to the product database, for migrations and maintenance. */
export type SqlConnection = {
  dialect: 'sqlite' | 'postgresql';
  /** Runs a script of one or more statements without parameters. */
  exec(sql: string): Promise<void>;
  /** Runs one statement with `?` placeholders. */
  run(sql: string, params?: unknown[]): Promise<void>;
  query<T>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs `fn` in a transaction (a savepoint when already inside one). */
  transaction<T>(fn: () => Promise<T>): Promise<T>;
  /** Runs `fn` while holding the database-wide maintenance lock. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
};

/** Fixed id of the PostgreSQL advisory lock that serializes migrators. */
const PG_LOCK_ID = 72_246_310;

export function isSqliteUrl(url: string): boolean {
  return url.startsWith('file:');
}

export async function openSqlConnection(url: string): Promise<SqlConnection> {
  return isSqliteUrl(url) ? openSqlite(url) : openPostgres(url);
}

/**
 * SQLite settings. WAL is stored in the database file (set once here). libsql enables foreign
 * keys by default; busy_timeout goes through the client's `timeout` option because libsql
 * opens fresh connections after transactions and pragmas would not carry over.
 */
const SQLITE_PRAGMAS = ['PRAGMA journal_mode = WAL', 'PRAGMA foreign_keys = ON'];
export const SQLITE_BUSY_TIMEOUT_MS = 5000;

/** The file a `file:` URL names; undefined for an in-memory database. */
export function sqliteFilePath(url: string): string | undefined {
  let file = url.slice('file:'.length);
  if (file.includes('?')) file = file.slice(0, file.indexOf('?'));
  if (file.startsWith('//')) file = decodeURIComponent(new URL(url).pathname);
  return !file || file.includes(':memory:') ? undefined : file;
}

/**
 * Makes the SQLite database file of `url` private to the server's user before it is opened:
 * created 0600 (in a directory created 0700), an existing one (and its -wal/-shm files) set to
 * 0600. SQLite creates the -wal and -shm files with the database file's mode.
 */
export function privateSqliteFile(url: string): void {
  const file = sqliteFilePath(url);
  if (!file) return;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // Created only when missing: opening and closing an existing database file would drop the
  // POSIX locks this process's connections hold on it (SQLite's WAL then breaks: SQLITE_IOERR).
  try {
    fs.closeSync(fs.openSync(file, 'wx', 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    try {
      fs.chmodSync(f, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

function openSqlite(url: string): SqlConnection {
  privateSqliteFile(url);
  const client = createClient({ url, timeout: SQLITE_BUSY_TIMEOUT_MS });
  // libsql hands out a fresh connection per call outside a transaction, so a transaction
  // must go through its Transaction handle; nested ones become savepoints on it.
  let tx: Transaction | undefined;
  let depth = 0;
  const target = () => tx ?? client;
  const ready = (async () => {
    for (const p of SQLITE_PRAGMAS) await client.execute(p);
  })();
  const conn: SqlConnection = {
    dialect: 'sqlite',
    async exec(sql) {
      await ready;
      await target().executeMultiple(sql);
    },
    async run(sql, params = []) {
      await ready;
      await target().execute({ sql, args: params as InArgs });
    },
    async query<T>(sql: string, params: unknown[] = []) {
      await ready;
      return (await target().execute({ sql, args: params as InArgs })).rows as unknown as T[];
    },
    async transaction(fn) {
      await ready;
      if (!tx) {
        tx = await client.transaction('write'); // BEGIN IMMEDIATE: the database-wide write lock
        try {
          const result = await fn();
          await tx.commit();
          return result;
        } catch (err) {
          await tx.rollback();
          throw err;
        } finally {
          tx.close();
          tx = undefined;
        }
      }
      const sp = `sp_${++depth}`;
      await tx.execute(`SAVEPOINT ${sp}`);
      try {
        const result = await fn();
        await tx.execute(`RELEASE ${sp}`);
        return result;
      } catch (err) {
        await tx.execute(`ROLLBACK TO ${sp}`);
        throw err;
      } finally {
        depth--;
      }
    },
    exclusive: (fn) => conn.transaction(fn),
    async close() {
      await ready.catch(() => undefined);
      client.close();
    },
  };
  return conn;
}

async function openPostgres(url: string): Promise<SqlConnection> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let depth = 0;
  const conn: SqlConnection = {
    dialect: 'postgresql',
    async exec(sql) {
      await client.query(sql);
    },
    async run(sql, params = []) {
      await client.query(numbered(sql), params);
    },
    async query<T>(sql: string, params: unknown[] = []) {
      return (await client.query(numbered(sql), params)).rows as T[];
    },
    async transaction(fn) {
      const sp = `sp_${depth}`;
      await client.query(depth === 0 ? 'BEGIN' : `SAVEPOINT ${sp}`);
      depth++;
      try {
        const result = await fn();
        depth--;
        await client.query(depth === 0 ? 'COMMIT' : `RELEASE SAVEPOINT ${sp}`);
        return result;
      } catch (err) {
        depth--;
        await client.query(depth === 0 ? 'ROLLBACK' : `ROLLBACK TO SAVEPOINT ${sp}`);
        throw err;
      }
    },
    async exclusive(fn) {
      await client.query('SELECT pg_advisory_lock($1)', [PG_LOCK_ID]);
      try {
        return await fn();
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [PG_LOCK_ID]);
      }
    },
    async close() {
      await client.end();
    },
  };
  return conn;
}

/** `?` placeholders to PostgreSQL's `$1, $2, …` (our statements have no `?` in literals). */
function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}
