import Database from 'libsql';

/** Prepared statements kept per connection; the least recently used goes first beyond this. */
export const STATEMENTS_PER_CONNECTION = 500;

const PATCHED = Symbol.for('deploy-mcp.statement-cache');
type Prepare = (this: Database.Database, sql: string) => Database.Statement;

/**
 * Keeps prepared statements per embedded-SQLite connection. @libsql/client (under Prisma's
 * libsql adapter) prepares every statement anew on each query: compiling the SQL was about a
 * fifth of a query's cost (bench: npm run bench -- mcp). Its connections are private to it, so
 * the cache sits on libsql's `Database.prototype.prepare`, per connection (a WeakMap: it goes with
 * the connection), bounded. Sharing a statement is safe: a query runs synchronously from bind to
 * its last row (`all`/`run`), and SQLite re-prepares a statement whose schema changed.
 * Its columns are read once too (@libsql/client asks for them twice per query, and each ask
 * builds them anew in native code: an eighth of an API key lookup).
 * Idempotent; installed by core/db/client.ts.
 */
export function installStatementCache(): void {
  const proto = Database.prototype as unknown as { prepare: Prepare; [PATCHED]?: true };
  if (proto[PATCHED]) return;
  const prepare = proto.prepare;
  const caches = new WeakMap<object, Map<string, Database.Statement>>();
  proto.prepare = function cachedPrepare(sql: string) {
    let cache = caches.get(this);
    if (!cache) {
      cache = new Map();
      caches.set(this, cache);
    }
    const hit = cache.get(sql);
    if (hit) {
      // Most recently used last: a Map iterates in insertion order.
      cache.delete(sql);
      cache.set(sql, hit);
      return hit;
    }
    const statement = keepColumns(prepare.call(this, sql));
    cache.set(sql, statement);
    if (cache.size > STATEMENTS_PER_CONNECTION) cache.delete(cache.keys().next().value as string);
    return statement;
  };
  proto[PATCHED] = true;
}

/**
 * Makes `statement.columns()` answer from the first answer (frozen, as it is shared). A prepared
 * statement's SQL is fixed, so are its result columns: their names and declared types; our
 * queries name their columns (no `SELECT *`) and the schema only changes before the server opens.
 */
function keepColumns(statement: Database.Statement): Database.Statement {
  const columns = statement.columns.bind(statement);
  let kept: ReturnType<typeof columns> | undefined;
  statement.columns = () => {
    kept ??= Object.freeze(columns().map((c) => Object.freeze(c))) as ReturnType<typeof columns>;
    return kept;
  };
  return statement;
}
