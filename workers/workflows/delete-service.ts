import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { DEPLOY_TASK_QUEUE } from '../task-queues.ts';

const { destroyService } = proxyActivities<Activities>({
  taskQueue: DEPLOY_TASK_QUEUE,
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '1 minute',
  retry: { maximumAttempts: 5, initialInterval: '2 seconds' },
});

/** Removes everything a service runs (containers, route, stack); history rows stay. */
export async function deleteService(serviceId: string): Promise<void> {
  await destroyService(serviceId);
}
