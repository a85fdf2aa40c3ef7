import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EmbeddedPostgres,
  POSTGRES_SUPERUSER,
  startEmbeddedPostgres,
} from '../../core/daemons/postgres.ts';
import { freePort } from '../../core/daemons/probes.ts';
import { postgresResourceProgram } from '../../tenant-stacks/resources/program.ts';
import { TenantStackRunner } from '../../tenant-stacks/runner.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

/** Every process (any mount namespace) that still sees a mount of `dir`. */
function mountsOf(dir: string): string[] {
  const seen: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').includes(dir)) seen.push(pid);
    } catch {}
  }
  return seen;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function tryQuery(config: pg.ClientConfig, sql = 'select 1'): Promise<string> {
  const c = new pg.Client({ ...config, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    await c.query(sql);
    return 'ok';
  } catch (err) {
    return (err as Error).message;
  } finally {
    await c.end().catch(() => undefined);
  }
}

describe('embedded PostgreSQL and the postgres resource stack', () => {
  // Work dirs inside the repo: the dynamic-provider launcher resolves @pulumi/pulumi from there.
  const work = scratchDir('pg-resources', path.join(repoRoot, '.data', 'test'));
  const dataDir = path.join(work.dir, 'data');
  const pgDir = path.join(dataDir, 'postgres');
  let server: EmbeddedPostgres | undefined;
  const runner = new TenantStackRunner({
    projectName: 'deploy-mcp-resources-test',
    backendUrl: `file://${path.join(dataDir, 'pulumi')}`,
    workRoot: path.join(work.dir, 'work'),
    passphrase: 'resources-test-passphrase',
  });
  const passwords = { a: `canary-a-${Date.now()}`, b: `canary-b-${Date.now()}` };
  const spec = (key: 'a' | 'b', connectionLimit = 5) => ({
    admin: { socketDir: server?.socketDir ?? '', port: server?.port ?? 0, user: POSTGRES_SUPERUSER },
    database: `db_${key}`,
    role: `db_${key}`,
    password: passwords[key],
    connectionLimit,
  });
  const asRole = (key: 'a' | 'b', database = `db_${key}`): pg.ClientConfig => ({
    host: '127.0.0.1',
    port: server?.port ?? 0,
    user: `db_${key}`,
    password: passwords[key],
    database,
  });

  beforeAll(async () => {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    server = await startEmbeddedPostgres({ dir: pgDir, port: await freePort() });
  }, 120_000);

  afterAll(async () => {
    try {
      await server?.stop();
    } finally {
      work.cleanup();
    }
  }, 60_000);

  it('keeps its files to the postgres user inside a root-only data dir, and the superuser off the network', async () => {
    const cluster = fs.statSync(path.join(pgDir, 'cluster'));
    const postgresUid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    expect(cluster.uid).toBe(postgresUid);
    expect(cluster.mode & 0o777).toBe(0o700);
    expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(pgDir).mode & 0o777).toBe(0o700);
    // The postgres user cannot reach the files by their real path.
    const denied = (() => {
      try {
        execFileSync(
          'setpriv',
          ['--reuid=postgres', '--regid=postgres', '--init-groups', 'ls', path.join(pgDir, 'cluster')],
          {
            stdio: 'pipe',
          },
        );
        return 'listed';
      } catch (err) {
        return String((err as { stderr?: Buffer }).stderr);
      }
    })();
    expect(denied).toMatch(/Permission denied/);
    // The superuser: over the socket with peer authentication; never over TCP.
    expect(await tryQuery(server?.adminConnection ?? {})).toBe('ok');
    expect(
      await tryQuery({
        host: '127.0.0.1',
        port: server?.port,
        user: POSTGRES_SUPERUSER,
        password: 'x',
        database: 'postgres',
      }),
    ).toMatch(/pg_hba\.conf rejects|no pg_hba\.conf entry/);
  });

  it('a resource stack makes an isolated database: own role, SCRAM, no PUBLIC connect, connection limit', async () => {
    await runner.up('res-a', postgresResourceProgram(spec('a')));
    await runner.up('res-b', postgresResourceProgram(spec('b')));
    expect(
      await tryQuery(asRole('a'), 'create table notes (body text); insert into notes values ($$hi$$)'),
    ).toBe('ok');
    // One resource's credentials cannot open another's database, nor the server's own.
    expect(await tryQuery(asRole('a', 'db_b'))).toMatch(/permission denied for database "db_b"/);
    expect(await tryQuery(asRole('a', 'postgres'))).toMatch(/permission denied for database "postgres"/);
    expect(await tryQuery({ ...asRole('a'), password: 'wrong' })).toMatch(/password authentication failed/);
    // The server holds a SCRAM verifier, not the password.
    const admin = new pg.Client(server?.adminConnection ?? {});
    await admin.connect();
    try {
      const { rows } = await admin.query(`select rolpassword from pg_authid where rolname = 'db_a'`);
      expect(String(rows[0]?.rolpassword)).toMatch(/^SCRAM-SHA-256\$4096:/);
      expect(String(rows[0]?.rolpassword)).not.toContain(passwords.a);
    } finally {
      await admin.end();
    }
    // small: 5 connections; the 6th is refused.
    const held: pg.Client[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const c = new pg.Client(asRole('b'));
        await c.connect();
        held.push(c);
      }
      expect(await tryQuery(asRole('b'))).toMatch(/too many connections for role "db_b"/);
    } finally {
      await Promise.all(held.map((c) => c.end().catch(() => undefined)));
    }
  }, 180_000);

  it('keeps the passwords out of the stack state and the server log, in clear', () => {
    const hits: string[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile() && fs.statSync(p).size < 50_000_000) {
          const body = fs.readFileSync(p);
          if (body.includes(passwords.a) || body.includes(passwords.b)) hits.push(p);
        }
      }
    };
    walk(dataDir);
    walk(path.join(work.dir, 'work'));
    expect(hits).toEqual([]);
  });

  it('rotating the password (a stack update) stops the old one; destroy drops the database and role', async () => {
    const old = passwords.a;
    passwords.a = `canary-a2-${Date.now()}`;
    await runner.up('res-a', postgresResourceProgram(spec('a')));
    expect(await tryQuery({ ...asRole('a'), password: old })).toMatch(/password authentication failed/);
    expect(await tryQuery(asRole('a'), 'select * from notes')).toBe('ok');
    await runner.destroy('res-a');
    await runner.destroy('res-b');
    const admin = new pg.Client(server?.adminConnection ?? {});
    await admin.connect();
    try {
      const dbs = await admin.query(`select datname from pg_database where datname in ('db_a', 'db_b')`);
      const roles = await admin.query(`select rolname from pg_roles where rolname in ('db_a', 'db_b')`);
      expect(dbs.rowCount).toBe(0);
      expect(roles.rowCount).toBe(0);
    } finally {
      await admin.end();
    }
  }, 180_000);

  it('stops leaving no process and no mount behind; a restart finds the cluster', async () => {
    const first = server as EmbeddedPostgres;
    await first.stop();
    expect(alive(first.pid)).toBe(false);
    const runDir = path.dirname(first.socketDir);
    expect(mountsOf(runDir)).toEqual([]);
    server = await startEmbeddedPostgres({ dir: pgDir, port: first.port });
    expect(await tryQuery(server.adminConnection)).toBe('ok');
    expect(mountsOf(runDir).length).toBeGreaterThan(0); // the probe sees a running server's mount
    const pid = server.pid;
    await server.stop();
    server = undefined;
    expect(alive(pid)).toBe(false);
    expect(mountsOf(runDir)).toEqual([]);
    expect(fs.existsSync(runDir)).toBe(false);
  }, 120_000);
});
