import path from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../core/daemons/probes.ts';
import { startTemporalDevServer, type TemporalDevServer } from '../../core/daemons/temporal.ts';
import { type Database, openDatabase } from '../../core/db/client.ts';
import { migrate } from '../../core/db/migrate.ts';
import { eventually } from '../support/http.ts';
import { call } from '../support/mcp.ts';
import { sample, scrape } from '../support/metrics.ts';
import { scratchDir } from '../support/scratch.ts';
import { connectAgent, type ServeProcess, startServe } from '../support/serve.ts';

const TOKEN = 'serve-metrics-token-0123456789ab';

/**
 * `deploy-mcp serve --role server,deployer-server` with DEPLOY_MCP_METRICS_TOKEN: both ports
 * serve /metrics behind the token, and the deployer's deploy figures come from records another
 * process wrote (as the deployer-worker does when the roles run apart). No runtime: no deploy.
 */
describe('serve: /metrics on the server and deployer ports', () => {
  const work = scratchDir('metrics-serve');
  const dataDir = path.join(work.dir, 'data');
  const dbUrl = `file:${path.join(dataDir, 'deploy-mcp.db')}`;
  let temporal: TemporalDevServer;
  let serve: ServeProcess;
  let client: Client;
  let db: Database;

  beforeAll(async () => {
    // Only the `all` role migrates by itself.
    await migrate(dbUrl);
    // A free port can be taken by another process between its choice and its use (other test
    // runs share this machine): a start that fails is retried once on fresh ports, and said.
    for (let attempt = 1; ; attempt++) {
      let t: TemporalDevServer | undefined;
      try {
        t = await startTemporalDevServer({
          bin: 'temporal',
          dir: path.join(work.dir, `temporal-${attempt}`),
          port: await freePort(),
          namespace: 'default',
        });
        serve = await startServe(dataDir, {
          roles: 'server,deployer-server',
          env: { DEPLOY_MCP_TEMPORAL_ADDRESS: t.address, DEPLOY_MCP_METRICS_TOKEN: TOKEN },
        });
        temporal = t;
        break;
      } catch (err) {
        await t?.stop();
        if (attempt >= 2) throw err;
        console.warn(`starting Temporal and serve failed (retrying once): ${(err as Error).message}`);
      }
    }
    client = await connectAgent(serve, 'metrics-serve@example.com');
    db = await openDatabase(dbUrl);
  }, 400_000);

  afterAll(async () => {
    await client?.close();
    await db?.close();
    await serve?.stop();
    await temporal?.stop();
    work.cleanup();
  });

  it('asks both ports for the token', async () => {
    for (const port of [serve.ports.server, serve.ports.deployer]) {
      const origin = `http://127.0.0.1:${port}`;
      expect((await scrape(origin)).status).toBe(401);
      expect((await scrape(origin, `${TOKEN}-not`)).status).toBe(401);
      expect((await scrape(origin, TOKEN)).status).toBe(200);
    }
  });

  it('the server port counts tool calls', async () => {
    const origin = `http://127.0.0.1:${serve.ports.server}`;
    const before = sample((await scrape(origin, TOKEN)).body, 'deploy_mcp_tool_duration_seconds_count', {
      tool: 'whoami',
      outcome: 'ok',
    });
    expect((await call(client, 'whoami')).isError).toBeFalsy();
    const after = sample((await scrape(origin, TOKEN)).body, 'deploy_mcp_tool_duration_seconds_count', {
      tool: 'whoami',
      outcome: 'ok',
    });
    expect(after - before).toBe(1);
  });

  it('the deployer port counts a deployment another process recorded as ended', async () => {
    const origin = `http://127.0.0.1:${serve.ports.deployer}`;
    const first = (await scrape(origin, TOKEN)).body;
    expect(sample(first, 'deploy_mcp_deployments_total', { outcome: 'failed' })).toBe(0);
    expect(first).toMatch(/^deploy_mcp_builds_running 0$/m);
    const user = await db.prisma.user.findFirstOrThrow({ where: { email: 'metrics-serve@example.com' } });
    const project = await db.prisma.project.findFirstOrThrow({ where: { userId: user.id } });
    const service = await db.prisma.service.create({
      data: {
        userId: user.id,
        projectId: project.id,
        name: 'metrics-serve',
        liveKey: `${project.id}/metrics-serve`,
        stackName: `st-metrics-serve-${Date.now()}`,
        repoUrl: 'http://127.0.0.1:1/git/x/y.git',
        branch: 'main',
      },
    });
    await db.prisma.deployment.create({
      data: {
        serviceId: service.id,
        userId: user.id,
        workflowId: `wf-metrics-serve-${Date.now()}`,
        trigger: 'push',
        status: 'failed',
        finishedAt: new Date(Date.now() + 500),
        phaseTimings: JSON.stringify({ clone: 250, build: 1500 }),
      },
    });
    // Counted once the settle time (5 s) has passed.
    const body = await eventually(
      async () => (await scrape(origin, TOKEN)).body,
      (b) => sample(b, 'deploy_mcp_deployments_total', { outcome: 'failed' }) === 1,
      60_000,
    );
    expect(sample(body, 'deploy_mcp_deploy_phase_duration_seconds_count', { phase: 'build' })).toBe(1);
    expect(sample(body, 'deploy_mcp_deploy_phase_duration_seconds_sum', { phase: 'build' })).toBeCloseTo(
      1.5,
      6,
    );
    expect(body).not.toContain(user.id);
    expect(body).not.toContain('metrics-serve@');
  });
});
