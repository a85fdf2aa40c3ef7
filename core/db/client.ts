import type { TransactionMode } from '@libsql/client';
import { PrismaLibSql } from '@prisma/adapter-libsql';
import pg from 'pg';
import { PrismaClient as SqliteClient } from '../../prisma/generated/sqlite/client.ts';
import { type HotReader, postgresHotReader, registerHotReader, sqliteHotReader } from './hot-reads.ts';
import { isSqliteUrl, privateSqliteFile, SQLITE_BUSY_TIMEOUT_MS, sqliteFilePath } from './sql-connection.ts';
import { installStatementCache } from './statement-cache.ts';

/**
 * The product database client. Typed as the SQLite client: its API is the subset both
 * generated clients share (PostgreSQL adds e.g. `mode: 'insensitive'`), so code written
 * against it runs on either database.
 */
export type Db = SqliteClient;
export type * from '../../prisma/generated/sqlite/browser.ts';

export type Database = {
  prisma: Db;
  dialect: 'sqlite' | 'postgresql';
  /** Throws unless the database answers a query. */
  ping: () => Promise<void>;
  close: () => Promise<void>;
};

/**
 * PrismaLibSql opens interactive transactions with BEGIN DEFERRED. Under WAL, a deferred
 * transaction that reads and then writes fails with SQLITE_BUSY (P1008) when another process
 * writes, without waiting for busy_timeout. BEGIN IMMEDIATE takes the write lock up front.
 */
class PrismaLibSqlImmediate extends PrismaLibSql {
  override createClient(config: Parameters<PrismaLibSql['createClient']>[0]) {
    const client = super.createClient(config);
    const begin = client.transaction.bind(client);
    client.transaction = ((mode?: TransactionMode) =>
      begin(mode === undefined || mode === 'deferred' ? 'write' : mode)) as typeof client.transaction;
    return client;
  }
}

/** Opens the database at `url` (`file:` → embedded SQLite, `postgres://` → PostgreSQL). */
export async function openDatabase(url: string, options: { poolSize?: number } = {}): Promise<Database> {
  if (isSqliteUrl(url)) {
    privateSqliteFile(url);
    installStatementCache();
    // timeout = busy_timeout (ms) on every connection; intMode bigint keeps BigInt columns exact.
    const prisma = new SqliteClient({
      adapter: new PrismaLibSqlImmediate({ url, timeout: SQLITE_BUSY_TIMEOUT_MS, intMode: 'bigint' }),
    });
    const file = sqliteFilePath(url);
    return wrap(
      prisma,
      'sqlite',
      file ? sqliteHotReader(file, SQLITE_BUSY_TIMEOUT_MS) : prismaHotReader(prisma),
    );
  }
  // The pool is ours so hot reads (core/db/hot-reads.ts) share it; close() ends it.
  const pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? 10 });
  // Loaded only here: an embedded install never needs PostgreSQL's client (about 4 MiB).
  const [{ PrismaPg }, { PrismaClient: PostgresClient }] = await Promise.all([
    import('@prisma/adapter-pg'),
    import('../../prisma/generated/postgresql/client.ts'),
  ]);
  const prisma = new PostgresClient({ adapter: new PrismaPg(pool) }) as unknown as Db;
  return wrap(prisma, 'postgresql', postgresHotReader(pool));
}

/** Hot reads through Prisma, for an in-memory SQLite database (no second connection sees it). */
function prismaHotReader(prisma: Db): HotReader {
  return {
    firstRow: async <T>(sql: string, params: readonly unknown[]) =>
      (await prisma.$queryRawUnsafe<T[]>(sql, ...params))[0],
    allRows: <T>(sql: string, params: readonly unknown[]) => prisma.$queryRawUnsafe<T[]>(sql, ...params),
    close: async () => undefined,
  };
}

function wrap(prisma: Db, dialect: Database['dialect'], hot: HotReader): Database {
  registerHotReader(prisma, hot);
  return {
    prisma,
    dialect,
    ping: async () => {
      await prisma.$queryRawUnsafe('SELECT 1');
    },
    close: async () => {
      await prisma.$disconnect();
      await hot.close();
    },
  };
}
