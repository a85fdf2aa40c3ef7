import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createClient } from '@libsql/client';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../core/db/client.ts';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { eventually, httpGet } from '../support/http.ts';
import { call, connectClient, text } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { CLI, type ServeProcess, startServe } from '../support/serve.ts';

const exec = promisify(execFile);

type ServiceView = {
  status: string;
  url: string | null;
  resources?: string[];
  deployment: {
    id: string;
    status: string;
    reason: string | null;
    trigger: string;
    phase_ms: Record<string, number>;
  } | null;
};

/**
 * End to end on the embedded default: a pushed Node app that uses `pg` gets its database in one
 * create_service call, writes and reads rows through Traefik, then loses it on detach (no build).
 * Each test makes its own service; a serve that died is started again before the next test.
 */
describe('end to end: app + database in one call', () => {
  const work = scratchDir('resources-e2e', path.join(repoRoot, '.data', 'test'));
  const dataDir = path.join(work.dir, 'data');
  const run = Date.now().toString(36).slice(-5);
  let serve: ServeProcess;
  let client: Client;
  let key = '';
  let remote = '';
  const git = agentGit(work.dir);

  beforeAll(async () => {
    serve = await startServe(dataDir);
    await exec(CLI, ['users', 'create', 'agent@example.com'], { env: serve.env });
    key =
      (await exec(CLI, ['keys', 'create', 'agent@example.com'], { env: serve.env })).stdout
        .trim()
        .split('\n')
        .at(-1) ?? '';
    client = await connectClient(`${serve.env.DEPLOY_MCP_PUBLIC_URL}/mcp`, key);
    const repo = await call(client, 'create_repo', { name: `notes-${run}` });
    remote = (repo.structuredContent as { git_remote: string }).git_remote;
    const app = path.join(work.dir, 'app');
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps/node-postgres'), app, { recursive: true });
    await pushNewRepo(git, app, remote);
    const pyRepo = await call(client, 'create_repo', { name: `pynotes-${run}` });
    const pyApp = path.join(work.dir, 'pyapp');
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps/python-sqlite'), pyApp, { recursive: true });
    await pushNewRepo(git, pyApp, (pyRepo.structuredContent as { git_remote: string }).git_remote);
  }, 240_000);

  beforeEach(async () => {
    if (!serve.hasExited()) return;
    serve = await serve.revive();
    client = await connectClient(`${serve.env.DEPLOY_MCP_PUBLIC_URL}/mcp`, key);
  }, 240_000);

  afterAll(async () => {
    try {
      for (const name of [`web-${run}`])
        await call(client, 'delete_service', { name }).catch(() => undefined);
      await client?.close();
      await serve?.stop();
    } finally {
      work.cleanup();
    }
  }, 180_000);

  const get = async (name: string) =>
    (await call(client, 'get_service', { name })).structuredContent as ServiceView;

  /** Polls until the service's newest deployment ended (bounded). */
  async function settled(name: string, ms = 300_000): Promise<ServiceView> {
    const deadline = Date.now() + ms;
    let view = await get(name);
    while (
      !['active', 'failed', 'cancelled'].includes(view.deployment?.status ?? '') &&
      Date.now() < deadline
    ) {
      await sleep(1000);
      view = await get(name);
    }
    return view;
  }

  const viaIngress = (url: string, pathname: string) =>
    httpGet(`http://127.0.0.1:${serve.ports.ingress}${pathname}`, new URL(url).hostname);

  it('create_service(…, database: {type: "postgres"}) → a live app that writes and reads rows; detach redeploys without a build', async () => {
    const name = `web-${run}`;
    const res = await call(client, 'create_service', {
      name,
      repo: `notes-${run}`,
      database: { type: 'postgres' },
    });
    if (res.isError) throw new Error(`${text(res)}\n${serve.output().slice(-3000)}`);
    let view = await settled(name);
    expect(view.deployment?.reason ?? null, JSON.stringify(view)).toBeNull();
    expect(view.status).toBe('active');
    expect(view.resources).toEqual([name]);
    const url = view.url ?? '';
    const first = await eventually(
      () => viaIngress(url, '/notes?add=first'),
      (r) => r.status === 200,
      60_000,
    );
    expect(JSON.parse(first.body).notes).toEqual(['first']);
    const second = await viaIngress(url, '/notes?add=second');
    expect(JSON.parse(second.body).notes).toEqual(['first', 'second']);
    // The rows are in the resource's own database, under its own role.
    const db = (await call(client, 'get_resource', { name, include_secrets: true })).structuredContent as {
      services: string[];
      connection: Record<string, string>;
    };
    expect(db.services).toEqual([name]);
    expect(JSON.parse(second.body).user).toBe(db.connection.PGUSER);

    // Detach: the serving image runs again without the variables, with no build phase.
    const detached = await call(client, 'detach_resource', { service: name, resource: name });
    expect(detached.isError, text(detached)).toBeFalsy();
    expect((detached.structuredContent as { redeployment: string | null }).redeployment).toBeTruthy();
    view = await settled(name);
    expect(view.deployment?.trigger).toBe('resources');
    expect(view.deployment?.status, JSON.stringify(view)).toBe('active');
    expect(Object.keys(view.deployment?.phase_ms ?? {})).not.toContain('build');
    expect(await viaIngress(url, '/notes')).toEqual({ status: 503, body: 'no DATABASE_URL\n' });

    // Attach again: the data is still there.
    const attached = await call(client, 'attach_resource', { service: name, resource: name });
    expect(attached.isError, text(attached)).toBeFalsy();
    view = await settled(name);
    expect(view.deployment?.status, JSON.stringify(view)).toBe('active');
    expect(JSON.parse((await viaIngress(url, '/notes')).body).notes).toEqual(['first', 'second']);

    // delete_resource refuses while attached, naming the service.
    expect(text(await call(client, 'delete_resource', { name }))).toMatch(
      new RegExp(`attached to "${name}"`),
    );
  }, 600_000);

  it('create_service(…, database: {type: "sqlite"}) → a Python app keeps rows in the mounted file, readable with @libsql/client; delete keeps a copy', async () => {
    const name = `py-${run}`;
    const res = await call(client, 'create_service', {
      name,
      repo: `pynotes-${run}`,
      database: { type: 'sqlite' },
    });
    if (res.isError) throw new Error(`${text(res)}\n${serve.output().slice(-3000)}`);
    const view = await settled(name);
    expect(view.deployment?.reason ?? null, JSON.stringify(view)).toBeNull();
    expect(view.status).toBe('active');
    const url = view.url ?? '';
    const first = await eventually(
      () => viaIngress(url, '/notes?add=one'),
      (r) => r.status === 200,
      60_000,
    );
    expect(JSON.parse(first.body)).toEqual({ notes: ['one'], url: `file:/data/${name}/db.sqlite` });
    expect(JSON.parse((await viaIngress(url, '/notes?add=two')).body).notes).toEqual(['one', 'two']);
    // The same rows through @libsql/client and a file: URL (what Node apps use).
    const product = await openDatabase(`file:${path.join(dataDir, 'deploy-mcp.db')}`);
    const resource = await product.prisma.resource
      .findFirstOrThrow({ where: { name, deletedAt: null } })
      .finally(() => product.close());
    const libsql = createClient({ url: `file:${path.join(dataDir, 'volumes', resource.id, 'db.sqlite')}` });
    try {
      const rows = await libsql.execute('select body from notes order by id');
      expect(rows.rows.map((r) => r.body)).toEqual(['one', 'two']);
    } finally {
      libsql.close();
    }
    // Delete: the service first, then the database; a consistent copy is kept, 0600.
    expect((await call(client, 'delete_service', { name })).isError).toBeFalsy();
    const deleted = await call(client, 'delete_resource', { name });
    expect(deleted.isError, text(deleted)).toBeFalsy();
    const backup = path.join(dataDir, 'backups', (deleted.structuredContent as { backup: string }).backup);
    expect(fs.statSync(backup).mode & 0o777).toBe(0o600);
    const copy = createClient({ url: `file:${backup}` });
    try {
      expect((await copy.execute('select count(*) as n from notes')).rows[0]?.n).toBe(2);
    } finally {
      copy.close();
    }
    expect(fs.existsSync(path.join(dataDir, 'volumes', resource.id))).toBe(false);
  }, 600_000);
});
