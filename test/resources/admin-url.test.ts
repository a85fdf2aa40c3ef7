import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresResourceProgram } from '../../tenant-stacks/resources/program.ts';
import { TenantStackRunner } from '../../tenant-stacks/runner.ts';
import { startTestPostgres, type TestPostgres } from '../support/postgres.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

/**
 * The production path (DEPLOY_MCP_POSTGRES_ADMIN_URL): the resource stack against a PostgreSQL
 * server the operator runs, through an admin role that is no superuser (CREATEROLE, CREATEDB).
 */
describe('postgres resources on a server given by an admin URL', () => {
  const work = scratchDir('pg-admin-url', path.join(repoRoot, '.data', 'test'));
  let server: TestPostgres;
  let adminUrl = '';
  let port = 0;
  const runner = new TenantStackRunner({
    projectName: 'deploy-mcp-admin-url-test',
    backendUrl: `file://${path.join(work.dir, 'state')}`,
    workRoot: path.join(work.dir, 'work'),
    passphrase: 'admin-url-test',
  });

  beforeAll(async () => {
    server = await startTestPostgres();
    const su = new URL(await server.createDatabase('operator'));
    port = Number(su.port);
    const c = new pg.Client({ connectionString: su.toString() });
    await c.connect();
    try {
      await c.query(`CREATE ROLE dmcp_admin LOGIN CREATEROLE CREATEDB PASSWORD 'admin-secret'`);
    } finally {
      await c.end();
    }
    adminUrl = `postgresql://dmcp_admin:admin-secret@127.0.0.1:${port}/postgres`;
  }, 120_000);

  afterAll(async () => {
    try {
      await server?.stop();
    } finally {
      work.cleanup();
    }
  }, 60_000);

  it('makes, isolates and drops a database through a non-superuser admin role', async () => {
    await runner.up(
      'res-admin-url',
      postgresResourceProgram({
        admin: { url: adminUrl },
        database: 'app_one',
        role: 'app_one',
        password: 'app-one-password',
        connectionLimit: 5,
      }),
    );
    const app = new pg.Client({
      connectionString: `postgresql://app_one:app-one-password@127.0.0.1:${port}/app_one`,
    });
    await app.connect();
    try {
      await app.query('create table t (v int)');
      await app.query('insert into t values (1)');
      expect((await app.query('select count(*)::int as n from t')).rows[0]?.n).toBe(1);
      const { rows } = await app.query(
        `select datconnlimit, pg_get_userbyid(datdba) as owner from pg_database where datname = 'app_one'`,
      );
      expect(rows[0]).toEqual({ datconnlimit: 5, owner: 'app_one' });
      const acl = await app.query(`select datacl::text from pg_database where datname = 'app_one'`);
      expect(String(acl.rows[0]?.datacl)).not.toMatch(/(^|[{,])=/); // no PUBLIC entry
    } finally {
      await app.end();
    }
    // The admin URL and the role's password are secrets in the stack's state.
    const state = JSON.stringify(await runner.read('res-admin-url'));
    expect(state).toContain('app_one');
    const files = fs.readdirSync(path.join(work.dir, 'state'), { recursive: true, withFileTypes: true });
    const stacks = files.filter((e) => e.isFile() && e.name.startsWith('res-admin-url'));
    expect(stacks.length).toBeGreaterThan(0);
    for (const f of files.filter((e) => e.isFile())) {
      const body = fs.readFileSync(path.join(f.parentPath, f.name), 'utf8');
      expect(body, f.name).not.toContain('admin-secret');
      expect(body, f.name).not.toContain('app-one-password');
    }
    await runner.destroy('res-admin-url');
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      expect((await admin.query(`select 1 from pg_database where datname = 'app_one'`)).rowCount).toBe(0);
      expect((await admin.query(`select 1 from pg_roles where rolname = 'app_one'`)).rowCount).toBe(0);
    } finally {
      await admin.end();
    }
  }, 180_000);
});
