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

type LogTail = { lines: string[] };
type ServiceView = {
  status: string;
  serving_release: number | null;
  url: string | null;
  health_check_path: string;
  note?: string;
  deployment: {
    id: string;
    status: string;
    reason: string | null;
    finished_at: string | null;
    build_log: LogTail;
  } | null;
};
type DeploymentRow = {
  id: string;
  status: string;
  release: number | null;
  finished_at: string | null;
  retired_at: string | null;
};

/**
 * The app: its build prints a numbered line every second for `buildSeconds` (so a build is seen
 * while it runs), its server answers `message` on every path but `failPath`, which answers 503.
 */
function writeApp(dir: string, o: { message: string; buildSeconds: number; failPath?: string }) {
  fs.writeFileSync(
    path.join(dir, 'build.js'),
    `let n = 0;
const t = setInterval(() => {
  n++;
  console.log('status-test build progress ' + n);
  if (n >= ${o.buildSeconds}) { clearInterval(t); require('node:fs').writeFileSync('build-info.txt', 'built'); }
}, 1000);
`,
  );
  fs.writeFileSync(
    path.join(dir, 'server.js'),
    `const http = require('node:http');
http.createServer((req, res) => {
  if (req.url === ${JSON.stringify(o.failPath ?? '')}) { res.statusCode = 503; return res.end('not ready'); }
  res.end(${JSON.stringify(o.message)} + '\\n');
}).listen(Number(process.env.PORT || 3000));
`,
  );
}

