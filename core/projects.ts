import type { Db } from './db/client.ts';
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
