import { Prisma } from '../prisma/generated/sqlite/client.ts';
import type { Db } from './db/client.ts';

/** A service as list_services shows it: the columns its summary reads, with names resolved. */
export type ServiceListItem = {
  id: string;
  name: string;
  url: string | null;
  repoUrl: string;
  branch: string;
  status: string;
  currentReleaseId: string | null;
  updatedAt: Date;
  project: { name: string };
  resources: { resource: { name: string } }[];
};

type PageRow = Omit<ServiceListItem, 'project' | 'resources'> & { projectName: string };

/**
 * One page of the caller's live services, ordered by id, starting after `after` (a cursor's id),
 * at most `take` of them: two statements on either database (the page with its project names,
 * then the names of the resources attached to it; none when the page is empty), where Prisma's
 * includes issued four and read every column. Every statement is scoped to `userId`.
 */
export async function listServicePage(
  db: Db,
  userId: string,
  options: { projectId?: string | undefined; after?: string | undefined; take: number },
): Promise<ServiceListItem[]> {
  const rows = await db.$queryRaw<PageRow[]>`
    SELECT s."id", s."name", s."url", s."repoUrl", s."branch", s."status", s."currentReleaseId",
           s."updatedAt", p."name" AS "projectName"
    FROM "Service" s JOIN "Project" p ON p."id" = s."projectId"
    WHERE s."userId" = ${userId} AND s."deletedAt" IS NULL
      ${options.projectId ? Prisma.sql`AND s."projectId" = ${options.projectId}` : Prisma.empty}
      ${options.after ? Prisma.sql`AND s."id" > ${options.after}` : Prisma.empty}
    ORDER BY s."id" ASC
    LIMIT ${options.take}`;
  const attached = new Map<string, { resource: { name: string } }[]>();
  if (rows.length) {
    const links = await db.$queryRaw<{ serviceId: string; name: string }[]>`
      SELECT sr."serviceId", r."name"
      FROM "ServiceResource" sr JOIN "Resource" r ON r."id" = sr."resourceId"
      WHERE sr."serviceId" IN (${Prisma.join(rows.map((r) => r.id))}) AND r."userId" = ${userId}`;
    for (const l of links) {
      const list = attached.get(l.serviceId) ?? [];
      list.push({ resource: { name: l.name } });
      attached.set(l.serviceId, list);
    }
  }
  return rows.map(({ projectName, ...s }) => ({
    ...s,
    updatedAt: new Date(s.updatedAt),
    project: { name: projectName },
    resources: attached.get(s.id) ?? [],
  }));
}
