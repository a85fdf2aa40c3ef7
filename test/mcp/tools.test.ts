import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADDED_TOOLS,
  call,
  connectClient,
  type McpTestServer,
  SEED_TOOLS,
  startMcpTestServer,
  text,
} from '../support/mcp.ts';

describe('MCP tool contract', () => {
  let srv: McpTestServer;
  let client: Client;
  let userId: string;

  beforeAll(async () => {
    srv = await startMcpTestServer();
    const user = await srv.newUser('tools@example.com');
    userId = user.userId;
    client = await connectClient(srv.url, user.key);
  });
  afterAll(async () => {
    await client?.close();
    await srv.close();
  });

  async function addServices(count: number, project = 'default') {
    const p = await srv.db.prisma.project.findUniqueOrThrow({
      where: { userId_name: { userId, name: project } },
    });
    for (let i = 0; i < count; i++) {
      const name = `svc-${String(i).padStart(2, '0')}`;
      await srv.db.prisma.service.create({
        data: {
          userId,
          projectId: p.id,
          name,
          liveKey: `${p.id}/${name}`,
          stackName: `st-${p.id}-${name}`,
          repoUrl: 'app',
        },
      });
    }
  }

  it('lists exactly the twelve seed tools and the added ones, each with a description, schemas and annotations', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([...SEED_TOOLS, ...ADDED_TOOLS].sort());
    for (const t of tools) {
      expect(t.description?.length, t.name).toBeGreaterThan(80);
      expect(t.outputSchema?.type, t.name).toBe('object');
      expect(t.inputSchema.type, t.name).toBe('object');
      expect(t.annotations, t.name).toBeDefined();
    }
  });

  it('marks reads read-only, deletes destructive, and creates idempotent', async () => {
    const { tools } = await client.listTools();
    const a = Object.fromEntries(tools.map((t) => [t.name, t.annotations ?? {}]));
    for (const name of ['whoami', 'list_services', 'get_service', 'list_resources', 'get_resource']) {
      expect(a[name], name).toMatchObject({ readOnlyHint: true, destructiveHint: false });
    }
    for (const name of ['delete_service', 'delete_resource']) {
      expect(a[name], name).toMatchObject({ readOnlyHint: false, destructiveHint: true });
    }
    for (const name of ['create_service', 'create_resource', 'create_repo']) {
      expect(a[name], name).toMatchObject({
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: true,
      });
    }
    expect(a.redeploy_service).toMatchObject({ readOnlyHint: false, idempotentHint: false });
  });

  it('whoami returns the email, projects and git hosts', async () => {
    const res = await call(client, 'whoami');
    expect(res.structuredContent).toMatchObject({
      email: 'tools@example.com',
      projects: [{ name: 'default', services: 0, resources: 0 }],
      git_hosts: [{ host: 'internal', base_url: `${srv.origin}/git`, default: true }],
    });
    expect(JSON.parse(text(res))).toEqual(res.structuredContent);
  });

  it('paginates list_services and says how to get the next page', async () => {
    await addServices(25);
    const first = await call(client, 'list_services', {});
    const p1 = first.structuredContent as { services: { name: string }[]; next_cursor: string; note: string };
    expect(p1.services).toHaveLength(20);
    expect(p1.note).toContain(`cursor="${p1.next_cursor}"`);
    const second = await call(client, 'list_services', { cursor: p1.next_cursor });
    const p2 = second.structuredContent as { services: { name: string }[]; next_cursor: string | null };
    expect(p2.services).toHaveLength(5);
    expect(p2.next_cursor).toBeNull();
    const names = [...p1.services, ...p2.services].map((s) => s.name);
    expect(new Set(names).size).toBe(25);
    const small = await call(client, 'list_services', { limit: 3 });
    expect((small.structuredContent as { services: unknown[] }).services).toHaveLength(3);
  });

  it('get_service masks env unless asked, and bounds log tails with a hint', async () => {
    const svc = await srv.db.prisma.service.findFirstOrThrow({ where: { userId, name: 'svc-00' } });
    await srv.db.prisma.service.update({
      where: { id: svc.id },
      data: { envEncrypted: srv.secrets.sealJson({ API_TOKEN: 'shh' }, `service:${svc.id}:env`) },
    });
    const log = Array.from({ length: 120 }, (_, i) => `build line ${i + 1}`).join('\n');
    await srv.db.prisma.deployment.create({
      data: {
        serviceId: svc.id,
        userId,
        workflowId: `wf-${svc.id}`,
        trigger: 'create',
        status: 'failed',
        statusReason: 'build failed: npm ERR! missing script: build',
        buildLogTail: log,
      },
    });
    const masked = (await call(client, 'get_service', { name: 'svc-00' })).structuredContent as {
      env: Record<string, string>;
      deployment: {
        status: string;
        reason: string;
        build_log: { lines: string[]; truncated: boolean; note: string };
      };
    };
    expect(masked.env).toEqual({ API_TOKEN: '********' });
    expect(masked.deployment).toMatchObject({
      status: 'failed',
      reason: expect.stringContaining('missing script'),
    });
    expect(masked.deployment.build_log.lines).toHaveLength(50);
    expect(masked.deployment.build_log.lines.at(-1)).toBe('build line 120');
    expect(masked.deployment.build_log.note).toMatch(
      /70 earlier line\(s\) omitted; call get_service with deploy_log_lines/,
    );

    const full = (
      await call(client, 'get_service', { name: 'svc-00', include_env: true, deploy_log_lines: 500 })
    ).structuredContent as {
      env: Record<string, string>;
      deployment: { build_log: { lines: string[]; truncated: boolean } };
    };
    expect(full.env).toEqual({ API_TOKEN: 'shh' });
    expect(full.deployment.build_log).toMatchObject({ truncated: false });
    expect(full.deployment.build_log.lines).toHaveLength(120);
  });

  it("names the caller's projects when a project is unknown, and never creates it", async () => {
    const res = await call(client, 'list_services', { project: 'staging' });
    expect(res.isError).toBe(true);
    expect(text(res)).toBe('project "staging" not found. Your projects: default.');
    expect(await srv.db.prisma.project.count({ where: { userId } })).toBe(1);
  });

  it.each([
    [
      'create_service',
      { name: 'web', repo: 'app' },
      /Deploying services \(create_service\) is not available yet/,
    ],
    ['create_resource', { name: 'db' }, /Creating databases \(create_resource\) is not available yet/],
    ['create_repo', { name: 'code', host: 'github' }, /GitHub is not configured on this server/],
    ['redeploy_service', { name: 'svc-01' }, /is not available yet/],
    ['delete_service', { name: 'svc-01' }, /is not available yet/],
  ])('%s answers a clear "not available yet" error', async (tool, args, message) => {
    const res = await call(client, tool, args);
    expect(res.isError).toBe(true);
    expect(text(res)).toMatch(message);
  });
});
