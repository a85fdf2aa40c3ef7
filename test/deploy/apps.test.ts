import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../core/db/client.ts';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { httpGet } from '../support/http.ts';
import { call, text } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { connectAgent, type ServeProcess, startServe } from '../support/serve.ts';

const exec = promisify(execFile);

type ServiceView = {
  status: string;
  url: string | null;
  deployment: {
    status: string;
    reason: string | null;
    build_log: { lines: string[] };
  } | null;
};

describe('end to end: real-world apps live through Traefik, or failing with their cause named', () => {
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
    for (const name of [
      'py',
      'site',
      'box',
      'lo',
      'spa',
      'vitedev',
      'node20',
      'py313',
      'hub',
      'py312',
      'yarn4',
    ])
      if (client) await call(client, 'delete_service', { name });
    await client?.close();
    await serve?.stop();
    work.cleanup();
  });

  /** create_repo, push test/fixtures/apps/<fixture>, create_service; the view once it settles. */
  async function settle(name: string, fixture: string, args: Record<string, unknown> = {}) {
    const repo = await call(client, 'create_repo', { name });
    const remote = (repo.structuredContent as { git_remote: string }).git_remote;
    const dir = path.join(work.dir, name);
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps', fixture), dir, { recursive: true });
    await pushNewRepo(git, dir, remote);
    const res = await call(client, 'create_service', { name, repo: name, ...args });
    if (res.isError) throw new Error(`${text(res)}\n${serve.output().slice(-3000)}`);
    const get = async () =>
      (await call(client, 'get_service', { name, deploy_log_lines: 500 })).structuredContent as ServiceView;
    let view = await get();
    const deadline = Date.now() + 300_000;
    while (view.status !== 'active' && view.deployment?.status !== 'failed' && Date.now() < deadline) {
      await sleep(1000);
      view = await get();
    }
    return view;
  }

  /** settle(), expecting the service live at its URL. */
  async function deploy(name: string, fixture: string, env_vars: Record<string, string> = {}) {
    const view = await settle(name, fixture, { env_vars });
    expect(view.deployment?.reason ?? null, JSON.stringify(view, null, 1)).toBeNull();
    expect(view.status).toBe('active');
    expect(view.url).toBe(`http://${name}-agent.localhost:${serve.ports.ingress}`);
    return view;
  }

  /** settle(), expecting a failed deployment; its reason. */
  async function deployFailing(name: string, fixture: string, args: Record<string, unknown> = {}) {
    const view = await settle(name, fixture, args);
    expect(view.deployment?.status, JSON.stringify(view, null, 1)).toBe('failed');
    return view.deployment?.reason ?? '';
  }

  /** The id of the one container of the service `name` (podman's label). */
  async function containerOf(name: string): Promise<string> {
    const db = await openDatabase(`file:${path.join(work.dir, 'data', 'deploy-mcp.db')}`);
    try {
      const service = await db.prisma.service.findFirstOrThrow({ where: { name } });
      const { stdout } = await exec('podman', [
        'ps',
        '-q',
        '--filter',
        `label=deploy-mcp.service=${service.id}`,
      ]);
      const ids = stdout.split('\n').filter(Boolean);
      expect(ids).toHaveLength(1);
      return ids[0] ?? '';
    } finally {
      await db.close();
    }
  }

  /** GET a path through Traefik with the service's Host. */
  function viaIngress(view: ServiceView, urlPath = '/') {
    return httpGet(`http://127.0.0.1:${serve.ports.ingress}${urlPath}`, new URL(view.url ?? '').hostname);
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

  it('names a loopback bind, read from the container, without waiting for the timeout', async () => {
    const started = Date.now();
    const reason = await deployFailing('lo', 'node-loopback');
    expect(reason).toMatch(/^the app listens on 127\.0\.0\.1:3000 only, .*bind 0\.0\.0\.0/);
    // The health timeout is 60 s; the bind is seen within seconds of the start.
    expect(Date.now() - started).toBeLessThan(180_000);
  });

  it('builds a Vite app and serves dist/ as a single-page app; its dev server is named', async () => {
    const view = await deploy('spa', 'vite-spa');
    expect(view.deployment?.build_log.lines.join('\n')).toMatch(/Vite: serving dist\/ as a single-page app/);
    const page = await viaIngress(view);
    expect(page.status).toBe(200);
    expect(page.body).toMatch(
      /<script type="module" crossorigin src="\/assets\/index-[\w-]+\.js"><\/script>/,
    );
    // A client-side route gets the app; a missing asset stays a 404.
    expect((await viaIngress(view, '/settings/profile')).body).toBe(page.body);
    expect((await viaIngress(view, '/assets/missing.js')).status).toBe(404);

    const reason = await deployFailing('vitedev', 'vite-spa', { start_command: 'npx vite' });
    expect(reason).toContain("it runs Vite's development server, which is not for production");
  });

  it("runs a yarn 4 Plug'n'Play app as uid 10001 on a read-only root, with a HOME of its own", async () => {
    const view = await deploy('yarn4', 'yarn-berry-hello');
    expect(view.deployment?.build_log.lines.join('\n')).toMatch(
      /package manager: yarn \(@yarnpkg\/cli-dist@4\.18\.1\)/,
    );
    expect(await viaIngress(view)).toEqual({ status: 200, body: 'hello from yarn-berry-hello | 2m\n' });
    // yarn reads $HOME/.yarnrc.yml at every start: HOME is the app's own and writable, /app is not.
    const { stdout } = await exec('podman', [
      'exec',
      await containerOf('yarn4'),
      'sh',
      '-c',
      'id -u; echo "$HOME"; touch "$HOME/x" && echo home-writable; touch /app/x 2>/dev/null || echo app-read-only',
    ]);
    expect(stdout.split('\n')).toEqual(['10001', '/home/app', 'home-writable', 'app-read-only', '']);
  });

  it('runs the Node.js major that .nvmrc asks for, its base image built on first use', async () => {
    const view = await deploy('node20', 'node20-nvmrc');
    expect(view.deployment?.build_log.lines.join('\n')).toMatch(/Node\.js 20 \(\.nvmrc: 20\)/);
    expect((await viaIngress(view)).body).toMatch(/^node v20\.\d+\.\d+\n$/);
  });

  it('runs the Python version that .python-version asks for: 3.13, its base image published on first use', async () => {
    const view = await deploy('py313', 'python313');
    expect(view.deployment?.build_log.lines.join('\n')).toMatch(/Python 3\.13 \(\.python-version: 3\.13\)/);
    expect((await viaIngress(view)).body).toBe('python 3.13\n');
  });

  it('names an unreachable Docker Hub base image and a Python version not offered', async () => {
    const hub = await deployFailing('hub', 'dockerhub-dockerfile');
    expect(hub).toMatch(
      /base image node:22-alpine cannot be pulled: Docker Hub \(docker\.io\) is not reachable/,
    );
    expect(hub).toContain('FROM deploy-mcp/node');
    const py = await deployFailing('py312', 'python312-only');
    expect(py).toContain(
      '.python-version asks for Python 3.12, which is not offered: Python 3.11 and 3.13 are',
    );
  });
});
