import { afterEach, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../core/db/client.ts';
import { migrate } from '../../core/db/migrate.ts';
import { isUniqueViolation } from '../../core/db/unique-violation.ts';
import { createUser } from '../../core/users.ts';
import { describeEachDatabase } from '../support/databases.ts';

describeEachDatabase('hostnames in the database', (dbs) => {
  let db: Database | undefined;
  afterEach(async () => {
    await db?.close();
  });

  it('holds each host label for one live service, freed by NULL, and names the violated field', async () => {
    const url = await dbs.fresh('hosts');
    await migrate(url);
    db = await openDatabase(url);
    const prisma = db.prisma;
    const make = async (email: string, name: string) => {
      const user = await createUser(prisma, email);
      const { id: projectId } = await prisma.project.findFirstOrThrow({ where: { userId: user.id } });
      return prisma.service.create({
        data: {
          userId: user.id,
          projectId,
          name,
          liveKey: `${projectId}/${name}`,
          hostLabel: 'web-prod-alice',
          stackName: `s-${user.id}`,
          repoUrl: 'r',
        },
      });
    };
    const victim = await make('prod-alice@example.com', 'web');
    const err = await make('alice@example.com', 'web-prod').catch((e: unknown) => e);
    expect(isUniqueViolation(err)).toBe(true);
    expect(isUniqueViolation(err, 'hostLabel')).toBe(true);
    expect(isUniqueViolation(err, 'liveKey')).toBe(false);
    expect(isUniqueViolation(new Error('other'), 'hostLabel')).toBe(false);

    // Deleted services keep their row with the label NULL; NULLs never collide.
    await prisma.service.update({
      where: { id: victim.id },
      data: { hostLabel: null, deletedAt: new Date() },
    });
    const taker = await make('alice2@example.com', 'web-prod');
    expect(taker.hostLabel).toBe('web-prod-alice');
    await prisma.service.update({ where: { id: taker.id }, data: { hostLabel: null } });
    expect(await prisma.service.count({ where: { hostLabel: null } })).toBe(2);
  });
});
