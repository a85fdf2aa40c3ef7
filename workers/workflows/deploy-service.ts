import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  proxyActivities,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { DEPLOY_TASK_QUEUE } from '../task-queues.ts';

// Build and deploy activities run on the deployer workers' queue.
const build = proxyActivities<Activities>({
  taskQueue: DEPLOY_TASK_QUEUE,
  startToCloseTimeout: '20 minutes',
  // Activities heartbeat every 5 s: a killed worker's build is retried elsewhere within 20 s.
  heartbeatTimeout: '20 seconds',
  retry: {
    maximumAttempts: 3,
    initialInterval: '2 seconds',
    nonRetryableErrorTypes: ['BuildFailed', 'InvalidService'],
  },
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
const bookkeeping = proxyActivities<Activities>({
  taskQueue: DEPLOY_TASK_QUEUE,
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 10 },
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
    const image = releasedImage ?? (await build.buildImage(deploymentId));
    const { url } = await release.releaseImage(deploymentId, image);
    return { status: 'active', url };
  } catch (err) {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(() =>
        bookkeeping.finishUnsuccessful(deploymentId, 'cancelled', 'superseded by a newer deployment'),
      );
      throw err;
    }
    const reason = failureReason(err);
    await bookkeeping.finishUnsuccessful(deploymentId, 'failed', reason);
    return { status: 'failed', reason };
  }
}

function failureReason(err: unknown): string {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure && cause.message) return cause.message;
  return 'the deployment failed after retries; see the logs';
}
