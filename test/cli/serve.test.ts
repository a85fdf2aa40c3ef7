import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tcpOpen } from '../../core/daemons/probes.ts';
import { migrate } from '../../core/db/migrate.ts';
import { ADDED_TOOLS, SEED_TOOLS } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { CLI as cli, type ServeProcess, startServe } from '../support/serve.ts';

const run = promisify(execFile);

describe('deploy-mcp serve --role all (what npm start runs)', () => {
  const work = scratchDir('serve');
  let serve: ServeProcess;
  let env: NodeJS.ProcessEnv;
  let ports: ServeProcess['ports'];
  let key = '';

  beforeAll(async () => {
    serve = await startServe(work.dir);
    ({ env, ports } = serve);
  });

  afterAll(async () => {
    if (serve?.child.exitCode === null) serve.child.kill('SIGKILL');
    work.cleanup();
  });

  it('migrates the embedded database by itself', async () => {
    const result = await migrate(`file:${path.join(work.dir, 'deploy-mcp.db')}`);
    expect(result.applied).toEqual([]);
    expect(result.alreadyApplied).toBeGreaterThan(0);
  });

  it('serves /healthz on the server and deployer-server ports, checking database, Temporal and free disk', async () => {
    for (const [port, role] of [
      [ports.server, 'server'],
      [ports.deployer, 'deployer-server'],
    ] as const) {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        status: 'ok',
        role,
        checks: { database: 'ok', temporal: 'ok', disk: 'ok' },
      });
    }
  });

  it('runs the selfCheck workflow through its embedded Temporal and worker (deploy-mcp doctor)', async () => {
    const { stdout } = await run(cli, ['doctor'], { env });
    expect(JSON.parse(stdout)).toMatchObject({ database: 'ok', requestId: 'doctor' });
  });

  it('lets an operator create a user and a key while it runs; the key alone ends the output', async () => {
    expect((await run(cli, ['users', 'create', 'Operator@Example.com'], { env })).stdout).toMatch(
      /created user operator@example.com/,
    );
    const { stdout } = await run(cli, ['keys', 'create', 'operator@example.com', '--name', 'inspector'], {
      env,
    });
    key = stdout.trimEnd().split('\n').at(-1) ?? '';
    expect(key).toMatch(/^dk_live_[A-Za-z0-9_-]{32}$/);
    await expect(run(cli, ['users', 'create', 'operator@example.com'], { env })).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('already exists'),
    });
  });

  it('is reachable by the MCP Inspector (CLI mode): it lists the tools and calls whoami', async () => {
    const inspector = path.join(repoRoot, 'node_modules/.bin/mcp-inspector');
    const target = [
      `http://127.0.0.1:${ports.server}/mcp`,
      '--transport',
      'http',
      '--header',
      `Authorization: Bearer ${key}`,
    ];
    const inspectorEnv = { ...env, MCP_CATALOG_PATH: path.join(work.dir, 'inspector-catalog.json') };
    const list = await run(inspector, ['--cli', ...target, '--method', 'tools/list'], { env: inspectorEnv });
    const names = (JSON.parse(list.stdout) as { tools: { name: string }[] }).tools.map((t) => t.name);
    expect(names.sort()).toEqual([...SEED_TOOLS, ...ADDED_TOOLS].sort());
    const who = await run(
      inspector,
      ['--cli', ...target, '--method', 'tools/call', '--tool-name', 'whoami'],
      {
        env: inspectorEnv,
      },
    );
    expect(JSON.parse(who.stdout).structuredContent).toMatchObject({ email: 'operator@example.com' });
  });

  it('lists keys with their last use, and a revoked key stops working at once', async () => {
    const prefix = key.slice(0, 18);
    const listed = (await run(cli, ['keys', 'list', 'operator@example.com'], { env })).stdout;
    expect(listed).toMatch(new RegExp(`^${prefix}  inspector  created \\S+  last used 20\\S+  active$`, 'm'));
    expect((await run(cli, ['keys', 'revoke', prefix], { env })).stdout).toContain(`revoked ${prefix}`);
    const res = await fetch(`http://127.0.0.1:${ports.server}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(401);
  });

  it('logs JSON lines and stops cleanly on SIGTERM, taking the Temporal dev server with it', async () => {
    expect(
      serve
        .output()
        .split('\n')
        .find((l) => l.includes('"msg":"ready"')),
    ).toMatch(/^\{"level":30/);
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    expect(await tcpOpen('127.0.0.1', ports.temporal)).toBe(false);
    expect(await tcpOpen('127.0.0.1', ports.server)).toBe(false);
    expect(serve.output()).toContain('"msg":"stopped"');
  });
});
