import type { Db } from './db/client.ts';
import { allRows } from './db/hot-reads.ts';
import { DomainError } from './errors.ts';
import { DEFAULT_PROJECT } from './users.ts';

/** The caller's project names, sorted. */
export async function listProjectNames(db: Db, userId: string): Promise<string[]> {
  const rows = await db.project.findMany({
    where: { userId },
    select: { name: true },
    orderBy: { name: 'asc' },
  });
  return rows.map((r) => r.name);
}

/**
 * The caller's project called `name` (default: "default"). An unknown project is an error
 * that lists the caller's projects; projects are never created implicitly.
 */
export async function resolveProject(db: Db, userId: string, name: string | undefined) {
  const wanted = name ?? DEFAULT_PROJECT;
  const project = await db.project.findUnique({ where: { userId_name: { userId, name: wanted } } });
  if (project) return project;
  const names = await listProjectNames(db, userId);
  throw new DomainError(
    'not_found',
    `project "${wanted}" not found. Your projects: ${names.length ? names.join(', ') : '(none)'}.`,
  );
}

/** What whoami shows of an account: its git owner name and its projects with live counts. */
export type AccountOverview = {
  ownerName: string | null;
  projects: { name: string; services: number; resources: number }[];
};

type OverviewRow = { ownerName: string | null; name: string | null; services: unknown; resources: unknown };

const OVERVIEW_SQL = `
  SELECT u."ownerName", p."name",
    (SELECT COUNT(*) FROM "Service" s
      WHERE s."userId" = u."id" AND s."projectId" = p."id" AND s."deletedAt" IS NULL) AS "services",
    (SELECT COUNT(*) FROM "Resource" r
      WHERE r."userId" = u."id" AND r."projectId" = p."id" AND r."deletedAt" IS NULL) AS "resources"
  FROM "User" u LEFT JOIN "Project" p ON p."userId" = u."id"
  WHERE u."id" = ?
  ORDER BY p."name" ASC`;

/**
 * The caller's owner name and projects (sorted by name) with their live service and resource
 * counts, in one statement on either database, read as the API key is (core/db/hot-reads.ts).
 * Every part is scoped to `userId`: the counts are correlated subqueries on the (userId,
 * projectId) indexes, so their cost follows this account's size, not the whole table's
 * (Prisma's `_count` grouped every tenant's rows).
 */
export async function accountOverview(db: Db, userId: string): Promise<AccountOverview | undefined> {
  const rows = await allRows<OverviewRow>(db, OVERVIEW_SQL, [userId]);
  const [first] = rows;
  if (!first) return undefined;
  return {
    ownerName: first.ownerName,
    projects: rows.flatMap((r) =>
      r.name === null ? [] : [{ name: r.name, services: Number(r.services), resources: Number(r.resources) }],
    ),
  };
}
