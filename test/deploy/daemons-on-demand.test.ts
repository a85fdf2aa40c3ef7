import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { procStat } from '../../core/daemons/supervise.ts';
import { IN_FLIGHT_STATUSES } from '../../workers/deploy/statuses.ts';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { eventually, httpGet } from '../support/http.ts';
import { call, text } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { connectAgent, type ServeProcess, startServe } from '../support/serve.ts';

type ServiceView = {
  status: string;
  url: string | null;
  deployment: { status: string; reason: string | null; commit: string } | null;
};

/** The pid files of the daemons that run on demand (present while each runs). */
const PID_FILES = [
  ['registry', 'registry.pid'],
  ['buildkit', 'buildkitd.pid'],
  ['podman', 'podman.pid'],
] as const;

const STARTED = '"msg":"registry, buildkitd and podman started"';
const STOPPED = '"msg":"registry, buildkitd and podman stopped"';

describe('the registry, buildkitd and podman on demand (DEPLOY_MCP_DAEMONS_IDLE_SECONDS)', () => {
  const work = scratchDir('daemons-on-demand', path.join(repoRoot, '.data', 'test'));
  const dataDir = path.join(work.dir, 'data');
  const git = agentGit(work.dir);
  const app = path.join(work.dir, 'app');
  let serve: ServeProcess;
  let client: Client;
  let remote: string;

  const running = () =>
    PID_FILES.map(([dir, file]) => {
      try {
        const { pid } = JSON.parse(fs.readFileSync(path.join(dataDir, dir, file), 'utf8')) as { pid: number };
        return procStat(pid) ? pid : undefined;
      } catch {
        return undefined;
      }
    }).filter((pid) => pid !== undefined);
  const count = (line: string) => serve.output().split(line).length - 1;
  const service = async () =>
    (await call(client, 'get_service', { name: 'web' })).structuredContent as ServiceView;
  const settled = (v: ServiceView) => !IN_FLIGHT_STATUSES.includes(v.deployment?.status ?? 'queued');
  const page = async (v: ServiceView) =>
    httpGet(`http://127.0.0.1:${serve.ports.ingress}/`, new URL(v.url ?? '').hostname).then(
      (r) => r.body,
      () => '',
    );

  beforeAll(async () => {
    // A short idle period: the daemons stop between the deploys below.
    serve = await startServe(dataDir, { env: { DEPLOY_MCP_DAEMONS_IDLE_SECONDS: '3' } });
    client = await connectAgent(serve, 'agent@example.com');
  });

  afterAll(async () => {
    if (client) await call(client, 'delete_service', { name: 'web' }).catch(() => undefined);
    await client?.close();
    await serve?.stop();
    work.cleanup();
  });

  it('are not started with the server; the first deploy starts them', async () => {
    expect(running()).toEqual([]);
    expect(serve.output()).toContain('"onDemand":["registry","buildkitd","podman"]');
    remote = (
      (await call(client, 'create_repo', { name: 'web' })).structuredContent as { git_remote: string }
    ).git_remote;
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps/node-hello'), app, { recursive: true });
    await pushNewRepo(git, app, remote);
    const res = await call(client, 'create_service', {
      name: 'web',
      repo: 'web',
      env_vars: { MESSAGE: 'one' },
    });
    if (res.isError) throw new Error(text(res));
    const view = await eventually(service, settled, 300_000);
    expect(view.deployment, JSON.stringify(view)).toMatchObject({ status: 'active', reason: null });
    expect(await page(view)).toMatch(/^one/);
    expect(count(STARTED)).toBeGreaterThanOrEqual(1);
  });

  it('stop when idle while the app keeps being served, and start again for the next deploy', async () => {
    await eventually(
      async () => ({ stopped: count(STOPPED), pids: running() }),
      (s) => s.stopped >= 1 && s.pids.length === 0,
      120_000,
    );
    const view = await service();
    // The app's container runs without podman's API service; Traefik still routes to it.
    expect(await page(view)).toMatch(/^one/);

    const starts = count(STARTED);
    const server = path.join(app, 'server.js');
    fs.writeFileSync(server, fs.readFileSync(server, 'utf8').replace('res.end(`$', 'res.end(`two $'));
    await git(['commit', '-q', '-am', 'after idle'], app);
    const head = (await git(['rev-parse', 'HEAD'], app)).stdout.trim();
    await git(['push', '-q', remote, 'HEAD:refs/heads/main'], app);
    const after = await eventually(service, (v) => v.deployment?.commit === head && settled(v), 300_000);
    expect(after.deployment, JSON.stringify(after)).toMatchObject({ status: 'active', reason: null });
    expect(await page(after)).toMatch(/^two one/);
    expect(count(STARTED)).toBeGreaterThan(starts);
  });
});
