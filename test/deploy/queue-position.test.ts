import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../core/db/client.ts';
import { migrate } from '../../core/db/migrate.ts';
import { serviceStates } from '../../workers/deploy/service-status.ts';
import { describeEachDatabase } from '../support/databases.ts';

// queue_position as get_service and list_services show it: the place of a service's queued
// deployment among every deployment waiting for a builder (all tenants: builders are shared).
describeEachDatabase('build queue positions', (dbs) => {
  let db: Database;
  beforeAll(async () => {
    const url = await dbs.fresh('queue');
    await migrate(url);
    db = await openDatabase(url);
  });
  afterAll(async () => {
    await db?.close();
  });

  let n = 0;
  async function newService(userId: string, projectId: string) {
    const name = `svc${++n}`;
    return db.prisma.service.create({
      data: {
        userId,
        projectId,
        name,
        liveKey: `${projectId}/${name}`,
        stackName: `t-${userId}-${name}`,
        repoUrl: `https://git.example/${name}.git`,
        port: 3000,
      },
    });
  }
  async function deploy(
    service: { id: string; userId: string },
    status: string,
    createdAt: Date,
    o: { imageRef?: string; id?: string } = {},
  ) {
    return db.prisma.deployment.create({
      data: {
        ...(o.id ? { id: o.id } : {}),
        serviceId: service.id,
        userId: service.userId,
        workflowId: `wf-${++n}`,
        trigger: o.imageRef ? 'rollback' : 'create',
        status,
        createdAt,
        imageRef: o.imageRef ?? null,
      },
    });
  }
  const user = (email: string) =>
    db.prisma.user.create({
      data: { email, projects: { create: { name: 'default' } } },
      include: { projects: true },
    });

  it('numbers the deployments waiting for a builder oldest first, across tenants, and moves them up as builds start', async () => {
    const ada = await user('ada-queue@example.com');
    const bob = await user('bob-queue@example.com');
    const adaProject = ada.projects[0]?.id ?? '';
    const bobProject = bob.projects[0]?.id ?? '';
    const base = Date.now() - 60_000;
    const at = (s: number) => new Date(base + s * 1000);

    const first = await newService(ada.id, adaProject);
    const building = await newService(ada.id, adaProject);
    const second = await newService(bob.id, bobProject);
    const rollback = await newService(bob.id, bobProject);
    const tieA = await newService(ada.id, adaProject);
    const tieB = await newService(bob.id, bobProject);
    const superseding = await newService(ada.id, adaProject);
    const live = await newService(ada.id, adaProject);
    const stale = await newService(bob.id, bobProject);

    // A deployment still `queued` past the longest wait for a builder is not waiting any more.
    await deploy(stale, 'queued', new Date(Date.now() - 7 * 3_600_000));
    const dFirst = await deploy(first, 'queued', at(1));
    await deploy(building, 'building', at(0));
    await deploy(second, 'queued', at(2));
    // A rollback has its image: it waits for no builder and takes no place in line.
    await deploy(rollback, 'queued', at(2.5), { imageRef: 'registry/t/x@sha256:00' });
    // Same instant: the id breaks the tie.
    await deploy(tieB, 'queued', at(3), { id: 'zzzzzzzzzzzzzzzzzzzzzzzzz' });
    await deploy(tieA, 'queued', at(3), { id: 'aaaaaaaaaaaaaaaaaaaaaaaaa' });
    // An older queued deployment superseded by a newer one still queued: the newest one counts.
    await deploy(superseding, 'superseded', at(0.5));
    await deploy(superseding, 'queued', at(4));
    await deploy(live, 'active', at(0));

    const all = [first, building, second, rollback, tieA, tieB, superseding, live];
    const positions = async () => {
      const states = await serviceStates(db.prisma, all);
      return all.map((s) => states.get(s.id)?.queuePosition ?? null);
    };
    expect(await positions()).toEqual([1, null, 2, null, 3, 4, 5, null]);
    const states = await serviceStates(db.prisma, all);
    expect(states.get(first.id)?.status).toBe('queued');
    expect(states.get(building.id)?.status).toBe('building');

    // The first one's build starts: everyone behind it moves up by one.
    await db.prisma.deployment.update({ where: { id: dFirst.id }, data: { status: 'building' } });
    expect(await positions()).toEqual([null, null, 1, null, 2, 3, 4, null]);
  });
});
