import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../core/daemons/probes.ts';
import { startTemporalDevServer, type TemporalDevServer } from '../../core/daemons/temporal.ts';
import { type Database, openDatabase } from '../../core/db/client.ts';
import { connectTemporal } from '../../workers/client.ts';
import { IN_FLIGHT_STATUSES } from '../../workers/deploy/statuses.ts';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { eventually, httpGet } from '../support/http.ts';
import { call, text } from '../support/mcp.ts';
import { startTestRuntime, type TestRuntime } from '../support/runtime.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { CLI as cli, connectAgent, type ServeProcess, startServe } from '../support/serve.ts';

const exec = promisify(execFile);
/** Unique text on the build step's command line: pgrep finds the step while it runs. */
const MARKER = `slow-build-step-${process.pid}-${Date.now()}`;

describe('the deployer-worker is killed in the middle of a build', () => {
  const work = scratchDir('worker-restart', path.join(repoRoot, '.data', 'test'));
  const dataDir = path.join(work.dir, 'data');
  let rt: TestRuntime;
  let temporal: TemporalDevServer;
  let server: ServeProcess;
  const deployers: ServeProcess[] = [];
  let client: Client;
  let db: Database;
  let env: NodeJS.ProcessEnv;
  let userId: string | undefined;

  beforeAll(async () => {
    rt = await startTestRuntime(path.join(work.dir, 'runtime'));
    temporal = await startTemporalDevServer({
      bin: 'temporal',
      dir: path.join(work.dir, 'temporal'),
      port: await freePort(),
      namespace: 'default',
    });
    const port = await freePort();
    // Three processes share the database, the data dir, Temporal and the runtime daemons.
    env = {
      ...process.env,
      DEPLOY_MCP_DATA_DIR: dataDir,
      DEPLOY_MCP_PORT: String(port),
      DEPLOY_MCP_PUBLIC_URL: `http://127.0.0.1:${port}`,
      DEPLOY_MCP_TEMPORAL_ADDRESS: temporal.address,
      DEPLOY_MCP_BUILDKIT_ADDRESS: rt.buildkit.address,
      DEPLOY_MCP_REGISTRY: rt.registry.host,
      DEPLOY_MCP_ENGINE_SOCKET: rt.podman.socketPath,
      DEPLOY_MCP_ROUTES_DIR: rt.traefik.routesDir,
      DEPLOY_MCP_INGRESS_PORT: String(rt.traefikPort),
    };
    await exec(cli, ['migrate'], { env });
    server = await startServe(dataDir, { roles: 'server,worker', env });
    client = await connectAgent(server, 'agent@example.com');
    db = await openDatabase(`file:${path.join(dataDir, 'deploy-mcp.db')}`);
    userId = (await db.prisma.user.findUniqueOrThrow({ where: { email: 'agent@example.com' } })).id;
  });

  afterAll(async () => {
    await client?.close();
    await db?.close();
    for (const p of [...deployers, server]) await p?.stop();
    // This test's containers only (other tests may run beside it).
    if (userId)
      await exec('podman', ['rm', '-f', '--filter', `label=deploy-mcp.user=${userId}`]).catch(
        () => undefined,
      );
    await temporal?.stop();
    await rt?.stop();
    work.cleanup();
  });

  const startDeployer = async () => {
    const p = await startServe(dataDir, { roles: 'deployer-worker', env });
    deployers.push(p);
    return p;
  };

  it('deploys exactly once after a new worker takes the build over', async () => {
    const first = await startDeployer();
    const repo = await call(client, 'create_repo', { name: 'slow' });
    const remote = (repo.structuredContent as { git_remote: string }).git_remote;
    const app = path.join(work.dir, 'app');
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps/node-hello'), app, { recursive: true });
    // The build step runs long enough to be killed in the middle of it.
    const pkg = JSON.parse(fs.readFileSync(path.join(app, 'package.json'), 'utf8'));
    pkg.scripts.build = `sleep 12 && node build.js ${MARKER}`;
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify(pkg, null, 2));
    await pushNewRepo(agentGit(work.dir), app, remote);

    const created = await call(client, 'create_service', { name: 'slow', repo: 'slow', wait: false });
    if (created.isError) throw new Error(text(created));

    // Wait until BuildKit runs the slow step, then kill the worker's whole process group.
    await eventually(
      () =>
        exec('pgrep', ['-f', `sleep 12 && node build.js ${MARKER}`]).then(
          (r) => r.stdout.trim(),
          () => '',
        ),
      (pids) => pids !== '',
      180_000,
    );
    process.kill(-(first.child.pid as number), 'SIGKILL');
    await first.exited;
    const during = await db.prisma.deployment.findFirstOrThrow({ where: { service: { name: 'slow' } } });
    expect(during.status).toBe('building');

    await sleep(2000);
    await startDeployer();
    const view = await eventually(
      async () =>
        (await call(client, 'get_service', { name: 'slow' })).structuredContent as {
          status: string;
          url: string | null;
          deployment: { status: string; reason: string | null };
        },
      (v) => !IN_FLIGHT_STATUSES.includes(v.deployment.status),
      240_000,
    );
    expect(view.deployment, JSON.stringify(view)).toMatchObject({ status: 'active', reason: null });
    const page = await httpGet(`http://127.0.0.1:${rt.traefikPort}/`, new URL(view.url ?? '').hostname);
    expect(page.body).toMatch(/build token/);

    // Exactly once: one deployment, one release, one container; the build ran twice (the
    // killed attempt and its retry), the release step once.
    const deployments = await db.prisma.deployment.findMany({
      where: { service: { name: 'slow' } },
      include: { release: true },
    });
    expect(deployments).toHaveLength(1);
    expect(await db.prisma.release.count({ where: { deploymentId: deployments[0]?.id } })).toBe(1);
    const { stdout } = await exec('podman', [
      'ps',
      '-aq',
      '--filter',
      `label=deploy-mcp.service=${deployments[0]?.serviceId}`,
    ]);
    expect(stdout.split('\n').filter(Boolean)).toHaveLength(1);

    const t = await connectTemporal(temporal.address, 'default');
    try {
      // The deployment is active once its release is recorded; the workflow ends after its
      // best-effort steps (image pruning), a moment later on a busy machine.
      const handle = t.client.workflow.getHandle(deployments[0]?.workflowId ?? '');
      await eventually(
        () => handle.describe(),
        (d) => d.status.name !== 'RUNNING',
        120_000,
      );
      const history = await handle.fetchHistory();
      const events = history.events ?? [];
      const scheduled = events.flatMap((e) => {
        const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
        return name ? [name] : [];
      });
      expect(scheduled.filter((n) => n === 'buildImage')).toHaveLength(1);
      expect(scheduled.filter((n) => n === 'releaseImage')).toHaveLength(1);
      const attempts = events.flatMap((e) =>
        e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt] : [],
      );
      // The build's started event records its final attempt: the retry on the new worker.
      expect(attempts[0]).toBe(2);
      expect(events.some((e) => e.workflowExecutionCompletedEventAttributes)).toBe(true);
    } finally {
      await t.close();
    }
  });
});
