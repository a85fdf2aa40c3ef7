import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { httpGet } from '../support/http.ts';
import { call, text } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { connectAgent, type ServeProcess, startServe } from '../support/serve.ts';

type ServiceView = {
  status: string;
  url: string | null;
  deployment: {
    status: string;
    reason: string | null;
    build_log: { lines: string[] };
  } | null;
};

describe('end to end: a Python app, a static site and a Dockerfile app, each live through Traefik', () => {
  const work = scratchDir('apps', path.join(repoRoot, '.data', 'test'));
  let serve: ServeProcess;
  let client: Client;
  const git = agentGit(work.dir);

  beforeAll(async () => {
    serve = await startServe(path.join(work.dir, 'data'));
    client = await connectAgent(serve, 'agent@example.com');
  });

  afterAll(async () => {
    // Leaves no containers behind (delete_service itself is tested in e2e.test.ts).
    for (const name of ['py', 'site', 'box']) if (client) await call(client, 'delete_service', { name });
    await client?.close();
    await serve?.stop();
    work.cleanup();
  });

  /** create_repo, push test/fixtures/apps/<fixture>, create_service; waits until it settles. */
  async function deploy(name: string, fixture: string, env_vars: Record<string, string> = {}) {
    const repo = await call(client, 'create_repo', { name });
    const remote = (repo.structuredContent as { git_remote: string }).git_remote;
    const dir = path.join(work.dir, name);
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps', fixture), dir, { recursive: true });
    await pushNewRepo(git, dir, remote);
    const res = await call(client, 'create_service', { name, repo: name, env_vars });
    if (res.isError) throw new Error(`${text(res)}\n${serve.output().slice(-3000)}`);
    const get = async () =>
      (await call(client, 'get_service', { name, deploy_log_lines: 500 })).structuredContent as ServiceView;
    let view = await get();
    const deadline = Date.now() + 240_000;
    while (view.status !== 'active' && view.deployment?.status !== 'failed' && Date.now() < deadline) {
      await sleep(1000);
      view = await get();
    }
    expect(view.deployment?.reason ?? null, JSON.stringify(view, null, 1)).toBeNull();
    expect(view.status).toBe('active');
    expect(view.url).toBe(`http://${name}-agent.localhost:${serve.ports.ingress}`);
    return view;
  }

  /** GET / through Traefik with the service's Host. */
  function viaIngress(view: ServiceView) {
    return httpGet(`http://127.0.0.1:${serve.ports.ingress}/`, new URL(view.url ?? '').hostname);
  }

  it('deploys a Flask app with the Python build pack', async () => {
    const view = await deploy('py', 'python-flask', { MESSAGE: 'from the agent' });
    expect(view.deployment?.build_log.lines.join('\n')).toMatch(/Flask \(app\.py\)/);
    expect(await viaIngress(view)).toEqual({ status: 200, body: 'hello from flask | from the agent\n' });
  });

  it('deploys a static site', async () => {
    const view = await deploy('site', 'static-site');
    const page = await viaIngress(view);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<p>hello from a static site</p>');
  });

  it("deploys the repo's own Dockerfile, built FROM deploy-mcp/node", async () => {
    const view = await deploy('box', 'dockerfile-app');
    expect(view.deployment?.build_log.lines.join('\n')).toMatch(/using the Dockerfile at the repo root/);
    expect(await viaIngress(view)).toEqual({
      status: 200,
      body: 'hello from a Dockerfile | node v24.21.0\n',
    });
  });
});