describe('a service status tells the truth: live build log, health path, immutable history', () => {
  const work = scratchDir('status', path.join(repoRoot, '.data', 'test'));
  let serve: ServeProcess;
  let client: Client;
  const git = agentGit(work.dir);
  const app = path.join(work.dir, 'app');
  const name = `st${process.pid % 100000}`;

  beforeAll(async () => {
    serve = await startServe(path.join(work.dir, 'data'), {
      env: { DEPLOY_MCP_HEALTH_TIMEOUT_SECONDS: '60' },
    });
    client = await connectAgent(serve, 'status@example.com');
  });

  afterAll(async () => {
    try {
      if (client) await call(client, 'delete_service', { name }).catch(() => undefined);
    } finally {
      await client?.close();
      await serve?.stop();
      work.cleanup();
    }
  });

  async function view(args: Record<string, unknown> = {}): Promise<ServiceView> {
    const res = await call(client, 'get_service', { name, ...args });
    if (res.isError) throw new Error(text(res));
    return res.structuredContent as ServiceView;
  }

  /** Polls get_service (bounded) until `done`, returning every view seen. */
  async function follow(done: (v: ServiceView) => boolean, ms = 300_000): Promise<ServiceView[]> {
    const seen: ServiceView[] = [];
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await view();
      seen.push(v);
      if (done(v)) return seen;
      if (Date.now() > deadline)
        throw new Error(`timed out; last view: ${JSON.stringify(v)}\n${serve.output().slice(-3000)}`);
      await sleep(500);
    }
  }

  async function deployments(): Promise<DeploymentRow[]> {
    const res = await call(client, 'list_deployments', { name });
    return (res.structuredContent as { deployments: DeploymentRow[] }).deployments;
  }

  async function push(message: string) {
    await git(['add', '.'], app);
    await git(['commit', '-q', '-m', message], app);
    await git(['push', '-q', 'origin', 'HEAD:refs/heads/main'], app);
  }

  const ended = (v: ServiceView) => !['queued', 'building', 'deploying'].includes(v.deployment?.status ?? '');

  it('shows building with the live log, then a redeploy in flight while release 1 serves; history stays', async () => {
    const repo = await call(client, 'create_repo', { name });
    const remote = (repo.structuredContent as { git_remote: string }).git_remote;
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps/node-hello'), app, { recursive: true });
    writeApp(app, { message: 'v1', buildSeconds: 12 });
    await pushNewRepo(git, app, remote);
    await git(['remote', 'add', 'origin', remote], app);

    const created = await call(client, 'create_service', { name, repo: name, wait: false });
    if (created.isError) throw new Error(text(created));
    const first = created.structuredContent as ServiceView;
    expect(['queued', 'building']).toContain(first.status);
    expect(first.serving_release).toBeNull();
    expect(first.note).toMatch(
      /is still (queued|building); it goes on in the background and nothing serves yet/,
    );

    // While it builds, the service says so and the build log grows before the build ends.
    const seen = await follow(
      (v) =>
        v.status === 'building' &&
        v.deployment?.build_log.lines.some((l) => l.includes('status-test build progress')) === true,
      240_000,
    );
    expect(seen.at(-1)?.deployment?.status).toBe('building');
    const views = await follow(ended);
    const live = views.at(-1) as ServiceView;
    expect(live.deployment?.reason ?? null).toBeNull();
    expect(live).toMatchObject({ status: 'active', serving_release: 1, health_check_path: '/' });
    expect(views.some((v) => v.status === 'deploying')).toBe(true);
    const url = live.url ?? '';
    const viaIngress = () => httpGet(`http://127.0.0.1:${serve.ports.ingress}/`, new URL(url).hostname);
    expect((await viaIngress()).body).toBe('v1\n');
    const [v1] = await deployments();

    // A redeploy: the service shows the new deployment's status while release 1 keeps serving.
    writeApp(app, { message: 'v2', buildSeconds: 8 });
    await push('v2');
    const again = await call(client, 'redeploy_service', { name, wait: false });
    expect((again.structuredContent as ServiceView).note).toMatch(/release v1 keeps serving/);
    const during = await follow((v) => ['building', 'deploying'].includes(v.status), 120_000);
    expect(during.at(-1)?.serving_release).toBe(1);
    expect((await viaIngress()).body).toBe('v1\n');
    const after = (await follow(ended)).at(-1) as ServiceView;
    expect(after).toMatchObject({ status: 'active', serving_release: 2 });
    expect((await viaIngress()).body).toBe('v2\n');

    // History: the first deployment keeps its status and end time; its release records its retirement.
    const rows = await deployments();
    const old = rows.find((d) => d.id === v1?.id);
    expect(old).toMatchObject({ status: 'active', release: 1, finished_at: v1?.finished_at });
    expect(old?.retired_at).not.toBeNull();
    expect(Date.parse(old?.retired_at ?? '')).toBeGreaterThan(Date.parse(old?.finished_at ?? ''));
    expect(rows[0]).toMatchObject({ status: 'active', release: 2, retired_at: null });
  }, 600_000);

  it('fails a release whose health path answers 5xx, says so again without starting anything, then uses health_check_path', async () => {
    writeApp(app, { message: 'v3', buildSeconds: 1, failPath: '/' });
    await push('v3 answers 503 on /');
    const failed = await call(client, 'create_service', { name, repo: name });
    if (failed.isError) throw new Error(text(failed));
    let v = failed.structuredContent as ServiceView;
    if (!ended(v)) v = (await follow(ended)).at(-1) as ServiceView;
    expect(v.deployment?.status).toBe('failed');
    expect(v.deployment?.reason).toMatch(/^GET \/ answered "503 Service Unavailable" for 10 s/);
    // Release 2 still serves.
    expect(v).toMatchObject({ status: 'active', serving_release: 2 });
    const count = (await deployments()).length;

    const repeated = await call(client, 'create_service', { name, repo: name });
    const r = repeated.structuredContent as ServiceView;
    expect(r.note).toMatch(/^Nothing was started: commit [0-9a-f]{12} with these settings already failed/);
    expect(r.note).toContain('answered "503 Service Unavailable"');
    expect(r.deployment?.id).toBe(v.deployment?.id);
    expect(await deployments()).toHaveLength(count);

    const healthz = await call(client, 'create_service', { name, repo: name, health_check_path: '/healthz' });
    let h = healthz.structuredContent as ServiceView;
    if (!ended(h)) h = (await follow(ended)).at(-1) as ServiceView;
    expect(h.deployment?.reason ?? null).toBeNull();
    expect(h).toMatchObject({ status: 'active', serving_release: 3, health_check_path: '/healthz' });
  }, 600_000);

  it('delete_service answers its status', async () => {
    const res = await call(client, 'delete_service', { name });
    if (res.isError) throw new Error(text(res));
    const out = res.structuredContent as { status: string; deleted: boolean };
    expect(['deleted', 'deleting']).toContain(out.status);
    expect(out.deleted).toBe(out.status === 'deleted');
    const deadline = Date.now() + 120_000;
    while ((await call(client, 'get_service', { name })).isError !== true && Date.now() < deadline)
      await sleep(1000);
    expect(text(await call(client, 'get_service', { name }))).toMatch(/not found/);
  }, 300_000);
});
