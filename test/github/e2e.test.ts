import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../core/db/client.ts';
import { linkGitHubLogin } from '../../core/github/accounts.ts';
import { connectTemporal } from '../../workers/client.ts';
import { agentGit } from '../support/git.ts';
import { GitHubFake } from '../support/github-fake.ts';
import { httpGet } from '../support/http.ts';
import { call, text } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { CLI, connectAgent, type ServeProcess, startServe } from '../support/serve.ts';

const exec = promisify(execFile);

type ServiceView = {
  status: string;
  url: string | null;
  deployment: { id: string; status: string; reason: string | null; commit: string; trigger: string } | null;
};

/**
 * GitHub end to end, against the local GitHub fake (REST + git smart HTTP, driven by
 * @octokit/app inside the server): create_repo on GitHub → git push → create_service →
 * live URL; a signed push webhook redeploys; redeliveries, bad signatures and other users
 * start nothing; no minted token is left anywhere.
 */
describe('GitHub App: repo → push → deploy; webhook push → redeploy', () => {
  const work = scratchDir('github-e2e', path.join(repoRoot, '.data', 'test'));
  const run = Date.now().toString(36);
  const org = `acme-${run}`;
  const secret = randomBytes(24).toString('hex');
  const git = agentGit(work.dir);
  const app = path.join(work.dir, 'app');
  const dataDir = path.join(work.dir, 'data');
  let fake: GitHubFake;
  let serve: ServeProcess;
  let alice: Client;
  let bob: Client;

  const service = async (): Promise<ServiceView> =>
    (await call(alice, 'get_service', { name: 'web' })).structuredContent as ServiceView;

  /** Waits (bounded) until the service's newest deployment ends; returns the view. */
  async function settled(ms = 240_000): Promise<ServiceView> {
    const deadline = Date.now() + ms;
    let view = await service();
    while (Date.now() < deadline) {
      const d = view.deployment?.status;
      if (d === 'active' || d === 'failed') return view;
      await sleep(1000);
      view = await service();
    }
    return view;
  }

  const page = async (url: string) =>
    httpGet(`http://127.0.0.1:${serve.ports.ingress}/`, new URL(url).hostname);

  async function withDb<T>(fn: (db: Awaited<ReturnType<typeof openDatabase>>['prisma']) => Promise<T>) {
    const db = await openDatabase(`file:${path.join(dataDir, 'deploy-mcp.db')}`);
    try {
      return await fn(db.prisma);
    } finally {
      await db.close();
    }
  }

  beforeAll(async () => {
    fake = await GitHubFake.start(path.join(work.dir, 'github'));
    serve = await startServe(dataDir, {
      env: {
        DEPLOY_MCP_GITHUB_APP_ID: String(fake.appId),
        DEPLOY_MCP_GITHUB_PRIVATE_KEY_FILE: fake.privateKeyFile,
        DEPLOY_MCP_GITHUB_WEBHOOK_SECRET: secret,
        DEPLOY_MCP_GITHUB_API_URL: fake.apiUrl,
        DEPLOY_MCP_GITHUB_GIT_URL: fake.gitUrl,
      },
    });
    fake.webhook = { url: `http://127.0.0.1:${serve.ports.deployer}/webhooks/github`, secret };
    [alice, bob] = await Promise.all([
      connectAgent(serve, `alice-${run}@example.com`),
      connectAgent(serve, `bob-${run}@example.com`),
    ]);
    // The operator vouches for alice's GitHub account; bob is linked the same way, directly.
    await exec(CLI, ['github', 'link', '--user', `alice-${run}@example.com`, '--login', org], {
      env: serve.env,
    });
    await withDb(async (db) => {
      const user = await db.user.findUniqueOrThrow({ where: { email: `bob-${run}@example.com` } });
      await linkGitHubLogin(db, user.id, `bob-${run}`, 'operator');
    });
    // Installing the App sends a signed `installation` webhook, which maps it to its account.
    await fake.install(org, 'Organization');
    await fake.install(`bob-${run}`, 'User');
  }, 180_000);

  afterAll(async () => {
    if (alice) await call(alice, 'delete_service', { name: 'web' }).catch(() => undefined);
    await alice?.close();
    await bob?.close();
    await serve?.stop();
    await fake?.stop();
    work.cleanup();
  });

  it('whoami shows the installation', async () => {
    const me = (await call(alice, 'whoami')).structuredContent as { github: Record<string, unknown> };
    expect(me.github).toMatchObject({ status: 'installed', login: org, account_type: 'Organization' });
  });

  it('create_repo on GitHub, push, create_service: live at its URL', async () => {
    const repo = await call(alice, 'create_repo', { name: 'web', host: 'github.com' });
    if (repo.isError) throw new Error(text(repo));
    const remote = repo.structuredContent as {
      git_remote: string;
      owner: string;
      created: boolean;
      expires_at: string;
    };
    expect(remote).toMatchObject({ owner: org, created: true });
    expect(new Date(remote.expires_at).getTime()).toBeLessThanOrEqual(Date.now() + 3_600_000);
    // A static site: no dependency install, so the test waits on our pipeline only.
    fs.mkdirSync(app, { recursive: true });
    fs.writeFileSync(path.join(app, 'index.html'), '<!doctype html>\n<p>hello from github v1</p>\n');
    await git(['init', '-q', '-b', 'main'], app);
    await git(['add', '.'], app);
    await git(['commit', '-q', '-m', 'first'], app);
    await git(['push', '-q', remote.git_remote, 'HEAD:refs/heads/main'], app);

    const res = await call(alice, 'create_service', {
      name: 'web',
      repo: `${org}/web`,
      host: 'github.com',
    });
    if (res.isError) throw new Error(`${text(res)}\n${serve.output().slice(-3000)}`);
    const view = await settled();
    expect(view.deployment?.reason ?? null, JSON.stringify(view)).toBeNull();
    expect(view.status).toBe('active');
    const v1 = await page(view.url ?? '');
    expect(v1.status).toBe(200);
    expect(v1.body).toContain('hello from github v1');
  });

  it('another user cannot build from the repo, and nothing is created for them', async () => {
    for (const host of ['github', 'github.com']) {
      const res = await call(bob, 'create_service', { name: 'steal', repo: `${org}/web`, host });
      expect(res.isError).toBe(true);
      expect(text(res)).toMatch(
        new RegExp(`GitHub repo "${org}/web" in your installation \\(on "bob-${run}"\\) not found`),
      );
      const token = await call(bob, 'get_git_token', { name: 'web', host });
      expect(token.isError).toBe(true);
    }
    expect((await call(bob, 'list_services')).structuredContent).toMatchObject({ services: [] });
  });

  it('a bad signature gets 401 and records nothing', async () => {
    const before = await withDb((db) => db.webhookDelivery.count());
    const [first] = fake.deliveries;
    if (!first) throw new Error('no delivery recorded');
    const forged = {
      ...first,
      id: `forged-${run}`,
      body: Buffer.from(first.body.toString().replace('created', 'deleted')),
    };
    expect(await fake.redeliver(forged, { 'x-github-delivery': `forged-${run}` })).toBe(401);
    expect(
      await fake.redeliver(first, { 'x-github-delivery': `unsigned-${run}`, 'x-hub-signature-256': '' }),
    ).toBe(401);
    expect(await withDb((db) => db.webhookDelivery.count())).toBe(before);
    expect(await withDb((db) => db.gitHubInstallation.count({ where: { deletedAt: { not: null } } }))).toBe(
      0,
    );
  });

  it('a signed push to the tracked branch redeploys; the same delivery 10 times deploys once', async () => {
    const v1 = await service();
    fs.writeFileSync(path.join(app, 'index.html'), '<!doctype html>\n<p>hello from github v2</p>\n');
    await git(['commit', '-q', '-am', 'v2'], app);
    const token = await call(alice, 'get_git_token', { name: 'web', host: 'github' });
    const remote = (token.structuredContent as { git_remote: string }).git_remote;
    const pushesBefore = fake.deliveries.filter((d) => d.event === 'push').length;
    await git(['push', '-q', remote, 'HEAD:refs/heads/main'], app);
    const { stdout: sha } = await git(['rev-parse', 'HEAD'], app);

    // GitHub's push delivery reaches the deployer-server; the new commit deploys.
    const deadline = Date.now() + 240_000;
    let view = await service();
    while (
      Date.now() < deadline &&
      (view.deployment?.commit !== sha.trim() || view.deployment.status !== 'active')
    ) {
      if (view.deployment?.commit === sha.trim() && view.deployment.status === 'failed') break;
      await sleep(1000);
      view = await service();
    }
    expect(view.deployment, serve.output().slice(-3000)).toMatchObject({
      commit: sha.trim(),
      status: 'active',
      trigger: 'push',
    });
    expect(view.deployment?.id).not.toBe(v1.deployment?.id);
    const v2 = await page(view.url ?? '');
    expect(v2.status).toBe(200);
    expect(v2.body).toContain('hello from github v2');

    const push = fake.deliveries.filter((d) => d.event === 'push')[pushesBefore];
    if (!push) throw new Error('the push sent no webhook');
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push(await fake.redeliver(push));
    expect(statuses).toEqual(Array(10).fill(200));
    // A fresh delivery of the same commit (another id, signed anew) starts nothing either.
    const payload = JSON.parse(push.body.toString()) as unknown;
    expect(await fake.deliver('push', payload)).toBe(202);
    await sleep(3000);
    const deployments = await withDb((db) =>
      db.deployment.findMany({
        where: { service: { name: 'web', deletedAt: null } },
        select: { commitSha: true },
      }),
    );
    expect(deployments.map((d) => d.commitSha).filter((c) => c === sha.trim())).toHaveLength(1);
    expect(deployments).toHaveLength(2);
    expect(await withDb((db) => db.webhookDelivery.count({ where: { deliveryId: push.id } }))).toBe(1);
  });

  it('no minted token is in the data dir, the server output or Temporal histories', async () => {
    expect(fake.minted.length).toBeGreaterThanOrEqual(4);
    const out = serve.output();
    const histories: string[] = [];
    const temporal = await connectTemporal(`127.0.0.1:${serve.ports.temporal}`, 'default');
    try {
      let n = 0;
      for await (const w of temporal.client.workflow.list()) {
        if (++n > 200) break;
        const h = await temporal.client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
        histories.push(JSON.stringify(h));
      }
    } finally {
      await temporal.close();
    }
    expect(histories.length).toBeGreaterThanOrEqual(2);
    const history = histories.join('\n');
    for (const token of fake.minted) {
      expect(out).not.toContain(token);
      expect(history).not.toContain(token);
    }
    // One pass over every file of the data dir (database, Temporal, stack state, registry, logs).
    const found = await exec('grep', ['-rlaF', ...fake.minted.flatMap((t) => ['-e', t]), dataDir], {
      maxBuffer: 16 * 1024 * 1024,
    }).then(
      (r) => r.stdout.trim(),
      (err: { code?: number; stdout?: string; stderr?: string }) => {
        // grep exits 1 when nothing matched, 2 when a file could not be read: only BuildKit's
        // namespace handles (nsfs bind mounts, EINVAL on read) may be unreadable.
        const unreadable = (err.stderr ?? '').split('\n').filter(Boolean);
        if (err.code === 2 && unreadable.every((l) => /buildkit\/state\/net\/.*Invalid argument$/.test(l)))
          return (err.stdout ?? '').trim();
        if (err.code !== 1) throw new Error(`grep failed: ${err.stderr?.slice(0, 2000)}`);
        return '';
      },
    );
    expect(found, `a minted token was found in ${found}`).toBe('');
  });
});
