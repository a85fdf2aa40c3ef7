import { IN_FLIGHT_STATUSES } from '../workers/deploy/statuses.ts';
import type { Db } from './db/client.ts';
import { allRows } from './db/hot-reads.ts';

/** A service's newest deployment still under way, as its state needs it (see serviceStates). */
export type InFlightDeployment = { id: string; status: string; imageRef: string | null; createdAt: Date };

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
  /** The newest deployment in flight (queued, building, deploying), if any. */
  inFlight: InFlightDeployment | null;
  /** The version of the release serving the URL now (currentReleaseId's); null: none. */
  servingRelease: number | null;
};

type PageRow = Omit<
  ServiceListItem,
  'updatedAt' | 'project' | 'resources' | 'inFlight' | 'servingRelease'
> & {
  updatedAt: Date | string;
  projectName: string;
  resourceName: string | null;
  deploymentId: string | null;
  deploymentStatus: string | null;
  deploymentImageRef: string | null;
  deploymentCreatedAt: Date | string | null;
  servingRelease: number | null;
};

/** The page's statement, in the form that both databases read (`?` placeholders). */
function pageSql(o: { project: boolean; after: boolean }): string {
  const inFlight = IN_FLIGHT_STATUSES.map(() => '?').join(', ');
  return `
    SELECT pg.*, r."name" AS "resourceName",
           d."id" AS "deploymentId", d."status" AS "deploymentStatus",
           d."imageRef" AS "deploymentImageRef", d."createdAt" AS "deploymentCreatedAt",
           rel."version" AS "servingRelease"
    FROM (
      SELECT s."id", s."name", s."url", s."repoUrl", s."branch", s."status", s."currentReleaseId",
             s."updatedAt", p."name" AS "projectName"
      FROM "Service" s JOIN "Project" p ON p."id" = s."projectId"
      WHERE s."userId" = ? AND s."deletedAt" IS NULL
        ${o.project ? 'AND s."projectId" = ?' : ''}
        ${o.after ? 'AND s."id" > ?' : ''}
      ORDER BY s."id" ASC
      LIMIT ?
    ) pg
    LEFT JOIN "Deployment" d ON d."id" = (
      SELECT d2."id" FROM "Deployment" d2
      WHERE d2."serviceId" = pg."id" AND d2."status" IN (${inFlight})
      ORDER BY d2."createdAt" DESC, d2."id" DESC
      LIMIT 1
    )
    LEFT JOIN "Release" rel ON rel."id" = pg."currentReleaseId" AND rel."serviceId" = pg."id"
    LEFT JOIN "ServiceResource" sr ON sr."serviceId" = pg."id"
    LEFT JOIN "Resource" r ON r."id" = sr."resourceId" AND r."userId" = ?
    ORDER BY pg."id" ASC`;
}

/**
 * One page of the caller's live services, ordered by id, starting after `after` (a cursor's id),
 * at most `take` of them, with what their summary shows: their project's name, the names of
 * their attached resources, their newest deployment in flight and the version serving them.
 * One statement, read as the API key is (core/db/hot-reads.ts: a statement prepared once,
 * not Prisma's runtime, which cost more than the reads themselves on list_services' path); a
 * service with several resources comes back on several rows. Every part is scoped to `userId`.
 */
export async function listServicePage(
  db: Db,
  userId: string,
  options: { projectId?: string | undefined; after?: string | undefined; take: number },
): Promise<ServiceListItem[]> {
  const params: unknown[] = [userId];
  if (options.projectId) params.push(options.projectId);
  if (options.after) params.push(options.after);
  params.push(options.take, ...IN_FLIGHT_STATUSES, userId);
  const rows = await allRows<PageRow>(
    db,
    pageSql({ project: Boolean(options.projectId), after: Boolean(options.after) }),
    params,
  );
  const page = new Map<string, ServiceListItem>();
  for (const row of rows) {
    let item = page.get(row.id);
    if (!item) {
      item = {
        id: row.id,
        name: row.name,
        url: row.url,
        repoUrl: row.repoUrl,
        branch: row.branch,
        status: row.status,
        currentReleaseId: row.currentReleaseId,
        updatedAt: new Date(row.updatedAt),
        project: { name: row.projectName },
        resources: [],
        inFlight:
          row.deploymentId && row.deploymentStatus && row.deploymentCreatedAt !== null
            ? {
                id: row.deploymentId,
                status: row.deploymentStatus,
                imageRef: row.deploymentImageRef,
                createdAt: new Date(row.deploymentCreatedAt),
              }
            : null,
        servingRelease: row.servingRelease === null ? null : Number(row.servingRelease),
      };
      page.set(row.id, item);
    }
    if (row.resourceName !== null) item.resources.push({ resource: { name: row.resourceName } });
  }
  return [...page.values()];
}
