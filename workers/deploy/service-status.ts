import type { Db } from '../../core/db/client.ts';
import type { InFlightDeployment } from '../../core/service-list.ts';
import { BUILD_QUEUE_TIMEOUT_MS } from '../task-queues.ts';
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
  /**
   * While the deployment in flight waits for a builder: its place among all deployments waiting
   * for one, oldest first (1: the next to build); else null.
   */
  queuePosition: number | null;
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
          select: { id: true, serviceId: true, status: true, imageRef: true, createdAt: true },
          orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        })
      : [],
    releaseIds.length
      ? db.release.findMany({ where: { id: { in: releaseIds } }, select: { id: true, version: true } })
      : [],
  ]);
  const newest = new Map<string, InFlightDeployment>();
  for (const d of inFlight) if (!newest.has(d.serviceId)) newest.set(d.serviceId, d);
  const versions = new Map(releases.map((r) => [r.id, r.version]));
  return statesOf(
    db,
    services.map((s) => ({
      id: s.id,
      status: s.status,
      inFlight: newest.get(s.id) ?? null,
      servingRelease: s.currentReleaseId ? (versions.get(s.currentReleaseId) ?? null) : null,
    })),
  );
}

/**
 * The states of services whose newest deployment in flight and serving release are already read
 * (serviceStates, or list_services' page: core/service-list.ts); one more count per deployment
 * waiting for a builder, none otherwise.
 */
export async function statesOf(
  db: Db,
  services: {
    id: string;
    status: string;
    inFlight: InFlightDeployment | null;
    servingRelease: number | null;
  }[],
): Promise<Map<string, ServiceState>> {
  const positions = await queuePositions(
    db,
    services.flatMap((s) =>
      s.inFlight?.status === 'queued' && s.inFlight.imageRef === null ? [s.inFlight] : [],
    ),
  );
  return new Map(
    services.map((s) => {
      const d = s.inFlight;
      const running = d ? { id: d.id, status: d.status } : null;
      const status = s.status === 'deleting' || !running ? s.status : running.status;
      const queuePosition = (d && positions.get(d.id)) ?? null;
      return [s.id, { status, servingRelease: s.servingRelease, inFlight: running, queuePosition }];
    }),
  );
}

/**
 * The deployments waiting for a builder: queued, with an image still to build (a rollback has
 * one), and younger than the longest wait a build may have (an older one is not waiting: its
 * workflow is gone). Builders are shared by every tenant, so the queue is everyone's.
 */
function waitingForBuilder() {
  return {
    status: 'queued',
    imageRef: null,
    createdAt: { gt: new Date(Date.now() - BUILD_QUEUE_TIMEOUT_MS) },
  };
}

/** Each deployment's place in the build queue (1-based, oldest first): one count per queued one. */
async function queuePositions(
  db: Db,
  queued: { id: string; createdAt: Date }[],
): Promise<Map<string, number>> {
  const counts = await Promise.all(
    queued.map((d) =>
      db.deployment.count({
        where: {
          ...waitingForBuilder(),
          OR: [{ createdAt: { lt: d.createdAt } }, { createdAt: d.createdAt, id: { lt: d.id } }],
        },
      }),
    ),
  );
  return new Map(queued.map((d, i) => [d.id, (counts[i] ?? 0) + 1]));
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
