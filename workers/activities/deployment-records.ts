import { ApplicationFailure, CancelledFailure, Context, heartbeat } from '@temporalio/activity';
import type { Db } from '../../core/db/client.ts';
import { type Attachment, resourceEnv } from '../../core/resources/env.ts';
import type { SecretBox } from '../../core/secrets.ts';
import type { ReleaseSpec } from '../../tenant-stacks/local/program.ts';
import { IN_FLIGHT_STATUSES } from '../deploy/statuses.ts';
import type { RuntimeService } from '../runtimes/runtime.ts';
import { sqliteMountPath, sqliteVolume } from './resources.ts';

/**
 * What the deploy activities read and write about deployments, services and releases: one
 * definition each, shared by the build and release activities.
 */
export function deploymentRecords(db: Db, secrets: SecretBox, volumesDir?: string) {
  async function load(deploymentId: string) {
    const d = await db.deployment.findUniqueOrThrow({
      where: { id: deploymentId },
      include: {
        service: {
          include: {
            repo: true,
            project: { select: { name: true } },
            user: { select: { ownerName: true } },
            // Attached resources: their variables are injected at run time (resourceEnv).
            resources: { include: { resource: true } },
          },
        },
      },
    });
    return { deployment: d, service: d.service };
  }

  /**
   * Moves a deployment on. Only a deployment in flight moves: one that ended (active, failed,
   * cancelled, superseded) keeps its status and times for good, and a repeated status (the
   * build's end and the release's start both say "deploying") records nothing.
   */
  async function setStatus(deploymentId: string, status: string, reason?: string) {
    await db.$transaction(async (tx) => {
      const { count } = await tx.deployment.updateMany({
        where: { id: deploymentId, status: { in: IN_FLIGHT_STATUSES.filter((s) => s !== status) } },
        data: {
          status,
          statusReason: reason ?? null,
          ...(status === 'building' ? { startedAt: new Date() } : {}),
          ...(IN_FLIGHT_STATUSES.includes(status) ? {} : { finishedAt: new Date() }),
        },
      });
      if (count)
        await tx.deploymentStatusChange.create({ data: { deploymentId, status, reason: reason ?? null } });
    });
  }

  async function addPhase(deploymentId: string, phase: string, ms: number) {
    const d = await db.deployment.findUniqueOrThrow({
      where: { id: deploymentId },
      select: { phaseTimings: true },
    });
    const timings = {
      ...(d.phaseTimings ? (JSON.parse(d.phaseTimings) as Record<string, number>) : {}),
      [phase]: Math.round(ms),
    };
    await db.deployment.update({
      where: { id: deploymentId },
      data: { phaseTimings: JSON.stringify(timings) },
    });
  }

  /** The service's env vars over its attached resources' variables (the service's own win). */
  function serviceEnv(service: {
    id: string;
    envEncrypted: string | null;
    resources?: { createdAt: Date; resource: Attachment['resource'] }[];
  }): Record<string, string> {
    const own: Record<string, string> = service.envEncrypted
      ? secrets.openJson(service.envEncrypted, `service:${service.id}:env`)
      : {};
    const attached = (service.resources ?? []).map((a) => ({
      attachedAt: a.createdAt,
      resource: a.resource,
    }));
    return { ...resourceEnv(attached, secrets), ...own };
  }

  function releaseSpec(
    key: string,
    image: string,
    service: {
      id: string;
      envEncrypted: string | null;
      resources?: { createdAt: Date; resource: Attachment['resource'] }[];
      port: number | null;
      memoryMb: number;
      cpuMillis: number;
      healthCheckPath?: string | null;
    },
  ): ReleaseSpec {
    const mounts = sqliteMounts(service.resources ?? [], volumesDir);
    return {
      key,
      image,
      env: serviceEnv(service),
      ...(mounts.length ? { mounts } : {}),
      port: service.port ?? 3000,
      memoryMb: service.memoryMb,
      cpuMillis: service.cpuMillis,
      healthPath: service.healthCheckPath ?? '/',
    };
  }

  /** The release currently serving (its key and image), if any. */
  async function currentRelease(service: { currentReleaseId: string | null }) {
    if (!service.currentReleaseId) return undefined;
    const r = await db.release.findUnique({ where: { id: service.currentReleaseId } });
    return r ? { key: r.deploymentId.slice(-12), image: r.imageRef } : undefined;
  }

  /** The service as its runtime sees it; a service without a reserved hostname cannot run. */
  function runtimeService(service: {
    id: string;
    userId: string;
    stackName: string;
    hostLabel: string | null;
  }): RuntimeService {
    if (!service.hostLabel)
      throw ApplicationFailure.nonRetryable(
        'the service has no hostname reserved: redeploy it',
        'InvalidService',
      );
    return {
      id: service.id,
      userId: service.userId,
      stackName: service.stackName,
      hostLabel: service.hostLabel,
    };
  }

  return { load, setStatus, addPhase, serviceEnv, releaseSpec, currentRelease, runtimeService };
}

export type DeploymentRecords = ReturnType<typeof deploymentRecords>;

/** Binds of the attached, ready embedded `sqlite` resources: `<volumesDir>/<id>:/data/<name>`. */
function sqliteMounts(
  attached: { resource: { id: string; name: string; type?: string; region?: string; status: string } }[],
  volumesDir: string | undefined,
): string[] {
  if (!volumesDir) return [];
  return (
    attached
      // Turso's (any region but `local`) are reached over libsql://, not mounted.
      .filter((a) => a.resource.type === 'sqlite' && (a.resource.region ?? 'local') === 'local')
      .filter((a) => a.resource.status === 'ready')
      .map((a) => `${sqliteVolume(volumesDir, a.resource.id)}:${sqliteMountPath(a.resource.name)}:rw`)
      .sort()
  );
}

/** Ends the activity when its workflow was cancelled (a newer deployment superseded it). */
export function stopIfCancelled() {
  if (Context.current().cancellationSignal.aborted) throw new CancelledFailure('superseded');
}

/**
 * Heartbeats every few seconds while an activity works, so a silent build step or a slow
 * `pulumi up` is not mistaken for a dead worker, and a dead one is noticed within the
 * heartbeat timeout.
 */
export function keepAlive(): Disposable {
  const timer = setInterval(() => heartbeat(), 5_000);
  return { [Symbol.dispose]: () => clearInterval(timer) };
}
