import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { childEnv } from '../child-env.ts';
import { APPS_SUBNET_POOL } from './podman.ts';
import { type Daemon, startDaemon } from './supervise.ts';

const run = promisify(execFile);

/*
 * The embedded PostgreSQL that `postgres` resources live on (Debian's PostgreSQL server).
 *
 * - Its files live under `<dataDir>/postgres/cluster` (owned by the `postgres` user, 0700), inside
 *   the data dir, which stays 0700 root: no other user of the machine can reach them. The server
 *   (and initdb) run as `postgres` in a mount namespace of their own, where that directory is
 *   bind-mounted on a path `postgres` can traverse (`/run/deploy-mcp-pg/<digest>/data`). The bind
 *   mount exists only in that namespace and goes with its last process.
 * - The superuser (`postgres`) has no password: it connects only over the unix socket (a 0700
 *   directory of `postgres`, which root, the server's user, may enter) with peer authentication,
 *   root mapped onto it. Tenants' roles use scram-sha-256, from loopback and the apps' network
 *   only (pg_hba.conf, rewritten at each start).
 * - Statements that fail are not logged: a failed CREATE ROLE would print its verifier.
 */

export type EmbeddedPostgresOptions = {
  /** `<dataDir>/postgres`: pid file, log, and the cluster's files. */
  dir: string;
  port: number;
  /** Directory of Debian's server binaries; default: the newest under /usr/lib/postgresql. */
  binDir?: string;
};

export type EmbeddedPostgres = Daemon & {
  port: number;
  /** Unix socket directory: the superuser's only way in (peer authentication). */
  socketDir: string;
  binDir: string;
  /** Superuser connection settings for `pg` (over the unix socket). */
  adminConnection: { host: string; port: number; user: string; database: string };
};

/** The superuser's name; it has no password (peer authentication over the socket only). */
export const POSTGRES_SUPERUSER = 'postgres';
const RUN_ROOT = '/run/deploy-mcp-pg';

/** The newest PostgreSQL server Debian installed (setup installs the `postgresql` package). */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  if (!versions[0]) throw new Error('PostgreSQL is not installed (run npm run setup)');
  return path.join(root, versions[0], 'bin');
}

/** Per-cluster paths outside the data dir: short (a socket path has at most 107 bytes) and traversable. */
function runPaths(dir: string) {
  const digest = createHash('sha256').update(path.resolve(dir)).digest('hex').slice(0, 12);
  const root = path.join(RUN_ROOT, digest);
  return { root, mountPoint: path.join(root, 'data'), socketDir: path.join(root, 'socket') };
}

async function postgresIds() {
  const { stdout } = await run('id', ['-u', 'postgres']);
  const uid = Number(stdout.trim());
  const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
  return { uid, gid };
}

/**
 * `command` as user `postgres`, in a new mount namespace where `cluster` is bind-mounted on
 * `mountPoint`. Arguments travel as positional parameters, never through the shell's parser.
 */
function inNamespace(cluster: string, mountPoint: string, command: string[]): [string, string[]] {
  return [
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      '--',
      'sh',
      '-c',
      'mount --bind "$1" "$2" && shift 2 && exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"',
      'sh',
      cluster,
      mountPoint,
      ...command,
    ],
  ];
}

