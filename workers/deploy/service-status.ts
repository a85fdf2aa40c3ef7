import type { Db } from '../../core/db/client.ts';
import { IN_FLIGHT_STATUSES } from './statuses.ts';

/** What an agent reads as a service's state (list_services, get_service, …). */
export type ServiceState = {
  /**
   * The newest deployment's status while one is in flight (queued, building, deploying);
   * else the service's own: active, failed, cancelled, deleting.
   */
  status: string;
  /** The release version that serves the URL now; null when none does. */
  servingRelease: number | null;
  /** The deployment in flight, if any. */
  inFlight: { id: string; status: string } | null;
};

/**
 * The state of each service, in two queries whatever their number: a deploy in flight shows
 * through (a redeploy is "building" while the previous release keeps serving), and which release
 * serves is said beside it.
 */
export async function serviceStates(
  db: Db,
  services: { id: string; status: string; currentReleaseId: string | null }[],
): Promise<Map<string, ServiceState>> {
  const ids = services.map((s) => s.id);
  const releaseIds = services.flatMap((s) => (s.currentReleaseId ? [s.currentReleaseId] : []));
  const [inFlight, releases] = await Promise.all([
    ids.length
      ? db.deployment.findMany({
          where: { serviceId: { in: ids }, status: { in: IN_FLIGHT_STATUSES } },
          select: { id: true, serviceId: true, status: true },
          orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        })
      : [],
    releaseIds.length
      ? db.release.findMany({ where: { id: { in: releaseIds } }, select: { id: true, version: true } })
      : [],
  ]);
  const newest = new Map<string, { id: string; status: string }>();
  for (const d of inFlight) if (!newest.has(d.serviceId)) newest.set(d.serviceId, d);
  const versions = new Map(releases.map((r) => [r.id, r.version]));
  return new Map(
    services.map((s) => {
      const running = newest.get(s.id) ?? null;
      const status = s.status === 'deleting' || !running ? s.status : running.status;
      const servingRelease = s.currentReleaseId ? (versions.get(s.currentReleaseId) ?? null) : null;
      return [s.id, { status, servingRelease, inFlight: running }];
    }),
  );
}

/** One service's state (see serviceStates). */
export async function serviceState(
  db: Db,
  service: { id: string; status: string; currentReleaseId: string | null },
): Promise<ServiceState> {
  const state = (await serviceStates(db, [service])).get(service.id);
  if (!state) throw new Error('unreachable: serviceStates answers for every service');
  return state;
}
