import type { Db } from '../core/db/client.ts';

export type RefUpdate = { oldSha: string; newSha: string; ref: string };

const ZERO = /^0+$/;
const BRANCH_PREFIX = 'refs/heads/';

/** Parses post-receive input: one "<old> <new> <ref>" line per updated ref. */
export function parseRefUpdates(text: string): RefUpdate[] {
  return text
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((parts): parts is [string, string, string] => parts.length === 3)
    .map(([oldSha, newSha, ref]) => ({ oldSha, newSha, ref }));
}

/**
 * Records a push and asks for a redeploy of every live service built from the pushed repo and
 * branch. Requests are keyed by service + branch + commit, so the same commit pushed again
 * (or to a second ref) never yields a second request. Returns the ids of new requests.
 */
export async function recordPush(db: Db, repoId: string, updates: RefUpdate[]): Promise<string[]> {
  const created: string[] = [];
  for (const u of updates) {
    await db.repoPush.create({ data: { repoId, ref: u.ref, oldSha: u.oldSha, newSha: u.newSha } });
    if (!u.ref.startsWith(BRANCH_PREFIX) || ZERO.test(u.newSha)) continue; // tags and deletions deploy nothing
    const branch = u.ref.slice(BRANCH_PREFIX.length);
    const services = await db.service.findMany({
      where: { repoId, branch, deletedAt: null },
      select: { id: true },
    });
    for (const s of services) {
      try {
        const request = await db.deployRequest.create({
          data: {
            serviceId: s.id,
            repoId,
            branch,
            commitSha: u.newSha,
            dedupeKey: `${s.id}:${branch}:${u.newSha}`,
          },
        });
        created.push(request.id);
      } catch (err) {
        if ((err as { code?: string }).code !== 'P2002') throw err; // already requested
      }
    }
  }
  return created;
}
