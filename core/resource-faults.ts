import fs from 'node:fs';

/**
 * "Out of disk space", recognised in every shape it reaches us: a Node system error (ENOSPC,
 * EDQUOT), the database (SQLite's SQLITE_FULL, through Prisma's driver adapter or libSQL's own
 * error; PostgreSQL's 53100 disk_full), or a child process's words (BuildKit, Pulumi, git: "no
 * space left on device"). SQLite on a full disk sometimes answers an I/O error instead (e.g.
 * SQLITE_IOERR_SHORT_READ on a read): that counts only while the disk really is nearly full.
 * Retrying cannot help until someone frees space, so callers turn it into a clear, final answer.
 */

/** The `ApplicationFailure` type of a deploy step that ran out of disk space. */
export const OUT_OF_DISK_SPACE = 'OutOfDiskSpace';

/** Where the fault was seen: the database, or a file system (with the path when Node names it). */
export type DiskFault =
  | { source: 'database'; engine?: 'sqlite' | 'postgresql' }
  | { source: 'filesystem'; path?: string };

const NO_SPACE =
  /\bENOSPC\b|\bEDQUOT\b|no space left on device|disk quota exceeded|SQLITE_FULL|database or disk is full/i;
/** SQLite's primary result codes SQLITE_IOERR and SQLITE_FULL; PostgreSQL's SQLSTATE disk_full. */
const SQLITE_IOERR = 10;
const SQLITE_FULL = 13;
const PG_DISK_FULL = '53100';

/** The disk fault behind `err` (its causes, aggregated errors and captured output included), if any. */
export function diskFault(err: unknown): DiskFault | undefined {
  return visit(err, (e) => {
    if (e.code === 'ENOSPC' || e.code === 'EDQUOT')
      return typeof e.path === 'string' ? { source: 'filesystem', path: e.path } : { source: 'filesystem' };
    const db = databaseCause(e);
    if (db) return databaseFull(e, db) ? databaseFault(db) : null;
    // A child process's error carries its output; a BuildError its log tail.
    const texts = [e.message, e.stderr, e.stdout, ...(Array.isArray(e.logTail) ? e.logTail : [])];
    const said = texts.find((t): t is string => typeof t === 'string' && NO_SPACE.test(t));
    if (!said) return undefined;
    return /SQLITE_FULL|database or disk is full/i.test(said)
      ? { source: 'database', engine: 'sqlite' }
      : { source: 'filesystem' };
  });
}

/**
 * The disk fault behind `err`, or an I/O error while one of `paths` is nearly full (a full disk
 * is its likely cause). `full` is the first of `paths` whose file system is nearly full.
 */
export async function outOfDiskSpace(
  err: unknown,
  paths: (string | undefined)[],
): Promise<(DiskFault & { full?: string }) | undefined> {
  const fault = diskFault(err);
  const io = fault ? undefined : ioFault(err);
  if (!fault && !io) return undefined;
  const full = await nearlyFull(paths);
  if (fault) return full ? { ...fault, full } : fault;
  return full && io ? { ...io, full } : undefined;
}

/** An I/O error a full disk can cause (SQLite's SQLITE_IOERR family, EIO), as the fault it would be. */
function ioFault(err: unknown): DiskFault | undefined {
  return visit(err, (e) => {
    if (e.code === 'EIO') return { source: 'filesystem' };
    const db = databaseCause(e);
    if (!db) return undefined;
    const code = Number(db.originalCode ?? db.rawCode ?? Number.NaN);
    // The primary result code is the extended code's low byte.
    const ioerr = (code & 0xff) === SQLITE_IOERR || /^SQLITE_IOERR/.test(String(db.code ?? ''));
    return ioerr ? databaseFault(db) : null;
  });
}

/** The first of `paths` whose file system has less than 1% (at most 64 MiB, at least 1 MiB) free. */
async function nearlyFull(paths: (string | undefined)[]): Promise<string | undefined> {
  for (const p of paths) {
    if (!p) continue;
    try {
      const s = await fs.promises.statfs(p);
      const free = s.bavail * s.bsize;
      const margin = Math.min(64 * 2 ** 20, Math.max(2 ** 20, (s.blocks * s.bsize) / 100));
      if (free < margin) return p;
    } catch {
      // A path that cannot be checked names nothing.
    }
  }
  return undefined;
}

type Fields = Record<string, unknown>;

/**
 * Walks `err`, its causes and aggregated errors (bounded, cycle-safe). `test` answers a fault, or
 * null to stop looking (this error is understood and is not one), or undefined to look deeper.
 */
function visit(err: unknown, test: (e: Fields) => DiskFault | null | undefined): DiskFault | undefined {
  const seen = new Set<unknown>();
  const walk = (e: unknown, depth: number): DiskFault | undefined => {
    if (typeof e !== 'object' || e === null || depth > 8 || seen.has(e)) return undefined;
    seen.add(e);
    const f = e as Fields;
    const found = test(f);
    if (found !== undefined) return found ?? undefined;
    for (const n of [f.cause, ...(Array.isArray(f.errors) ? f.errors : [])]) {
      const inner = walk(n, depth + 1);
      if (inner) return inner;
    }
    return undefined;
  };
  return walk(err, 0);
}

/**
 * The database driver's own error inside `e`: Prisma's driver-adapter cause (`kind`, `originalCode`),
 * or a libSQL error (`code: 'SQLITE_…'`, `rawCode`) as interactive transactions throw it.
 */
function databaseCause(e: Fields): Fields | undefined {
  const adapter = (e.meta as { driverAdapterError?: { cause?: Fields } } | undefined)?.driverAdapterError
    ?.cause;
  if (adapter) return adapter;
  if (e.name === 'DriverAdapterError' && typeof e.cause === 'object' && e.cause) return e.cause as Fields;
  if (typeof e.code === 'string' && /^SQLITE_/.test(e.code)) return { ...e, kind: 'sqlite' };
  return undefined;
}

function databaseFault(db: Fields): DiskFault {
  if (db.kind === 'postgres') return { source: 'database', engine: 'postgresql' };
  return db.kind === 'sqlite' ? { source: 'database', engine: 'sqlite' } : { source: 'database' };
}

function databaseFull(e: Fields, db: Fields): boolean {
  const code = String(db.originalCode ?? db.rawCode ?? '');
  if (db.kind === 'sqlite' && (code === String(SQLITE_FULL) || db.code === 'SQLITE_FULL')) return true;
  if (code === PG_DISK_FULL) return true;
  return [e.message, db.originalMessage, db.message].some((t) => typeof t === 'string' && NO_SPACE.test(t));
}
