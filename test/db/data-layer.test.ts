import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../core/db/client.ts';
import { migrate } from '../../core/db/migrate.ts';
import { describeEachDatabase } from '../support/databases.ts';

describeEachDatabase('data layer', (dbs) => {
  let db: Database;
  beforeAll(async () => {
    const url = await dbs.fresh('data');
    await migrate(url);
    db = await openDatabase(url);
  });
  afterAll(async () => {
    await db?.close();
  });

  async function newUser(email: string) {
    return db.prisma.user.create({
      data: { email, projects: { create: { name: 'default' } } },
      include: { projects: true },
    });
  }

  it('stores a user with a project, an API key and a service, and reads them back through relations', async () => {
    const user = await newUser('ada@example.com');
    const project = user.projects[0];
    if (!project) throw new Error('no project');
    await db.prisma.apiKey.create({
      data: { userId: user.id, name: 'laptop', prefix: 'dk_live_ab12', secretHash: 'h' },
    });
    await db.prisma.service.create({
      data: {
        userId: user.id,
        projectId: project.id,
        name: 'web',
        liveKey: `${project.id}/web`,
        stackName: `t-${user.id}-web`,
        repoUrl: 'https://git.example/ada/web.git',
        port: 3000,
      },
    });
    const loaded = await db.prisma.user.findUniqueOrThrow({
      where: { email: 'ada@example.com' },
      include: { apiKeys: true, services: { include: { project: true } } },
    });
    expect(loaded.apiKeys.map((k) => k.prefix)).toEqual(['dk_live_ab12']);
    expect(loaded.services[0]).toMatchObject({ name: 'web', port: 3000, branch: 'main', memoryMb: 512 });
    expect(loaded.services[0]?.project.name).toBe('default');
  });

  it('round-trips timestamps to the millisecond, BigInt beyond 2^53, booleans and NULLs', async () => {
    const user = await newUser('ts@example.com');
    const at = new Date('2026-11-24T01:02:03.456Z');
    const client = await db.prisma.oAuthClient.create({
      data: { clientId: 'c1', name: 'Claude', redirectUris: '["http://localhost/cb"]' },
    });
    const resource = 'http://127.0.0.1/mcp';
    const grant = await db.prisma.oAuthGrant.create({
      data: { userId: user.id, clientId: client.id, scope: 'mcp', resource, expiresAt: at },
    });
    const token = await db.prisma.oAuthToken.create({
      data: {
        tokenHash: 'th1',
        kind: 'access',
        scope: 'mcp',
        resource,
        expiresAt: at,
        grantId: grant.id,
        clientId: client.id,
        userId: user.id,
      },
    });
    const back = await db.prisma.oAuthToken.findUniqueOrThrow({ where: { id: token.id } });
    expect(back.expiresAt).toEqual(at);
    expect(back.revokedAt).toBeNull();
    expect(
      await db.prisma.oAuthToken.count({
        where: { expiresAt: { gt: new Date('2026-11-24T01:02:03.455Z') } },
      }),
    ).toBe(1);

    const big = 2n ** 60n + 7n;
    const repo = await db.prisma.repo.create({
      data: { userId: user.id, ownerName: 'ts', name: 'big', sizeBytes: big },
    });
    expect((await db.prisma.repo.findUniqueOrThrow({ where: { id: repo.id } })).sizeBytes).toBe(big);

    const delivery = await db.prisma.webhookDelivery.create({
      data: {
        provider: 'github',
        deliveryId: 'd1',
        event: 'push',
        signatureValid: false,
        status: 'rejected',
        payloadDigest: 'x',
      },
    });
    expect(
      (await db.prisma.webhookDelivery.findUniqueOrThrow({ where: { id: delivery.id } })).signatureValid,
    ).toBe(false);
  });

  it('bumps updatedAt on update', async () => {
    const user = await newUser('upd@example.com');
    await new Promise((r) => setTimeout(r, 5));
    const updated = await db.prisma.user.update({ where: { id: user.id }, data: { ownerName: 'upd' } });
    expect(updated.updatedAt.getTime()).toBeGreaterThan(user.updatedAt.getTime());
  });

  it('enforces uniqueness with P2002: emails, project names per user, live service names', async () => {
    await newUser('dup@example.com');
    await expect(newUser('dup@example.com')).rejects.toMatchObject({ code: 'P2002' });

    const user = await newUser('names@example.com');
    await expect(
      db.prisma.project.create({ data: { userId: user.id, name: 'default' } }),
    ).rejects.toMatchObject({
      code: 'P2002',
    });
    // The same project name under another user is fine: names are per tenant.
    const other = await newUser('names2@example.com');
    expect(other.projects[0]?.name).toBe('default');
  });

  it('frees a service name on delete (liveKey NULL) while keeping the history row', async () => {
    const user = await newUser('live@example.com');
    const projectId = user.projects[0]?.id ?? '';
    const make = (suffix: string) =>
      db.prisma.service.create({
        data: {
          userId: user.id,
          projectId,
          name: 'api',
          liveKey: `${projectId}/api`,
          stackName: `t-${user.id}-api-${suffix}`,
          repoUrl: 'r',
        },
      });
    const first = await make('1');
    await expect(make('2')).rejects.toMatchObject({ code: 'P2002' });
    await db.prisma.service.update({
      where: { id: first.id },
      data: { liveKey: null, deletedAt: new Date(), status: 'deleted' },
    });
    const second = await make('3');
    const all = await db.prisma.service.findMany({
      where: { projectId, name: 'api' },
      orderBy: { createdAt: 'asc' },
    });
    expect(all.map((s) => [s.id, s.status])).toEqual([
      [first.id, 'deleted'],
      [second.id, 'queued'],
    ]);
  });

  it('rolls back an interactive transaction that throws', async () => {
    await expect(
      db.prisma.$transaction(async (tx) => {
        await tx.user.create({ data: { email: 'ghost@example.com' } });
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(await db.prisma.user.findUnique({ where: { email: 'ghost@example.com' } })).toBeNull();
  });

  it('rejects rows that point at missing parents (P2003), and cascades user deletion', async () => {
    await expect(
      db.prisma.apiKey.create({
        data: { userId: 'missing', name: 'x', prefix: 'dk_live_zz', secretHash: 'h' },
      }),
    ).rejects.toMatchObject({ code: 'P2003' });

    const user = await newUser('gone@example.com');
    await db.prisma.apiKey.create({
      data: { userId: user.id, name: 'k', prefix: 'dk_live_gone', secretHash: 'h' },
    });
    const event = await db.prisma.auditEvent.create({
      data: {
        userId: user.id,
        actor: 'operator',
        action: 'user.create',
        targetType: 'user',
        targetId: user.id,
      },
    });
    await db.prisma.user.delete({ where: { id: user.id } });
    expect(await db.prisma.apiKey.count({ where: { prefix: 'dk_live_gone' } })).toBe(0);
    expect(await db.prisma.project.count({ where: { userId: user.id } })).toBe(0);
    // Audit events outlive the user they mention.
    expect((await db.prisma.auditEvent.findUniqueOrThrow({ where: { id: event.id } })).userId).toBeNull();
  });
});
