import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.ts';
import { type Database, openDatabase } from '../../core/db/client.ts';
import { migrate } from '../../core/db/migrate.ts';
import { type Listening, listen } from '../../core/http.ts';
import { createLogger } from '../../core/log.ts';
import { Metrics, type MetricsAccess } from '../../core/metrics.ts';
import { createUser, DEFAULT_PROJECT } from '../../core/users.ts';
import { registerDeployMetrics } from '../../workers/deploy/deploy-metrics.ts';
import { createDeployerApp } from '../../workers/deployer-app.ts';
import { sample, scrape } from '../support/metrics.ts';
import { scratchDir } from '../support/scratch.ts';

const TOKEN = 'deployer-metrics-token-0123456789';
const log = createLogger({ level: 'silent' });

/**
 * Deploy figures come from the deployment records (as the deploy activities leave them), so
 * these tests write records and scrape the deployer-server's app over HTTP: no deploy runs.
 */
describe('GET /metrics on the deployer port: deploys from the records', () => {
  const scratch = scratchDir('deploy-metrics');
  let db: Database;
  const listening: Listening[] = [];
  const services: { id: string; userId: string; name: string }[] = [];
  let n = 0;

  beforeAll(async () => {
    const url = `file:${path.join(scratch.dir, 'test.db')}`;
    await migrate(url);
    db = await openDatabase(url);
    // Two tenants: the figures count both, and name neither.
    for (const email of ['deploys-a@example.com', 'deploys-b@example.com']) {
      const user = await createUser(db.prisma, email);
      const project = await db.prisma.project.findUniqueOrThrow({
        where: { userId_name: { userId: user.id, name: DEFAULT_PROJECT } },
      });
      const name = `secret-shop-${services.length}`;
      const service = await db.prisma.service.create({
        data: {
          userId: user.id,
          projectId: project.id,
          name,
          liveKey: `${project.id}/${name}`,
          stackName: `st-metrics-${services.length}`,
          repoUrl: 'http://127.0.0.1:1/git/x/y.git',
          branch: 'main',
        },
      });
      services.push({ id: service.id, userId: user.id, name });
    }
  });
  afterAll(async () => {
    for (const l of listening) await l.close();
    await db?.close();
    scratch.cleanup();
  });

  async function deployment(
    tenant: number,
    status: string,
    finishedAt: Date | null,
    phases?: Record<string, number>,
  ) {
    const s = services[tenant] as (typeof services)[number];
    await db.prisma.deployment.create({
      data: {
        serviceId: s.id,
        userId: s.userId,
        workflowId: `wf-metrics-${n++}`,
        trigger: 'push',
        status,
        finishedAt,
        ...(phases ? { phaseTimings: JSON.stringify(phases) } : {}),
      },
    });
  }

  async function deployerApp(
    access: MetricsAccess,
    options: Parameters<typeof registerDeployMetrics>[3] = { settleMs: 0 },
  ) {
    const metrics = new Metrics();
    registerDeployMetrics(metrics, db.prisma, log, options);
    const app = createDeployerApp({ health: {}, metrics: { metrics, access, log } });
    const l = await listen(app, '127.0.0.1', 0);
    listening.push(l);
    return `http://127.0.0.1:${l.port}`;
  }

  it('is not served by default (404), and asks for the token when one is set (401)', async () => {
    const off = await deployerApp(loadConfig({}).metrics);
    expect((await scrape(off)).status).toBe(404);
    const guarded = await deployerApp(loadConfig({ DEPLOY_MCP_METRICS_TOKEN: TOKEN }).metrics);
    expect((await scrape(guarded)).status).toBe(401);
    expect((await scrape(guarded, 'wrong-token-0123456789')).status).toBe(401);
    expect((await scrape(guarded, TOKEN)).status).toBe(200);
  });

  it('counts deployments by outcome and times their phases, each once; builds running and queued now', async () => {
    // Ended before the process started: not counted (a fresh counter starts at 0).
    await deployment(0, 'active', new Date(Date.now() - 3_600_000), { clone: 99_000 });
    const origin = await deployerApp({ mode: 'token', token: TOKEN });

    const at = new Date(Date.now() + 1000);
    await deployment(0, 'active', at, {
      clone: 1200,
      build: 3400,
      push: 500,
      stackUp: 4300,
      health: 800,
      promote: 4400,
    });
    await deployment(1, 'failed', at, { clone: 100, build: 2000, mystery: 5 });
    await deployment(1, 'cancelled', new Date(at.getTime() + 1));
    await deployment(0, 'superseded', new Date(at.getTime() + 2));
    await deployment(0, 'queued', null);
    await deployment(0, 'building', null);
    await deployment(1, 'building', null);
    await deployment(1, 'deploying', null);
    // The records end "in the future" by a second: wait (bounded) until they are in the past.
    for (let i = 0; i < 50 && Date.now() <= at.getTime() + 2; i++)
      await new Promise((r) => setTimeout(r, 100));

    const first = await scrape(origin, TOKEN);
    expect(first.status).toBe(200);
    const check = (body: string, active: number) => {
      expect(sample(body, 'deploy_mcp_deployments_total', { outcome: 'active' })).toBe(active);
      expect(sample(body, 'deploy_mcp_deployments_total', { outcome: 'failed' })).toBe(1);
      expect(sample(body, 'deploy_mcp_deployments_total', { outcome: 'cancelled' })).toBe(1);
      expect(sample(body, 'deploy_mcp_deployments_total', { outcome: 'superseded' })).toBe(1);
      expect(sample(body, 'deploy_mcp_builds_running')).toBe(2);
      expect(sample(body, 'deploy_mcp_deployments_queued')).toBe(1);
    };
    check(first.body, 1);
    const phase = (body: string, p: string, what: 'count' | 'sum') =>
      sample(body, `deploy_mcp_deploy_phase_duration_seconds_${what}`, { phase: p });
    expect(phase(first.body, 'clone', 'count')).toBe(2);
    expect(phase(first.body, 'clone', 'sum')).toBeCloseTo(1.3, 6);
    expect(phase(first.body, 'build', 'sum')).toBeCloseTo(5.4, 6);
    expect(phase(first.body, 'stackUp', 'count')).toBe(1);
    expect(phase(first.body, 'promote', 'sum')).toBeCloseTo(4.4, 6);
    expect(
      sample(first.body, 'deploy_mcp_deploy_phase_duration_seconds_bucket', { phase: 'stackUp', le: '4' }),
    ).toBe(0);
    expect(
      sample(first.body, 'deploy_mcp_deploy_phase_duration_seconds_bucket', { phase: 'stackUp', le: '8' }),
    ).toBe(1);
    expect(first.body).not.toContain('mystery');

    // Scraped again: nothing counted twice.
    check((await scrape(origin, TOKEN)).body, 1);

    // One more ends at the very instant of the last one counted: counted once, on the next scrape.
    await deployment(1, 'active', new Date(at.getTime() + 2), { health: 700 });
    const third = (await scrape(origin, TOKEN)).body;
    check(third, 2);
    expect(phase(third, 'health', 'count')).toBe(2);
    check((await scrape(origin, TOKEN)).body, 2);

    // Tenant-agnostic: no user, email, service or project in the output.
    for (const s of services) {
      expect(third).not.toContain(s.userId);
      expect(third).not.toContain(s.name);
      expect(third).not.toContain(s.id);
    }
    expect(third).not.toContain('example.com');
  });

  it('leaves a deployment that ended within the settle time for a later scrape', async () => {
    const since = new Date(Date.now() - 600_000);
    const origin = await deployerApp({ mode: 'public' }, { since, settleMs: 60_000 });
    const before = (await scrape(origin)).body;
    await deployment(0, 'failed', new Date(Date.now() - 120_000));
    await deployment(0, 'failed', new Date());
    const after = (await scrape(origin)).body;
    // Only the one that ended two minutes ago (those of the test before ended seconds ago: they
    // wait too).
    expect(
      sample(after, 'deploy_mcp_deployments_total', { outcome: 'failed' }) -
        sample(before, 'deploy_mcp_deployments_total', { outcome: 'failed' }),
    ).toBe(1);
  });
});
