import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../core/daemons/probes.ts';
import { openDatabase } from '../../core/db/client.ts';
import { tenantNamespace } from '../../tenant-stacks/kubernetes/names.ts';
import { deployerAccess, type TestCluster, useTestCluster } from '../support/cluster.ts';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { eventually, httpGet } from '../support/http.ts';
import { call, text } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { connectAgent, type ServeProcess, startServe } from '../support/serve.ts';

const exec = promisify(execFile);

type ServiceView = {
  status: string;
  url: string | null;
  release: number | null;
  deployment: { id: string; status: string; reason: string | null; runtime_log: { lines: string[] } } | null;
};

/**
 * The product on DEPLOY_MCP_RUNTIME=kubernetes, driven only through MCP and git, on a real
 * one-node cluster (core/cluster/): push → create_service → pod Running → served by Traefik
 * through an Ingress → a push rolls out → a crashing commit fails with its exit code while the
 * old release serves → rollback_service → delete_service leaves nothing in the namespace. The
 * product acts as the deployer's ServiceAccount with the platform's narrow access
 * (tenant-stacks/kubernetes/deployer-access.ts), never as admin.
 */
describe('end to end on Kubernetes', () => {
  const work = scratchDir('k8s-e2e', path.join(repoRoot, '.data', 'test'));
  let cluster: TestCluster;
  let serve: ServeProcess;
  let client: Client;
  let remote = '';
  let namespace = '';
  const git = agentGit(work.dir);
  const app = path.join(work.dir, 'app');

  const kubectl = async (args: string[]) =>
    (
      await exec(
        path.join(repoRoot, '.tools/bin/kubectl'),
        ['--kubeconfig', cluster.kubeconfigPath, ...args],
        {
          maxBuffer: 16 * 1024 * 1024,
        },
      )
    ).stdout;

  async function service(): Promise<ServiceView> {
    return (await call(client, 'get_service', { name: 'web' })).structuredContent as ServiceView;
  }

  /** Waits (bounded) until the latest deployment ends. */
  async function settled(): Promise<ServiceView> {
    const deadline = Date.now() + 240_000;
    for (;;) {
      const view = await service();
      if (['active', 'failed'].includes(view.deployment?.status ?? '') || Date.now() > deadline) return view;
      await sleep(1000);
    }
  }

  async function page(url: string) {
    return httpGet(`http://127.0.0.1:${cluster.ingressPort}/`, new URL(url).hostname);
  }

  async function push(files: Record<string, string>, message: string) {
    for (const [f, content] of Object.entries(files)) fs.writeFileSync(path.join(app, f), content);
    await git(['commit', '-q', '-am', message], app);
    const sha = (await git(['rev-parse', 'HEAD'], app)).stdout.trim();
    await git(['push', '-q', remote, 'HEAD:refs/heads/main'], app);
    // Wait until the push's deployment exists and ended.
    const deadline = Date.now() + 240_000;
    for (;;) {
      const list = (await call(client, 'list_deployments', { name: 'web' })).structuredContent as {
        deployments: { commit: string; status: string }[];
      };
      const d = list.deployments.find((x) => x.commit === sha);
      if ((d && ['active', 'failed'].includes(d.status)) || Date.now() > deadline) return service();
      await sleep(1000);
    }
  }

  beforeAll(async () => {
    const registryPort = await freePort();
    cluster = await useTestCluster({ registries: [`127.0.0.1:${registryPort}`] });
    // The product runs with the deployer's narrow access, as the platform gives it (no admin).
    const access = await deployerAccess(cluster, path.join(work.dir, 'kube'));
    const ports = {
      server: await freePort(),
      deployer: await freePort(),
      temporal: await freePort(),
      registry: registryPort,
      ingress: cluster.ingressPort,
    };
    serve = await startServe(path.join(work.dir, 'data'), {
      ports,
      env: {
        DEPLOY_MCP_RUNTIME: 'kubernetes',
        DEPLOY_MCP_KUBECONFIG: access.kubeconfigPath,
        DEPLOY_MCP_KUBERNETES_SERVICE_ACCOUNT: access.serviceAccount,
        DEPLOY_MCP_INGRESS_NAMESPACE: cluster.ingressNamespace,
        DEPLOY_MCP_HEALTH_TIMEOUT_SECONDS: '90',
      },
    });
    client = await connectAgent(serve, 'kube@example.com');
    const db = await openDatabase(`file:${path.join(work.dir, 'data', 'deploy-mcp.db')}`);
    try {
      namespace = tenantNamespace(
        (await db.prisma.user.findUniqueOrThrow({ where: { email: 'kube@example.com' } })).id,
      );
    } finally {
      await db.close();
    }
  }, 300_000);

  afterAll(async () => {
    await client?.close();
    await serve?.stop();
    await cluster?.release();
    work.cleanup();
  });

  it('deploys a pushed app: a pod in the tenant namespace, served through the Ingress', async () => {
    const repo = await call(client, 'create_repo', { name: 'web' });
    remote = (repo.structuredContent as { git_remote: string }).git_remote;
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps/node-hello'), app, { recursive: true });
    await pushNewRepo(git, app, remote);
    const res = await call(client, 'create_service', {
      name: 'web',
      repo: 'web',
      env_vars: { MESSAGE: 'hello v1' },
    });
    if (res.isError) throw new Error(`${text(res)}\n${serve.output().slice(-3000)}`);
    const view = await settled();
    expect(
      view.deployment?.reason ?? null,
      `${JSON.stringify(view)}\n${serve.output().slice(-3000)}`,
    ).toBeNull();
    expect(view.status).toBe('active');
    expect(view.url).toBe(`http://web-kube.localhost:${cluster.ingressPort}`);
    expect(await page(view.url ?? '')).toMatchObject({
      status: 200,
      body: expect.stringMatching(/^hello v1 \|/),
    });

    // The live objects: PSS restricted on the namespace, the hardened pod, quota and policies.
    const ns = JSON.parse(await kubectl(['get', 'namespace', namespace, '-o', 'json']));
    expect(ns.metadata.labels).toMatchObject({ 'pod-security.kubernetes.io/enforce': 'restricted' });
    const pods = JSON.parse(await kubectl(['-n', namespace, 'get', 'pods', '-o', 'json'])).items;
    const running = pods.filter((p: { status: { phase: string } }) => p.status.phase === 'Running');
    expect(running).toHaveLength(1);
    const pod = running[0];
    expect(pod.spec.automountServiceAccountToken).toBe(false);
    expect(pod.spec.containers[0].image).toMatch(/@sha256:[0-9a-f]{64}$/);
    expect(pod.spec.containers[0].securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      readOnlyRootFilesystem: true,
    });
    expect({ ...pod.spec.securityContext, ...pod.spec.containers[0].securityContext }).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 10001,
    });
    expect(
      pod.spec.securityContext?.seccompProfile ?? pod.spec.containers[0].securityContext.seccompProfile,
    ).toEqual({
      type: 'RuntimeDefault',
    });
    const objects = (
      await kubectl([
        '-n',
        namespace,
        'get',
        'resourcequota,limitrange,networkpolicy,rolebinding',
        '-o',
        'name',
      ])
    )
      .trim()
      .split('\n')
      .map((o) => o.replace(/\..*\//, '/'));
    expect(objects).toEqual([
      'resourcequota/tenant',
      'limitrange/container-defaults',
      'networkpolicy/tenant-egress',
      'networkpolicy/tenant-ingress',
      'rolebinding/deploy-mcp-deployer',
    ]);
  }, 300_000);

  it('a push rolls the new release out without a failed request', async () => {
    const url = (await service()).url ?? '';
    // Through the ingress every 100 ms during the rollout (bounded: 3000 requests).
    const failures: string[] = [];
    let rolling = true;
    let requests = 0;
    const poller = (async () => {
      while (rolling && requests < 3000) {
        requests++;
        const res = await page(url).catch((e: Error) => ({ status: 0, body: e.message }));
        if (res.status !== 200) failures.push(`${res.status} ${res.body.slice(0, 80)}`);
        await sleep(100);
      }
    })();
    const server = fs
      .readFileSync(path.join(app, 'server.js'), 'utf8')
      .replace('res.end(`$', 'res.end(`v2 $');
    const view = await push({ 'server.js': server }, 'v2');
    rolling = false;
    await poller;
    expect(view.deployment?.status, JSON.stringify(view)).toBe('active');
    expect((await page(view.url ?? '')).body).toMatch(/^v2 hello v1/);
    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(10);
  }, 300_000);

  it('a commit that crashes at start fails with its exit code and log, while v2 keeps serving', async () => {
    const view = await push(
      { 'server.js': "console.error('missing DATABASE_URL'); process.exit(3);\n" },
      'crash',
    );
    expect(view.deployment?.status).toBe('failed');
    expect(view.deployment?.reason).toMatch(/^the process exited with code 3/);
    expect(view.deployment?.runtime_log.lines.join('\n')).toContain('missing DATABASE_URL');
    expect(view.status).toBe('active');
    expect((await page(view.url ?? '')).body).toMatch(/^v2 hello v1/);
    // The failed release's pods are gone: the serving one runs alone.
    const deadline = Date.now() + 60_000;
    let pods: string[] = [];
    while (Date.now() < deadline) {
      pods = (await kubectl(['-n', namespace, 'get', 'pods', '-o', 'name']))
        .trim()
        .split('\n')
        .filter(Boolean);
      if (pods.length === 1) break;
      await sleep(1000);
    }
    expect(pods).toHaveLength(1);
  }, 300_000);

  it('a commit whose app answers 500 fails with the status line and its log, and v2 serves again', async () => {
    const view = await push(
      {
        'server.js':
          "require('node:http').createServer((_q, res) => { console.error('no DATABASE_URL'); res.statusCode = 500; res.end(); }).listen(Number(process.env.PORT));\n",
      },
      'answers 500',
    );
    expect(view.deployment?.status, JSON.stringify(view)).toBe('failed');
    expect(view.deployment?.reason).toMatch(/^GET \/ answered "500 Internal Server Error" for 10 s/);
    expect(view.deployment?.runtime_log.lines.join('\n')).toContain('no DATABASE_URL');
    expect(view.status).toBe('active');
    // The ready pod took traffic while it was judged; the serving release is applied again.
    const body = await eventually(
      async () => (await page(view.url ?? '')).body,
      (b) => /^v2 hello v1/.test(b),
      90_000,
    );
    expect(body).toMatch(/^v2 hello v1/);
  }, 300_000);

  it('rollback_service serves the first release again', async () => {
    const res = await call(client, 'rollback_service', { name: 'web' });
    if (res.isError) throw new Error(text(res));
    const view = await settled();
    expect(view.deployment?.status, JSON.stringify(view)).toBe('active');
    expect((await page(view.url ?? '')).body).toMatch(/^hello v1 \|/);
  }, 300_000);

  it('delete_service leaves nothing in the namespace, and the tenant namespace goes with the last service', async () => {
    const res = await call(client, 'delete_service', { name: 'web' });
    if (res.isError) throw new Error(text(res));
    const deadline = Date.now() + 120_000;
    let left = 'x';
    while (Date.now() < deadline) {
      left = await kubectl(['get', 'namespace', namespace, '--ignore-not-found', '-o', 'name']);
      if (!left.trim()) break;
      await sleep(1000);
    }
    expect(left.trim()).toBe('');
    expect((await page(`http://web-kube.localhost:${cluster.ingressPort}`)).status).toBe(404);
  }, 180_000);
});
