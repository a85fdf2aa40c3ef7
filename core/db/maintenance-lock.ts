import pg from 'pg';
import type { Config } from '../config.ts';
import { isSqliteUrl } from './sql-connection.ts';

/**
 * The registry's maintenance lock: builds (their pushes) hold the shared side, the clean-up job's
 * registry restart (its garbage collection, platform/cluster/registry.ts) the exclusive side, so
 * a restart never cuts a push and a collection never deletes the blobs of a push under way.
 *
 * PostgreSQL: a session-level advisory lock on a connection of its own, held for the span; the
 * database frees it when that connection ends (a crashed job or worker leaves nothing held).
 * Waits are bounded by `lock_timeout`; a waiting exclusive request makes later shared ones queue
 * behind it (PostgreSQL's lock queue), so builds cannot starve the job.
 *
 * SQLite: one deployer process only (the embedded registry collects at its own start and is
 * never restarted under a build): the lock is held in this process, with the same semantics.
 */
export type LockMode = 'shared' | 'exclusive';

export type MaintenanceLockOptions = {
  /** Longest wait for the lock (ms); then MaintenanceLockTimeout. */
  timeoutMs: number;
  /** Called once when the lock is not free at once (a build says so in its progress). */
  onWait?: () => void;
};

export type HeldLock = { release: () => Promise<void> };

/** The lock's key (any fixed 64-bit number no other advisory lock uses). */
export const REGISTRY_LOCK_ID = 72_246_311;

export class MaintenanceLockTimeout extends Error {
  override name = 'MaintenanceLockTimeout';
}

/** Takes the registry's maintenance lock in `mode` on the database at `url`, waiting at most `timeoutMs`. */
export async function acquireRegistryLock(
  url: string,
  mode: LockMode,
  o: MaintenanceLockOptions,
): Promise<HeldLock> {
  return isSqliteUrl(url) ? acquireInProcess(mode, o) : acquirePostgres(url, mode, o);
}

/** Runs `fn` holding the lock; released however `fn` ends. */
export async function withRegistryLock<T>(
  url: string,
  mode: LockMode,
  o: MaintenanceLockOptions,
  fn: () => Promise<T>,
): Promise<T> {
  const held = await acquireRegistryLock(url, mode, o);
  try {
    return await fn();
  } finally {
    await held.release();
  }
}

async function acquirePostgres(url: string, mode: LockMode, o: MaintenanceLockOptions): Promise<HeldLock> {
  const fn = mode === 'shared' ? 'advisory_lock_shared' : 'advisory_lock';
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  // A dropped connection frees the lock server-side; an error event must not crash the process.
  client.on('error', () => undefined);
  await client.connect();
  try {
    const tried = await client.query<{ ok: boolean }>(`SELECT pg_try_${fn}($1) AS ok`, [REGISTRY_LOCK_ID]);
    if (!tried.rows[0]?.ok) {
      o.onWait?.();
      await client.query(`SET lock_timeout = ${Math.max(1, Math.round(o.timeoutMs))}`);
      try {
        await client.query(`SELECT pg_${fn}($1)`, [REGISTRY_LOCK_ID]);
      } catch (err) {
        // 55P03: lock_not_available (lock_timeout)
        if ((err as { code?: string }).code === '55P03')
          throw new MaintenanceLockTimeout(
            `the registry's maintenance lock (${mode}) was not free within ${Math.round(o.timeoutMs / 1000)} s`,
          );
        throw err;
      }
    }
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      // Ending the session frees the lock even when the unlock cannot be sent.
      await client
        .query(`SELECT pg_${fn.replace('lock', 'unlock')}($1)`, [REGISTRY_LOCK_ID])
        .catch(() => undefined);
      await client.end().catch(() => undefined);
    },
  };
}

/** The in-process readers-writer lock (SQLite): a waiting writer goes before later readers. */
const local = { readers: 0, writer: false, queue: [] as { mode: LockMode; grant: () => void }[] };

function grantable(mode: LockMode): boolean {
  return mode === 'shared' ? !local.writer : !local.writer && local.readers === 0;
}

function take(mode: LockMode) {
  if (mode === 'shared') local.readers++;
  else local.writer = true;
}

function drain() {
  while (local.queue.length > 0) {
    const next = local.queue[0];
    if (!next || !grantable(next.mode)) break;
    local.queue.shift();
    take(next.mode);
    next.grant();
  }
}

async function acquireInProcess(mode: LockMode, o: MaintenanceLockOptions): Promise<HeldLock> {
  if (local.queue.length === 0 && grantable(mode)) take(mode);
  else {
    o.onWait?.();
    await new Promise<void>((resolve, reject) => {
      const entry = {
        mode,
        grant: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        local.queue.splice(local.queue.indexOf(entry), 1);
        drain(); // readers queued behind a writer that gave up may go now
        reject(
          new MaintenanceLockTimeout(
            `the registry's maintenance lock (${mode}) was not free within ${Math.round(o.timeoutMs / 1000)} s`,
          ),
        );
      }, o.timeoutMs);
      local.queue.push(entry);
    });
  }
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      if (mode === 'shared') local.readers--;
      else local.writer = false;
      drain();
    },
  };
}

/** How long a build waits for the lock (then it fails, and Temporal retries it). */
export const BUILD_LOCK_WAIT_MS = 300_000;

/**
 * The builds' side of the lock, in a cluster (the kubernetes runtime on PostgreSQL), where the
 * clean-up job restarts the registry under the exclusive side; undefined elsewhere (the embedded
 * registry collects at its own start, never under a build).
 */
export function registryLockForBuilds(config: Pick<Config, 'databaseUrl' | 'runtime'>) {
  if (!config.runtime.kubernetes || isSqliteUrl(config.databaseUrl)) return undefined;
  return (onWait: () => void) =>
    acquireRegistryLock(config.databaseUrl, 'shared', { timeoutMs: BUILD_LOCK_WAIT_MS, onWait });
}
