import { createHash } from 'node:crypto';
import type { OutputMap } from '@pulumi/pulumi/automation/index.js';
import { ApplicationFailure, Context, heartbeat } from '@temporalio/activity';
import type { ReleaseSpec } from '../../tenant-stacks/local/program.ts';
import { IN_FLIGHT_STATUSES } from '../deploy/statuses.ts';
import { RouteTimeoutError, type Verdict } from '../runtimes/runtime.ts';
import type { DeployDeps } from './deploy.ts';
import { type DeploymentRecords, keepAlive, stopIfCancelled } from './deployment-records.ts';

/** Ends a gated update's judging when a newer deployment supersedes this one. */
class SupersededWhileJudging extends Error {}

/** Lines of the runtime log kept on the deployment row. */
const RUNTIME_LOG_LINES = 200;

/**
 * The release activities, on whichever runtime the deployer runs (deps.runtime): start a
 * release beside the serving one, judge it, promote it or drop it; destroy a service; remove
 * releases that do not serve.
 */
export function releaseActivities(deps: DeployDeps, rec: DeploymentRecords) {
  const { db, runtime } = deps;
  const { load, setStatus, addPhase, releaseSpec, currentRelease, runtimeService } = rec;

  return {
    /**
     * Starts the new release beside the current one, waits until it answers, then moves the
     * route to it and removes the old one. If it never becomes healthy it is removed and the
     * current release keeps serving.
     */
    async releaseImage(deploymentId: string, imageRef: string): Promise<{ url: string }> {
      using _ = keepAlive();
      const { service } = await load(deploymentId);
      const target = runtimeService(service);
      await setStatus(deploymentId, 'deploying');
      const current = await currentRelease(service);
      const serving = current && releaseSpec(current.key, current.image, service);
      const candidate = releaseSpec(deploymentId.slice(-12), imageRef, service);

      let t0 = Date.now();
      stopIfCancelled();
      await runtime.ensureTenant(service.userId);
      for (const r of [serving, candidate]) if (r) await runtime.prepare(r);
      const judge = (outputs: OutputMap, onWait: () => void) =>
        runtime.judge(target, outputs, candidate, { timeoutMs: deps.healthTimeoutMs, onWait });
      let outputs: OutputMap;
      let verdict: Verdict | undefined;
      let promoted = false;
      if (runtime.gatedProgram) {
        // One stack update: the candidate starts, is judged here while the update waits, and
        // takes the route (the old release goes) only when healthy and still wanted. The program
        // runs outside this activity's async context, so it heartbeats through `ctx`.
        const ctx = Context.current();
        let judging = t0;
        let judged = t0;
        const up = await deps.runner.up(
          service.stackName,
          runtime.gatedProgram(target, serving, candidate, async (candidateOutputs) => {
            judging = Date.now();
            try {
              // A newer deployment superseded this one: the judging stops at once, so the
              // update ends (the candidate left for the next update) and frees the stack.
              verdict = await judge(candidateOutputs, () => {
                ctx.heartbeat();
                if (ctx.cancellationSignal.aborted) throw new SupersededWhileJudging();
              });
            } catch (err) {
              if (err instanceof SupersededWhileJudging) return false;
              throw err;
            } finally {
              judged = Date.now();
            }
            return verdict.healthy && !ctx.cancellationSignal.aborted;
          }),
        );
        outputs = up.outputs;
        promoted = up.outputs.promoted?.value === true;
        await addPhase(deploymentId, 'stackUp', judging - t0);
        await addPhase(deploymentId, 'health', judged - judging);
        t0 = judged;
      } else {
        outputs = (await deps.runner.up(service.stackName, runtime.program(target, serving, candidate)))
          .outputs;
        await addPhase(deploymentId, 'stackUp', Date.now() - t0);
        t0 = Date.now();
        verdict = await judge(outputs, () => heartbeat());
        await addPhase(deploymentId, 'health', Date.now() - t0);
      }
      if (!verdict) {
        stopIfCancelled();
        throw new Error('the release update ended without judging the new release');
      }
      const runtimeLog = verdict.healthy
        ? await runtime.logs(target, outputs, candidate, RUNTIME_LOG_LINES)
        : verdict.logTail;
      await db.deployment.update({
        where: { id: deploymentId },
        data: { runtimeLogTail: runtimeLog.join('\n') },
      });
      if (!verdict.healthy) {
        await deps.runner.up(service.stackName, runtime.program(target, serving, undefined)); // drop the candidate
        throw ApplicationFailure.nonRetryable(verdict.reason, 'Unhealthy');
      }

      // Promote: traffic moves to the new release and the old one goes (already done when the
      // release update promoted it). A superseded deployment stops here; the next stack update
      // (or removeStrayReleases) removes its candidate.
      if (!promoted) {
        stopIfCancelled();
        t0 = Date.now();
        if (runtime.gatedProgram) throw new Error('the release update did not promote a healthy release');
        if (!runtime.promotesItself)
          await deps.runner.up(service.stackName, runtime.program(target, candidate, undefined));
      }
      try {
        await runtime.waitUntilRouted(target, candidate, () => heartbeat());
      } catch (err) {
        if (err instanceof RouteTimeoutError)
          throw ApplicationFailure.nonRetryable(err.message, 'RouteTimeout');
        throw err;
      }
      await addPhase(deploymentId, 'promote', Date.now() - t0);
      const url = runtime.url(target);

      await db.$transaction(async (tx) => {
        const last = await tx.release.findFirst({
          where: { serviceId: service.id },
          orderBy: { version: 'desc' },
        });
        const release = await tx.release.create({
          data: {
            serviceId: service.id,
            deploymentId,
            version: (last?.version ?? 0) + 1,
            imageRef,
            configDigest: configDigest(imageRef, candidate),
          },
        });
        // The replaced release records it; its deployment's status and times stay as they ended.
        await tx.release.updateMany({
          where: { serviceId: service.id, retiredAt: null, id: { not: release.id } },
          data: { retiredAt: new Date() },
        });
        await tx.service.update({
          where: { id: service.id },
          data: { status: 'active', url, currentReleaseId: release.id },
        });
      });
      await setStatus(deploymentId, 'active');
      return { url };
    },

    /**
     * Destroys a service's stack (everything it runs) and the stack itself, then marks the
     * service deleted; the tenant's own objects go with its last service. Its deployments and
     * releases stay as history.
     */
    async destroyService(serviceId: string): Promise<void> {
      const service = await db.service.findUniqueOrThrow({ where: { id: serviceId } });
      await deps.runner.destroy(service.stackName, () => heartbeat());
      await db.deployment.updateMany({
        where: { serviceId, status: { in: IN_FLIGHT_STATUSES } },
        data: { status: 'cancelled', statusReason: 'the service was deleted', finishedAt: new Date() },
      });
      await db.service.update({
        where: { id: serviceId },
        data: { deletedAt: new Date(), liveKey: null, hostLabel: null, status: 'deleted', url: null },
      });
      const left = await db.service.count({ where: { userId: service.userId, deletedAt: null } });
      if (!left) await runtime.releaseTenant(service.userId);
    },

    /** Marks a deployment failed (or cancelled); the service keeps any release still serving. */
    async finishUnsuccessful(
      deploymentId: string,
      status: 'failed' | 'cancelled',
      reason: string,
    ): Promise<void> {
      const { deployment, service } = await load(deploymentId);
      // A deployment a newer one replaced keeps "superseded" (set when the newer one started).
      if (!(status === 'cancelled' && deployment.status === 'superseded'))
        await setStatus(deploymentId, status, reason);
      // A service being deleted keeps showing "deleting".
      if (!service.currentReleaseId)
        await db.service.updateMany({
          where: { id: service.id, status: { not: 'deleting' } },
          data: { status },
        });
    },

    /**
     * Removes what runs for releases that do not serve (a candidate left by a deployment that
     * failed, was superseded, or died with its worker), by converging the service's stack to its
     * current release. Nothing happens while another deployment of the service is in flight
     * (that one's stack update converges it). Returns how many stray releases there were.
     */
    async removeStrayReleases(deploymentId: string): Promise<number> {
      const { serviceId } = await db.deployment.findUniqueOrThrow({
        where: { id: deploymentId },
        select: { serviceId: true },
      });
      using _ = keepAlive();
      return removeStray(serviceId);
    },

    /** removeStrayReleases for every live service: run when a deployer worker starts. */
    async sweepStrayReleases(): Promise<number> {
      let removed = 0;
      for (const { id } of await db.service.findMany({ where: { deletedAt: null }, select: { id: true } }))
        removed += await removeStray(id);
      return removed;
    },
  };

  async function removeStray(serviceId: string): Promise<number> {
    const service = await db.service.findUnique({ where: { id: serviceId } });
    if (!service || service.deletedAt || !service.hostLabel) return 0;
    // An update of this stack still running here (a superseded deployment's, ending) goes first:
    // what it started is then seen, and this update does not meet its lock.
    await deps.runner.settled(service.stackName);
    const inFlight = await db.deployment.count({
      where: { serviceId, status: { in: IN_FLIGHT_STATUSES } },
    });
    if (inFlight) return 0;
    const target = runtimeService(service);
    const current = await currentRelease(service);
    const stray = (await runtime.runningReleases(target)).filter((key) => key !== current?.key);
    if (!stray.length) return 0;
    const serving = current && releaseSpec(current.key, current.image, service);
    if (serving) await runtime.prepare(serving);
    await deps.runner.up(service.stackName, runtime.program(target, serving, undefined));
    return stray.length;
  }
}

/** SHA-256 of what a release runs: image digest, env names (not values), port and limits. */
function configDigest(image: string, r: ReleaseSpec): string {
  const config = {
    image,
    env: Object.keys(r.env).sort(),
    port: r.port,
    memoryMb: r.memoryMb,
    cpuMillis: r.cpuMillis,
  };
  return createHash('sha256').update(JSON.stringify(config)).digest('hex');
}
