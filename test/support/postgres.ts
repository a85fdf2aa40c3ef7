import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../../core/daemons/probes.ts';
import { type Daemon, startDaemon } from '../../core/daemons/supervise.ts';

/** The newest PostgreSQL server Debian installed (setup installs the `postgresql` package). */
function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  if (!versions[0]) throw new Error('PostgreSQL is not installed (run npm run setup)');
  return path.join(root, versions[0], 'bin');
}

export type TestPostgres = Daemon & {
  /** A new, empty database on this server; returns its URL. */
  createDatabase: (name: string) => Promise<string>;
};

/** A throwaway PostgreSQL cluster on 127.0.0.1 (run as the `postgres` user; root may not). */
export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = postgresBinDir();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-'));
  fs.chmodSync(dir, 0o755);
  const data = path.join(dir, 'data');
  fs.mkdirSync(data);
  execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  execFileSync(
    'runuser',
    [
      '-u',
      'postgres',
      '--',
      path.join(bin, 'initdb'),
      '-D',
      data,
      '-U',
      'postgres',
      '--auth=trust',
      '-E',
      'UTF8',
      '--no-sync',
    ],
    { stdio: 'pipe' },
  );
  const port = await freePort();
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const daemon = await startDaemon({
    name: 'postgres',
    command: 'runuser',
    args: [
      '-u',
      'postgres',
      '--',
      path.join(bin, 'postgres'),
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      '-c',
      'full_page_writes=off',
    ],
    logFile: path.join(dir, 'postgres.log'),
    ready: async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      try {
        await c.connect();
        await c.query('select 1');
        return true;
      } finally {
        await c.end().catch(() => undefined);
      }
    },
  });
  return {
    ...daemon,
    stop: async () => {
      try {
        await daemon.stop();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
    createDatabase: async (name) => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE "${name.replace(/[^a-z0-9_]/g, '_')}"`);
      } finally {
        await c.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name.replace(/[^a-z0-9_]/g, '_')}`;
    },
  };
}
