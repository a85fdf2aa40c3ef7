import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { tenantWorkRoot } from '../../tenant-stacks/from-config.ts';
import { call, connectClient, text } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { CLI, type ServeProcess, startServe } from '../support/serve.ts';
import { startTursoFake, type TursoFake } from '../support/turso-fake.ts';

const exec = promisify(execFile);

type ResourceView = {
  name: string;
  type: string;
  region: string;
  status: string;
  connection: Record<string, string>;
};

/*
 * The MCP tools of a `serve` configured for Turso (the Platform API fake): what is offered, create,
 * reveal, rotate and delete. Data through libsql:// is not tested (no sqld exists here).
 */
describe('sqlite resources in Turso through MCP', () => {
  const work = scratchDir('turso-tools', path.join(repoRoot, '.data', 'test'));
  const dataDir = path.join(work.dir, 'data');
  let fake: TursoFake;
  let serve: ServeProcess;
  let alice: Client;
  let key = '';
  const run = Date.now().toString(36);

  beforeAll(async () => {
    fake = await startTursoFake('acme');
    serve = await startServe(dataDir, {
      env: {
        DEPLOY_MCP_TURSO_API_URL: fake.url,
        DEPLOY_MCP_TURSO_ORG: fake.org,
        DEPLOY_MCP_TURSO_API_TOKEN: fake.apiToken,
        DEPLOY_MCP_TURSO_REGIONS: 'aws-eu-west-1,aws-us-east-1',
      },
    });
    await exec(CLI, ['users', 'create', 'alice@example.com'], { env: serve.env });
    const { stdout } = await exec(CLI, ['keys', 'create', 'alice@example.com'], { env: serve.env });
    key = stdout.trim().split('\n').at(-1) ?? '';
    alice = await connectClient(`${serve.env.DEPLOY_MCP_PUBLIC_URL}/mcp`, key);
  }, 240_000);

  beforeEach(async () => {
    if (!serve.hasExited()) return;
    serve = await serve.revive();
    alice = await connectClient(`${serve.env.DEPLOY_MCP_PUBLIC_URL}/mcp`, key);
  }, 240_000);

  afterAll(async () => {
    try {
      await alice?.close();
      await serve?.stop();
      await fake?.close();
    } finally {
      work.cleanup();
    }
  }, 120_000);

  it('create, reveal, rotate and delete a Turso database with the tools', async () => {
    const tools = await alice.listTools();
    const create = tools.tools.find((t) => t.name === 'create_resource');
    expect(create?.description).toContain('aws-eu-west-1');

    const made = await call(alice, 'create_resource', { name: `db-${run}`, type: 'sqlite' });
    expect(made.isError, text(made)).toBeFalsy();
    expect(made.structuredContent).toMatchObject({
      type: 'sqlite',
      region: 'aws-eu-west-1',
      status: 'ready',
    });
    const bad = await call(alice, 'create_resource', { name: `x-${run}`, type: 'sqlite', region: 'local' });
    expect(text(bad)).toMatch(
      /region "local" is not offered for sqlite here; regions: aws-eu-west-1, aws-us-east-1/,
    );

    const reveal = async () => {
      const r = await call(alice, 'get_resource', { name: `db-${run}`, include_secrets: true });
      expect(r.isError, text(r)).toBeFalsy();
      return (r.structuredContent as ResourceView).connection;
    };
    const first = await reveal();
    expect(first.LIBSQL_URL).toMatch(new RegExp(`^libsql://db-${run}-[a-z0-9]+-acme\\.turso\\.io$`));
    expect(first.DATABASE_URL).toBe(first.LIBSQL_URL);
    const database = (first.LIBSQL_URL ?? '').slice('libsql://'.length, -'-acme.turso.io'.length);
    expect(fake.verify(database, first.LIBSQL_AUTH_TOKEN ?? '')?.a).toBe('rw');

    const rotated = await call(alice, 'rotate_resource_credentials', { name: `db-${run}` });
    expect(rotated.isError, text(rotated)).toBeFalsy();
    expect(rotated.structuredContent).toMatchObject({ status: 'rotated' });
    const second = await reveal();
    expect(fake.verify(database, first.LIBSQL_AUTH_TOKEN ?? '')).toBeUndefined();
    expect(fake.verify(database, second.LIBSQL_AUTH_TOKEN ?? '')?.a).toBe('rw');

    // deploy-mcp audit --resource: the rotation changed the token, shown without any value.
    const { stdout } = await exec(
      CLI,
      ['audit', `db-${run}`, '--resource', '--user', 'alice@example.com', '--json'],
      {
        env: serve.env,
      },
    );
    for (const secret of [first.LIBSQL_AUTH_TOKEN, second.LIBSQL_AUTH_TOKEN, fake.apiToken])
      expect(stdout).not.toContain(secret);
    const report = JSON.parse(stdout) as {
      history: { changes: { properties: { path: string; secretChanged?: true }[] }[] }[];
    };
    const rotation = report.history[0]?.changes.flatMap((c) => c.properties) ?? [];
    expect(rotation).toContainEqual(expect.objectContaining({ path: 'token', secretChanged: true }));

    const deleted = await call(alice, 'delete_resource', { name: `db-${run}` });
    expect(deleted.isError, text(deleted)).toBeFalsy();
    expect(fake.databases.has(database)).toBe(false);
    // No token in clear in the server's log or under the data dir (database, Temporal, Pulumi state, logs).
    const secrets = [first.LIBSQL_AUTH_TOKEN ?? '?', second.LIBSQL_AUTH_TOKEN ?? '?', fake.apiToken];
    for (const secret of secrets) expect(serve.output()).not.toContain(secret);
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
          for (const secret of secrets) if (body.includes(secret)) hits.push(`${p}: ${secret.slice(0, 4)}…`);
        }
      }
    };
    walk(dataDir);
    if (fs.existsSync(tenantWorkRoot(dataDir))) walk(tenantWorkRoot(dataDir));
    expect(hits).toEqual([]);
  }, 300_000);
});
