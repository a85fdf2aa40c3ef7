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

type PageRow = Omit<ServiceListItem, 'project' | 'resources'> & {
  projectName: string;
  resourceName: string | null;
};

/**
 * One page of the caller's live services, ordered by id, starting after `after` (a cursor's id),
 * at most `take` of them, with their project's name and the names of their attached resources:
 * one statement on either database (the page, then its attachments joined to it: a service with
 * several resources comes back on several rows), where Prisma's includes issued four and read
 * every column. Every part is scoped to `userId`.
 */
export async function listServicePage(
  db: Db,
  userId: string,
  options: { projectId?: string | undefined; after?: string | undefined; take: number },
): Promise<ServiceListItem[]> {
  const rows = await db.$queryRaw<PageRow[]>`
    SELECT pg.*, r."name" AS "resourceName"
    FROM (
      SELECT s."id", s."name", s."url", s."repoUrl", s."branch", s."status", s."currentReleaseId",
             s."updatedAt", p."name" AS "projectName"
      FROM "Service" s JOIN "Project" p ON p."id" = s."projectId"
      WHERE s."userId" = ${userId} AND s."deletedAt" IS NULL
        ${options.projectId ? Prisma.sql`AND s."projectId" = ${options.projectId}` : Prisma.empty}
        ${options.after ? Prisma.sql`AND s."id" > ${options.after}` : Prisma.empty}
      ORDER BY s."id" ASC
      LIMIT ${options.take}
    ) pg
    LEFT JOIN "ServiceResource" sr ON sr."serviceId" = pg."id"
    LEFT JOIN "Resource" r ON r."id" = sr."resourceId" AND r."userId" = ${userId}
    ORDER BY pg."id" ASC`;
  const page = new Map<string, ServiceListItem>();
  for (const { projectName, resourceName, ...s } of rows) {
    let item = page.get(s.id);
    if (!item) {
      item = { ...s, updatedAt: new Date(s.updatedAt), project: { name: projectName }, resources: [] };
      page.set(s.id, item);
    }
    if (resourceName !== null) item.resources.push({ resource: { name: resourceName } });
  }
  return [...page.values()];
}
