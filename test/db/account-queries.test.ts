import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../core/db/client.ts';
import { migrate } from '../../core/db/migrate.ts';
import { accountOverview } from '../../core/projects.ts';
import { listServicePage } from '../../core/service-list.ts';
import { serviceStates, statesOf } from '../../workers/deploy/service-status.ts';
import { describeEachDatabase } from '../support/databases.ts';

/**
 * The raw statements behind whoami (accountOverview) and list_services (listServicePage): the
 * same answers on both product databases, scoped to the caller (another tenant's rows never
 * count or show), deleted rows left out, and pages that continue after their cursor.
 */
describeEachDatabase('account queries', (dbs) => {
  let db: Database;

  beforeAll(async () => {
    const url = await dbs.fresh('account');
    await migrate(url);
    db = await openDatabase(url);
  });
  afterAll(async () => {
    await db?.close();
  });

  async function account(email: string, projects: string[], ownerName?: string) {
    const user = await db.prisma.user.create({ data: { email, ...(ownerName ? { ownerName } : {}) } });
    const ids: Record<string, string> = {};
    for (const name of projects)
      ids[name] = (await db.prisma.project.create({ data: { userId: user.id, name } })).id;
    return { userId: user.id, projects: ids };
  }

  async function service(userId: string, projectId: string, name: string, deleted = false) {
    return db.prisma.service.create({
      data: {
        userId,
        projectId,
        name,
        stackName: `${projectId}-${name}`,
        repoUrl: `repo-${name}`,
        url: `http://${name}.example`,
        ...(deleted ? { deletedAt: new Date(), status: 'deleted' } : {}),
      },
    });
  }

  async function resource(userId: string, projectId: string, name: string, deleted = false) {
    return db.prisma.resource.create({
      data: {
        userId,
        projectId,
        name,
        type: 'postgres',
        size: 'small',
        region: 'local',
        ...(deleted ? { deletedAt: new Date() } : {}),
      },
    });
  }

  it("counts each project's live services and resources, the caller's only", async () => {
    const ada = await account('ada@example.com', ['web', 'api'], 'ada');
    const bob = await account('bob@example.com', ['web']);
    const web = ada.projects.web as string;
    const api = ada.projects.api as string;
    await service(ada.userId, web, 'one');
    await service(ada.userId, web, 'two');
    await service(ada.userId, web, 'gone', true);
    await service(ada.userId, api, 'three');
    await resource(ada.userId, api, 'db');
    await resource(ada.userId, api, 'old-db', true);
    await service(bob.userId, bob.projects.web as string, 'one');
    await resource(bob.userId, bob.projects.web as string, 'db');

    expect(await accountOverview(db.prisma, ada.userId)).toEqual({
      ownerName: 'ada',
      projects: [
        { name: 'api', services: 1, resources: 1 },
        { name: 'web', services: 2, resources: 0 },
      ],
    });
    expect(await accountOverview(db.prisma, bob.userId)).toEqual({
      ownerName: null,
      projects: [{ name: 'web', services: 1, resources: 1 }],
    });
    const empty = await account('cy@example.com', []);
    expect(await accountOverview(db.prisma, empty.userId)).toEqual({ ownerName: null, projects: [] });
    expect(await accountOverview(db.prisma, 'no-such-user')).toBeUndefined();
  });

  it('lists the live services of the caller by id, with project and attached resource names', async () => {
    const eve = await account('eve@example.com', ['a', 'b']);
    const mallory = await account('mallory@example.com', ['a']);
    const a = eve.projects.a as string;
    const made = [];
    for (const name of ['s1', 's2', 's3']) made.push(await service(eve.userId, a, name));
    made.push(await service(eve.userId, eve.projects.b as string, 's4'));
    await service(eve.userId, a, 'deleted', true);
    await service(mallory.userId, mallory.projects.a as string, 'theirs');
    const [s1] = made;
    const pg = await resource(eve.userId, a, 'pg');
    const cache = await resource(eve.userId, a, 'cache');
    await db.prisma.serviceResource.createMany({
      data: [
        { serviceId: s1?.id as string, resourceId: pg.id },
        { serviceId: s1?.id as string, resourceId: cache.id },
      ],
    });

    const all = await listServicePage(db.prisma, eve.userId, { take: 10 });
    const byId = [...made].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    expect(all.map((s) => s.id)).toEqual(byId.map((s) => s.id));
    const first = all.find((s) => s.name === 's1');
    expect(first).toMatchObject({
      repoUrl: 'repo-s1',
      url: 'http://s1.example',
      branch: 'main',
      status: s1?.status,
      currentReleaseId: null,
      project: { name: 'a' },
    });
    expect(first?.updatedAt.toISOString()).toBe(s1?.updatedAt.toISOString());
    expect(first?.resources.map((r) => r.resource.name).sort()).toEqual(['cache', 'pg']);
    expect(all.find((s) => s.name === 's4')).toMatchObject({ project: { name: 'b' }, resources: [] });

    const page1 = await listServicePage(db.prisma, eve.userId, { take: 2 });
    const page2 = await listServicePage(db.prisma, eve.userId, { take: 10, after: page1[1]?.id });
    expect([...page1, ...page2].map((s) => s.id)).toEqual(all.map((s) => s.id));

    const onlyB = await listServicePage(db.prisma, eve.userId, { take: 10, projectId: eve.projects.b });
    expect(onlyB.map((s) => s.name)).toEqual(['s4']);
    // Another tenant's project id shows none of theirs.
    const foreign = await listServicePage(db.prisma, eve.userId, { take: 10, projectId: mallory.projects.a });
    expect(foreign).toEqual([]);
    expect((await listServicePage(db.prisma, mallory.userId, { take: 10 })).map((s) => s.name)).toEqual([
      'theirs',
    ]);
  });

  it("reads each service's state with its page: the newest deployment in flight, the serving release, the queue", async () => {
    const ivy = await account('ivy@example.com', ['p']);
    const other = await account('oz@example.com', ['p']);
    const p = ivy.projects.p as string;
    let n = 0;
    const hourAgo = Date.now() - 60 * 60_000;
    const at = (minutes: number) => new Date(hourAgo + minutes * 60_000);
    async function deploy(
      s: { id: string; userId: string },
      status: string,
      minutes: number,
      imageRef?: string,
    ) {
      return db.prisma.deployment.create({
        data: {
          serviceId: s.id,
          userId: s.userId,
          workflowId: `wf-states-${++n}`,
          trigger: 'create',
          status,
          createdAt: at(minutes),
          imageRef: imageRef ?? null,
        },
      });
    }
    async function release(s: { id: string }, deploymentId: string, version: number) {
      const r = await db.prisma.release.create({
        data: { serviceId: s.id, deploymentId, version, imageRef: `img:${version}`, configDigest: 'x' },
      });
      await db.prisma.service.update({
        where: { id: s.id },
        data: { currentReleaseId: r.id, status: 'active' },
      });
    }
    // live: release 2 serving, a redeploy building, after an older one still deploying.
    const live = await service(ivy.userId, p, 'live');
    await release(live, (await deploy(live, 'active', 1)).id, 1);
    await release(live, (await deploy(live, 'active', 2)).id, 2);
    await deploy(live, 'deploying', 3);
    await deploy(live, 'building', 4);
    // waiting: queued for a builder behind another tenant's older queued deployment.
    const waiting = await service(ivy.userId, p, 'waiting');
    await deploy(waiting, 'failed', 1);
    await deploy(await service(other.userId, other.projects.p as string, 'ahead'), 'queued', 5);
    await deploy(waiting, 'queued', 6);
    // rolling: a rollback queued (its image is built: no builder to wait for); failed: nothing in flight.
    const rolling = await service(ivy.userId, p, 'rolling');
    await deploy(rolling, 'queued', 7, 'img:old');
    const failed = await service(ivy.userId, p, 'failed');
    await deploy(failed, 'failed', 8);
    await db.prisma.service.update({ where: { id: failed.id }, data: { status: 'failed' } });

    const page = await listServicePage(db.prisma, ivy.userId, { take: 10 });
    const fromPage = await statesOf(db.prisma, page);
    const fromQueries = await serviceStates(db.prisma, page);
    const byName = (states: typeof fromPage) =>
      Object.fromEntries(page.map((s) => [s.name, states.get(s.id)]));
    expect(byName(fromPage)).toEqual(byName(fromQueries));
    expect(byName(fromPage)).toMatchObject({
      live: { status: 'building', servingRelease: 2, queuePosition: null },
      waiting: { status: 'queued', servingRelease: null, queuePosition: 2 },
      rolling: { status: 'queued', servingRelease: null, queuePosition: null },
      failed: { status: 'failed', servingRelease: null, inFlight: null, queuePosition: null },
    });
    expect(page.find((s) => s.name === 'live')?.inFlight?.createdAt.toISOString()).toBe(at(4).toISOString());
  });
});
