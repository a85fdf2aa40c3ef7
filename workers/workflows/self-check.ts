import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { SelfCheckReport } from '../activities/self-check.ts';

const { checkDatabase } = proxyActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3, initialInterval: '200 milliseconds' },
});

/** Round trip through Temporal, a worker and the database: the platform's own health check. */
export async function selfCheck(requestId: string): Promise<SelfCheckReport & { requestId: string }> {
  const report = await checkDatabase();
  return { ...report, requestId };
}
