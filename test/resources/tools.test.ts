import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../core/db/client.ts';
import { tenantWorkRoot } from '../../tenant-stacks/from-config.ts';
import { call, connectClient, text } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { CLI, type ServeProcess, startServe } from '../support/serve.ts';

const exec = promisify(execFile);

type ResourceView = {
  name: string;
  type: string;
  size: string;
  region: string;
  status: string;
  status_reason?: string;
  connection: Record<string, string>;
  services: string[];
};

/** The app-facing URL, reached from this machine (apps use host.containers.internal). */
function fromHost(url: string): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  return u.toString();
}

async function tryQuery(connectionString: string, sql = 'select 1'): Promise<string> {
  const c = new pg.Client({ connectionString, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    const r = await c.query(sql);
    return JSON.stringify(r.rows);
  } catch (err) {
    return `error: ${(err as Error).message}`;
  } finally {
    await c.end().catch(() => undefined);
  }
}

describe('resources through MCP on the embedded default (postgres)', () => {
  const work = scratchDir('resources-tools', path.join(repoRoot, '.data', 'test'));
  const dataDir = path.join(work.dir, 'data');
  let serve: ServeProcess;
  let alice: Client;
  let bob: Client;
  const keys: Record<string, string> = {};
  const run = `${Date.now().toString(36)}`;
  const revealed: string[] = [];

  /** An account and a key (kept, to reconnect after a restart), and a client with it. */
  async function agent(email: string): Promise<Client> {
    await exec(CLI, ['users', 'create', email], { env: serve.env });
    const { stdout } = await exec(CLI, ['keys', 'create', email], { env: serve.env });
    keys[email] = stdout.trim().split('\n').at(-1) ?? '';
    return connectClient(`${serve.env.DEPLOY_MCP_PUBLIC_URL}/mcp`, keys[email]);
  }

  beforeAll(async () => {
    serve = await startServe(dataDir, { env: { DEPLOY_MCP_MAX_RESOURCES: '3' } });
    alice = await agent('alice@example.com');
    bob = await agent('bob@example.com');
  }, 180_000);

  // A serve that died in an earlier test is started again, so its failure does not cascade.
  beforeEach(async () => {
    if (!serve.hasExited()) return;
    serve = await serve.revive();
    const url = `${serve.env.DEPLOY_MCP_PUBLIC_URL}/mcp`;
    alice = await connectClient(url, keys['alice@example.com'] ?? '');
    bob = await connectClient(url, keys['bob@example.com'] ?? '');
  }, 180_000);

  afterAll(async () => {
    try {
      await alice?.close();
      await bob?.close();
      await serve?.stop();
    } finally {
      work.cleanup();
    }
  }, 120_000);

  async function create(client: Client, name: string, extra: Record<string, unknown> = {}) {
    const r = await call(client, 'create_resource', { name, type: 'postgres', ...extra });
    expect(r.isError, text(r)).toBeFalsy();
    return r.structuredContent as ResourceView;
  }

  async function reveal(client: Client, name: string): Promise<ResourceView> {
    const r = await call(client, 'get_resource', { name, include_secrets: true });
    expect(r.isError, text(r)).toBeFalsy();
    const view = r.structuredContent as ResourceView;
    if (view.connection.PGPASSWORD) revealed.push(view.connection.PGPASSWORD);
    return view;
  }

  it('create_resource makes a ready database: masked by default, usable with the revealed DATABASE_URL', async () => {
    const created = await create(alice, `db-${run}`);
    expect(created).toMatchObject({ type: 'postgres', size: 'small', region: 'local', status: 'ready' });
    expect(Object.keys(created.connection).sort()).toEqual(
      ['DATABASE_URL', 'PGDATABASE', 'PGHOST', 'PGPASSWORD', 'PGPORT', 'PGUSER'].sort(),
    );
    expect(new Set(Object.values(created.connection))).toEqual(new Set(['********']));
    const view = await reveal(alice, `db-${run}`);
    expect(view.connection.PGHOST).toBe('host.containers.internal');
    expect(view.connection.DATABASE_URL).toContain(`@host.containers.internal:${serve.ports.postgres}/`);
    const url = fromHost(view.connection.DATABASE_URL ?? '');
    expect(await tryQuery(url, 'create table notes (body text)')).toBe('[]');
    expect(await tryQuery(url, `insert into notes values ('first') returning body`)).toBe(
      '[{"body":"first"}]',
    );
    // Calling again is safe: the same resource, same credentials.
    await create(alice, `db-${run}`);
    expect((await reveal(alice, `db-${run}`)).connection.PGPASSWORD).toBe(view.connection.PGPASSWORD);
    const again = await call(alice, 'create_resource', { name: `db-${run}`, type: 'sqlite' });
    expect(text(again)).toMatch(/exists already as postgres/);
  }, 240_000);

  it("one resource's credentials cannot open another's database; other tenants see nothing", async () => {
    await create(alice, `one-${run}`);
    await create(bob, `two-${run}`);
    const one = await reveal(alice, `one-${run}`);
    const two = await reveal(bob, `two-${run}`);
    const crossed = new URL(fromHost(one.connection.DATABASE_URL ?? ''));
    crossed.pathname = `/${two.connection.PGDATABASE}`;
    expect(await tryQuery(crossed.toString())).toMatch(/permission denied for database/);
    crossed.pathname = '/postgres';
    expect(await tryQuery(crossed.toString())).toMatch(/permission denied for database "postgres"/);
    // Bob's tools do not see Alice's resources, and the other way round.
    const bobList = (await call(bob, 'list_resources')).structuredContent as {
      resources: { name: string }[];
    };
    expect(bobList.resources.map((r) => r.name)).toEqual([`two-${run}`]);
    for (const tool of ['get_resource', 'delete_resource'])
      expect(text(await call(bob, tool, { name: `one-${run}` }))).toMatch(/not found/);
    const aliceList = (await call(alice, 'list_resources')).structuredContent as {
      resources: { name: string }[];
    };
    expect(aliceList.resources.map((r) => r.name)).not.toContain(`two-${run}`);
  }, 240_000);

  it('refuses what the server does not offer, and beyond the limit', async () => {
    expect(
      text(await call(alice, 'create_resource', { name: 'x', type: 'postgres', region: 'fra' })),
    ).toMatch(/region "fra" is not offered for postgres here; regions: local/);
    expect(text(await call(alice, 'create_resource', { name: 'x', type: 'mysql' }))).toMatch(
      /type must be one of/,
    );
    // Alice has at most 2 resources from the tests above; the limit is 3.
    const live = ((await call(alice, 'list_resources')).structuredContent as { resources: unknown[] })
      .resources;
    for (let i = live.length; i < 3; i++) await create(alice, `fill${i}-${run}`);
    expect(text(await call(alice, 'create_resource', { name: `over-${run}`, type: 'postgres' }))).toMatch(
      /the most this server allows \(3\)/,
    );
  }, 300_000);

  it('delete_resource refuses while attached (naming the services), then detaches, keeps a 0600 backup and drops the data', async () => {
    const name = `del-${run}`;
    // Bob has one resource; he gets a second to delete.
    await create(bob, name);
    const view = await reveal(bob, name);
    const url = fromHost(view.connection.DATABASE_URL ?? '');
    expect(await tryQuery(url, 'create table kept (v int)')).toBe('[]');
    expect(await tryQuery(url, 'insert into kept values (42)')).toBe('[]');
    // Attach it to a service row (attach_resource lands with the wiring).
    const db = await openDatabase(`file:${path.join(dataDir, 'deploy-mcp.db')}`);
    try {
      const resource = await db.prisma.resource.findFirstOrThrow({ where: { name, deletedAt: null } });
      const service = await db.prisma.service.create({
        data: {
          userId: resource.userId,
          projectId: resource.projectId,
          name: 'web',
          stackName: `svc-test-${run}`,
          repoUrl: 'code',
        },
      });
      await db.prisma.serviceResource.create({ data: { serviceId: service.id, resourceId: resource.id } });
    } finally {
      await db.close();
    }
    const refused = await call(bob, 'delete_resource', { name });
    expect(refused.isError).toBe(true);
    expect(text(refused)).toMatch(/attached to "web".*detach: true/);
    const deleted = await call(bob, 'delete_resource', { name, detach: true });
    expect(deleted.isError, text(deleted)).toBeFalsy();
    const result = deleted.structuredContent as { deleted: boolean; backup: string; detached: string[] };
    expect(result).toMatchObject({ deleted: true, detached: ['web'] });
    const backup = path.join(dataDir, 'backups', result.backup);
    expect(fs.statSync(backup).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(backup).subarray(0, 5).toString()).toBe('PGDMP');
    expect(fs.readFileSync(backup).includes('kept')).toBe(true);
    expect(await tryQuery(url)).toMatch(/error: .*(password authentication failed|does not exist)/);
    expect(text(await call(bob, 'get_resource', { name }))).toMatch(/not found/);
    // The name can be used again.
    await create(bob, name);
  }, 300_000);

  it('rotate_resource_credentials: the old password stops working, the new one opens the same data', async () => {
    const name = `one-${run}`;
    const before = await reveal(alice, name);
    const oldUrl = fromHost(before.connection.DATABASE_URL ?? '');
    expect(await tryQuery(oldUrl, 'create table if not exists kept (v int)')).toBe('[]');
    expect(await tryQuery(oldUrl, 'insert into kept values (7)')).toBe('[]');
    const rotated = await call(alice, 'rotate_resource_credentials', { name });
    expect(rotated.isError, text(rotated)).toBeFalsy();
    expect(rotated.structuredContent).toMatchObject({ status: 'rotated', redeployed: [] });
    const after = await reveal(alice, name);
    expect(after.connection.PGPASSWORD).not.toBe(before.connection.PGPASSWORD);
    expect(after.connection.PGUSER).toBe(before.connection.PGUSER);
    expect(await tryQuery(oldUrl)).toMatch(/password authentication failed/);
    expect(await tryQuery(fromHost(after.connection.DATABASE_URL ?? ''), 'select v from kept')).toBe(
      '[{"v":7}]',
    );
    // deploy-mcp audit --resource: the rotation is an update that changed the password, shown without it.
    const { stdout } = await exec(
      CLI,
      ['audit', name, '--resource', '--user', 'alice@example.com', '--json'],
      {
        env: serve.env,
      },
    );
    expect(stdout).not.toContain(after.connection.PGPASSWORD ?? '?');
    expect(stdout).not.toContain(before.connection.PGPASSWORD ?? '?');
    const report = JSON.parse(stdout) as {
      resource: { credentialVersion: number; status: string };
      stack: string;
      history: {
        kind: string;
        result: string;
        changes: { properties: { path: string; secretChanged?: true }[] }[];
      }[];
    };
    expect(report.resource).toMatchObject({ credentialVersion: 2, status: 'ready' });
    expect(report.stack).toBe('live');
    expect(report.history.map((u) => `${u.kind} ${u.result}`)).toEqual([
      'update succeeded',
      'update succeeded',
    ]);
    const rotation = report.history[0]?.changes.flatMap((c) => c.properties) ?? [];
    expect(rotation).toContainEqual(expect.objectContaining({ path: 'password', secretChanged: true }));
  }, 240_000);

  it('no revealed password is anywhere in clear under the data dir (database, Temporal, Pulumi state, logs)', () => {
    expect(revealed.length).toBeGreaterThan(3);
    const hits: string[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile() && fs.statSync(p).size < 200_000_000) {
          let body: Buffer;
          try {
            body = fs.readFileSync(p);
          } catch {
            continue; // a special file (e.g. under a daemon's mount)
          }
          for (const secret of revealed) if (body.includes(secret)) hits.push(`${p}: ${secret.slice(0, 4)}…`);
        }
      }
    };
    walk(dataDir);
    if (fs.existsSync(tenantWorkRoot(dataDir))) walk(tenantWorkRoot(dataDir));
    expect(serve.output()).not.toMatch(new RegExp(revealed.join('|')));
    expect(hits).toEqual([]);
  });
});