/** Starts (or adopts) the embedded PostgreSQL server; the first start creates its cluster. */
export async function startEmbeddedPostgres(o: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const binDir = o.binDir ?? postgresBinDir();
  const { uid, gid } = await postgresIds();
  const cluster = path.join(o.dir, 'cluster');
  const paths = runPaths(o.dir);
  fs.mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(o.dir, 0o700);
  fs.mkdirSync(cluster, { recursive: true, mode: 0o700 });
  fs.chownSync(cluster, uid, gid);
  fs.chmodSync(cluster, 0o700);
  fs.mkdirSync(RUN_ROOT, { recursive: true, mode: 0o755 });
  fs.mkdirSync(paths.mountPoint, { recursive: true, mode: 0o755 });
  fs.mkdirSync(paths.socketDir, { recursive: true, mode: 0o700 });
  fs.chownSync(paths.socketDir, uid, gid);
  fs.chmodSync(paths.socketDir, 0o700);

  const pgdata = path.join(paths.mountPoint, 'pgdata');
  if (!fs.existsSync(path.join(cluster, 'pgdata', 'PG_VERSION'))) {
    fs.rmSync(path.join(cluster, 'pgdata'), { recursive: true, force: true });
    const [cmd, args] = inNamespace(cluster, paths.mountPoint, [
      path.join(binDir, 'initdb'),
      '-D',
      pgdata,
      '-U',
      POSTGRES_SUPERUSER,
      '--auth-local=peer',
      '--auth-host=scram-sha-256',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-instructions',
    ]);
    await run(cmd, args, { env: childEnv(), cwd: '/' });
  }
  // Who may connect how: rewritten at each start, so an edit by hand does not survive.
  const hba = path.join(cluster, 'pgdata', 'pg_hba.conf');
  const ident = path.join(cluster, 'pgdata', 'pg_ident.conf');
  fs.writeFileSync(
    hba,
    [
      '# Written by deploy-mcp at each start (core/daemons/postgres.ts); edits are lost.',
      `local all ${POSTGRES_SUPERUSER} peer map=admin`,
      'local all all reject',
      `host all ${POSTGRES_SUPERUSER} 0.0.0.0/0 reject`,
      `host all ${POSTGRES_SUPERUSER} ::/0 reject`,
      'host all all 127.0.0.1/32 scram-sha-256',
      `host all all ${APPS_SUBNET_POOL.base} scram-sha-256`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  fs.writeFileSync(ident, `admin root ${POSTGRES_SUPERUSER}\nadmin postgres ${POSTGRES_SUPERUSER}\n`, {
    mode: 0o600,
  });
  for (const f of [hba, ident]) fs.chownSync(f, uid, gid);

  const adminConnection = {
    host: paths.socketDir,
    port: o.port,
    user: POSTGRES_SUPERUSER,
    database: 'postgres',
  };
  const [cmd, args] = inNamespace(cluster, paths.mountPoint, [
    path.join(binDir, 'postgres'),
    '-D',
    pgdata,
    '-c',
    `port=${o.port}`,
    // Loopback and the apps' bridges (pg_hba.conf refuses every other source).
    '-c',
    'listen_addresses=0.0.0.0',
    '-c',
    `unix_socket_directories=${paths.socketDir}`,
    '-c',
    'unix_socket_permissions=0700',
    '-c',
    'password_encryption=scram-sha-256',
    '-c',
    'log_min_error_statement=panic',
    '-c',
    'log_statement=none',
    '-c',
    'max_connections=300',
    '-c',
    'shared_buffers=32MB',
  ]);
  const daemon = await startDaemon({
    name: 'postgres',
    command: cmd,
    args,
    cwd: '/',
    logFile: path.join(o.dir, 'postgres.log'),
    configFiles: [hba, ident],
    ports: { postgres: o.port },
    ready: async () => {
      const c = new pg.Client({ ...adminConnection, connectionTimeoutMillis: 2000 });
      try {
        await c.connect();
        await c.query('select 1');
        return true;
      } catch {
        return false;
      } finally {
        await c.end().catch(() => undefined);
      }
    },
    readyTimeoutMs: 60_000,
    stopTimeoutMs: 15_000,
  });
  // Nobody but a resource's own role connects to its database (resources revoke the rest).
  const c = new pg.Client(adminConnection);
  await c.connect();
  try {
    await c.query(`REVOKE CONNECT ON DATABASE postgres FROM PUBLIC`);
    await c.query(`REVOKE ALL ON DATABASE template1 FROM PUBLIC`);
  } finally {
    await c.end().catch(() => undefined);
  }
  return {
    ...daemon,
    port: o.port,
    socketDir: paths.socketDir,
    binDir,
    adminConnection,
    stop: async () => {
      // SIGINT is PostgreSQL's fast shutdown: it does not wait for apps' connections to close.
      try {
        process.kill(daemon.pid, 'SIGINT');
      } catch {}
      await daemon.stop();
      // The mount point and socket directory (the mount itself went with the server's namespace).
      fs.rmSync(paths.root, { recursive: true, force: true });
    },
  };
}

/** The embedded server, started on first use (or at once when it holds databases already). */
export type PostgresOnDemand = {
  port: number;
  socketDir: string;
  binDir: string;
  /** True when its cluster exists (databases may live there): start it with the runtime. */
  initialized: boolean;
  /** Starts it once (concurrent callers share the start); a failed start is tried again next time. */
  ensure: () => Promise<EmbeddedPostgres>;
};

export function embeddedPostgresOnDemand(
  o: EmbeddedPostgresOptions,
  onStop: (name: string, fn: () => Promise<void>) => void,
): PostgresOnDemand {
  let started: Promise<EmbeddedPostgres> | undefined;
  return {
    port: o.port,
    socketDir: runPaths(o.dir).socketDir,
    binDir: o.binDir ?? postgresBinDir(),
    initialized: fs.existsSync(path.join(o.dir, 'cluster', 'pgdata', 'PG_VERSION')),
    ensure: () => {
      started ??= startEmbeddedPostgres(o).then(
        (server) => {
          onStop('postgres', server.stop);
          return server;
        },
        (err: unknown) => {
          started = undefined;
          throw err;
        },
      );
      return started;
    },
  };
}
