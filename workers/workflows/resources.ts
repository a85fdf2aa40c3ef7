import { ActivityFailure, ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { DEPLOY_TASK_QUEUE } from '../task-queues.ts';

// Resource stacks run on the deployer workers, like service stacks.
const stacks = proxyActivities<Activities>({
  taskQueue: DEPLOY_TASK_QUEUE,
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 3, initialInterval: '2 seconds', nonRetryableErrorTypes: ['ResourceFailed'] },
});
const bookkeeping = proxyActivities<Activities>({
  taskQueue: DEPLOY_TASK_QUEUE,
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 10,
  },
});

export type ProvisionResult = { status: 'ready' } | { status: 'failed'; reason: string };

/** Makes a resource (its stack: database, role, …). Receives the resource's id only. */
export async function provisionResource(resourceId: string): Promise<ProvisionResult> {
  try {
    await stacks.provisionResourceStack(resourceId);
    return { status: 'ready' };
  } catch (err) {
    const reason = failureReason(err);
    await bookkeeping.markResourceFailed(resourceId, reason);
    return { status: 'failed', reason };
  }
}

/** Backs a resource up, destroys its stack and marks it deleted. Receives the resource's id only. */
export async function deleteResource(resourceId: string): Promise<{ backup: string | null }> {
  return stacks.destroyResourceStack(resourceId);
}

function failureReason(err: unknown): string {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure && cause.message) return cause.message;
  return 'provisioning failed after retries; see the server logs';
}

/** New credentials for a resource (its stack applies them). Receives the resource's id only. */
export async function rotateResource(resourceId: string): Promise<void> {
  await stacks.rotateResourceCredentials(resourceId);
}
