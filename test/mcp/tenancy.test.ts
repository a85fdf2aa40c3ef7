import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call,
  connectClient,
  type McpTestServer,
  SEED_TOOLS,
  startMcpTestServer,
  text,
} from '../support/mcp.ts';

// Bob owns a service, a database and a repo in project "staging". Alice probes every tool
// with Bob's names: each must answer as if they did not exist. Bob, making the same calls,
// sees them (so the probes can tell the difference).
describe('tenancy: every tool is scoped to the caller', () => {
  let srv: McpTestServer;
  let alice: Client;
  let bob: Client;

  beforeAll(async () => {
    srv = await startMcpTestServer();
    const a = await srv.newUser('alice@example.com');
    const b = await srv.newUser('bob@example.com');
    const db = srv.db.prisma;
    const staging = await db.project.create({ data: { userId: b.userId, name: 'staging' } });
    await db.service.create({
      data: {
        userId: b.userId,
        projectId: staging.id,
        name: 'web',
        liveKey: `${staging.id}/web`,
        stackName: 'bob-web',
        repoUrl: 'code',
      },
    });
    const resource = await db.resource.create({
      data: {
        userId: b.userId,
        projectId: staging.id,
        name: 'db',
        liveKey: `${staging.id}/db`,
        type: 'libsql',
        size: 'small',
        region: 'fra',
      },
    });
    await db.resource.update({
      where: { id: resource.id },
      data: {
        connectionEncrypted: srv.secrets.sealJson(
          { DATABASE_URL: 'libsql://bob' },
          `resource:${resource.id}:connection`,
        ),
      },
    });
    await db.repo.create({ data: { userId: b.userId, ownerName: 'bob', name: 'code' } });
    // Alice has a project called "staging" too, so project scoping alone cannot hide Bob's rows.
    await db.project.create({ data: { userId: a.userId, name: 'staging' } });
    alice = await connectClient(srv.url, a.key);
    bob = await connectClient(srv.url, b.key);
  });
  afterAll(async () => {
    await Promise.all([alice?.close(), bob?.close()]);
    await srv.close();
  });

  const probes: [tool: string, args: Record<string, unknown>, bobSees: RegExp][] = [
    ['get_service', { name: 'web', project: 'staging' }, /"name":"web"/],
    ['redeploy_service', { name: 'web', project: 'staging' }, /not available yet/],
    ['delete_service', { name: 'web', project: 'staging' }, /not available yet/],
    ['list_deployments', { name: 'web', project: 'staging' }, /"service":"web"/],
    ['rollback_service', { name: 'web', project: 'staging', release: 1 }, /not available yet/],
    ['get_resource', { name: 'db', project: 'staging', include_secrets: true }, /libsql:\/\/bob/],
    ['delete_resource', { name: 'db', project: 'staging' }, /not available yet/],
    ['attach_resource', { service: 'web', resource: 'db', project: 'staging' }, /not available yet/],
    ['detach_resource', { service: 'web', resource: 'db', project: 'staging' }, /not available yet/],
    ['rotate_resource_credentials', { name: 'db', project: 'staging' }, /not available yet/],
    ['get_git_token', { name: 'code' }, /"git_remote":"http:\/\/bob:mlg_/],
  ];

  it.each(probes)("%s on the other tenant's object answers not found", async (tool, args, bobSees) => {
    const asAlice = await call(alice, tool, args);
    expect(asAlice.isError).toBe(true);
    expect(text(asAlice)).toMatch(/not found/);
    expect(text(asAlice)).not.toMatch(/bob/i);
    expect(text(await call(bob, tool, args))).toMatch(bobSees);
  });

  it("lists show only the caller's own services and resources", async () => {
    for (const [tool, key] of [
      ['list_services', 'services'],
      ['list_resources', 'resources'],
    ] as const) {
      const mine = (await call(alice, tool, {})).structuredContent as Record<string, unknown[]>;
      expect(mine[key], tool).toEqual([]);
      const bobs = (await call(bob, tool, {})).structuredContent as Record<string, unknown[]>;
      expect(bobs[key], tool).toHaveLength(1);
    }
  });

  it("whoami shows only the caller's account and projects", async () => {
    const me = (await call(alice, 'whoami')).structuredContent as {
      email: string;
      projects: { name: string; services: number }[];
    };
    expect(me.email).toBe('alice@example.com');
    expect(me.projects).toEqual([
      { name: 'default', services: 0, resources: 0 },
      { name: 'staging', services: 0, resources: 0 },
    ]);
  });

  it("creates cannot reach into the other tenant's project", async () => {
    const res = await call(alice, 'create_service', { name: 'web', repo: 'code', project: 'prod' });
    expect(text(res)).toBe('project "prod" not found. Your projects: default, staging.');
  });

  it('covers every seed tool', () => {
    const probed = new Set([
      ...probes.map((p) => p[0]),
      'list_services',
      'list_resources',
      'whoami',
      'create_service',
    ]);
    // create_resource and create_repo act only on the caller's own namespace; they are probed
    // for validation and "not available yet" in tools.test.ts.
    expect([...SEED_TOOLS].filter((t) => !probed.has(t)).sort()).toEqual(['create_repo', 'create_resource']);
  });
});
