import {
  ActivityFailure,
  type ActivityOptions,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  log,
  patched,
  proxyActivities,
  TimeoutFailure,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { BUILD_QUEUE_TIMEOUT_MS, BUILD_TASK_QUEUE, DEPLOY_TASK_QUEUE } from '../task-queues.ts';

// Build and deploy activities run on the deployer workers' queue.
const BUILD_OPTIONS: Omit<ActivityOptions, 'taskQueue'> = {
  startToCloseTimeout: '20 minutes',
  // Activities heartbeat every 5 s: a killed worker's build is retried elsewhere within 20 s.
  heartbeatTimeout: '20 seconds',
  retry: {
    maximumAttempts: 3,
    initialInterval: '2 seconds',
    nonRetryableErrorTypes: ['BuildFailed', 'InvalidService'],
  },
};
const build = proxyActivities<Activities>({ taskQueue: DEPLOY_TASK_QUEUE, ...BUILD_OPTIONS });
// Builds wait on a queue of their own for a free builder (each deployer worker runs at most
// DEPLOY_MCP_MAX_BUILDS at once); the deployment stays `queued` until the activity starts.
const queuedBuild = proxyActivities<Activities>({
  taskQueue: BUILD_TASK_QUEUE,
  scheduleToStartTimeout: BUILD_QUEUE_TIMEOUT_MS,
  ...BUILD_OPTIONS,
});
const release = proxyActivities<Activities>({
  taskQueue: DEPLOY_TASK_QUEUE,
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '20 seconds',
  retry: {
    maximumAttempts: 3,
    initialInterval: '2 seconds',
    nonRetryableErrorTypes: ['Unhealthy', 'RouteTimeout'],
  },
});
// Recording a deployment's end retries on a bounded schedule (about 4 minutes: a full disk may be
// freed meanwhile); if it still fails, the workflow ends anyway and its result says why.
const bookkeeping = proxyActivities<Activities>({
  taskQueue: DEPLOY_TASK_QUEUE,
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 12,
  },
});

// Registry clean-up after a deploy ends: best effort (the next deploy or delete tries again).
const cleanup = proxyActivities<Activities>({
  taskQueue: DEPLOY_TASK_QUEUE,
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 2, initialInterval: '5 seconds' },
});

export type DeployResult =
  | { status: 'active'; url: string }
  | { status: 'failed' | 'cancelled'; reason: string };

/**
 * One deployment of one commit: build → start beside the current release → health → promote.
 * The workflow id is deterministic for service + commit, so a commit deploys at most once; a
 * newer deployment cancels this one (superseded). A rollback passes the earlier release's
 * pinned image and skips the build.
 */
export async function deployService(deploymentId: string, releasedImage?: string): Promise<DeployResult> {
  try {
    // Workflows started before the build queue existed keep building on the deploy queue.
    const image =
      releasedImage ?? (await (patched('build-queue') ? queuedBuild : build).buildImage(deploymentId));
    const { url } = await release.releaseImage(deploymentId, image);
    await pruneImages(deploymentId);
    return { status: 'active', url };
  } catch (err) {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(() =>
        finishUnsuccessful(deploymentId, 'cancelled', 'superseded by a newer deployment'),
      );
      throw err;
    }
    const reason = failureReason(err);
    await finishUnsuccessful(deploymentId, 'failed', reason);
    await removeStrayReleases(deploymentId);
    await pruneImages(deploymentId);
    return { status: 'failed', reason };
  }
}

/**
 * Deletes the service's images no kept release needs (failed builds, releases past
 * DEPLOY_MCP_KEEP_RELEASES). A failure is logged: the next deploy or delete prunes again.
 */
async function pruneImages(deploymentId: string) {
  if (!patched('prune-images')) return;
  await bestEffort('images could not be pruned', deploymentId, () =>
    cleanup.pruneDeploymentImages(deploymentId),
  );
}

/**
 * A failed deployment may leave its release's container behind (e.g. its worker died between
 * starting it and judging it): the service's stack goes back to its current release. A failure
 * here is logged; the deployer's start-up sweep tries again.
 */
async function removeStrayReleases(deploymentId: string) {
  await bestEffort('stray releases could not be removed', deploymentId, () =>
    release.removeStrayReleases(deploymentId),
  );
}

/** Runs a clean-up activity whose failure is only logged (a later deploy or sweep tries again). */
async function bestEffort(message: string, deploymentId: string, run: () => Promise<unknown>) {
  try {
    await run();
  } catch (err) {
    const cause = err instanceof ActivityFailure ? err.cause : err;
    log.warn(message, { deploymentId, error: cause instanceof Error ? cause.message : String(cause) });
  }
}

/** Records the end; a write that keeps failing (e.g. the database's disk is full) is logged, not fatal. */
async function finishUnsuccessful(deploymentId: string, status: 'failed' | 'cancelled', reason: string) {
  try {
    await bookkeeping.finishUnsuccessful(deploymentId, status, reason);
  } catch (err) {
    const cause = err instanceof ActivityFailure ? err.cause : err;
    log.error("the deployment's end could not be recorded", {
      deploymentId,
      status,
      reason,
      error: cause instanceof Error ? cause.message : String(cause),
    });
  }
}

function failureReason(err: unknown): string {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure && cause.message) return cause.message;
  if (cause instanceof TimeoutFailure && cause.timeoutType === 'SCHEDULE_TO_START')
    return (
      `no builder was free for ${BUILD_QUEUE_TIMEOUT_MS / 3_600_000} hours (every builder was busy with ` +
      'other deployments): redeploy later'
    );
  return 'the deployment failed after retries; see the logs';
}
