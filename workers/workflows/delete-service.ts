import { log, patched, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { DEPLOY_TASK_QUEUE } from '../task-queues.ts';

const { destroyService } = proxyActivities<Activities>({
  taskQueue: DEPLOY_TASK_QUEUE,
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '1 minute',
  retry: { maximumAttempts: 5, initialInterval: '2 seconds' },
});

const { pruneImages } = proxyActivities<Activities>({
  taskQueue: DEPLOY_TASK_QUEUE,
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 2, initialInterval: '5 seconds' },
});

/**
 * Removes everything a service runs (containers, route, stack) and its images in the registry;
 * history rows stay.
 */
export async function deleteService(serviceId: string): Promise<void> {
  await destroyService(serviceId);
  if (!patched('prune-images')) return;
  try {
    await pruneImages(serviceId);
  } catch (err) {
    log.warn('images could not be pruned', {
      serviceId,
      error: err instanceof Error ? err.message : String(err),
    });
  }
}
