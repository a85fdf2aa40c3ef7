import { NativeConnection, Worker } from '@temporalio/worker';
import { workflowBundle } from './workflow-bundle.ts';

export type CreateWorkerOptions = {
  /** host:port of the Temporal frontend. */
  address: string;
  namespace: string;
  taskQueue: string;
  /** Activity implementations (from createActivities); omit for a workflow-only worker. */
  activities?: object;
  /** Register the workflow bundle on this worker. */
  workflows: boolean;
  identity?: string;
  /** Activities this worker runs at once (the build queue's DEPLOY_MCP_MAX_BUILDS); default the SDK's. */
  maxConcurrentActivities?: number;
};

/** A Temporal worker. Call `run()` and `shutdown()`; `close()` releases the connection. */
export async function createWorker(o: CreateWorkerOptions) {
  const bundle = o.workflows ? await workflowBundle() : undefined;
  const connection = await NativeConnection.connect({ address: o.address });
  try {
    const worker = await Worker.create({
      connection,
      namespace: o.namespace,
      taskQueue: o.taskQueue,
      ...(bundle ? { workflowBundle: bundle } : {}),
      ...(o.activities ? { activities: o.activities } : {}),
      ...(o.identity ? { identity: o.identity } : {}),
      ...(o.maxConcurrentActivities
        ? { maxConcurrentActivityTaskExecutions: o.maxConcurrentActivities }
        : {}),
    });
    return { worker, close: () => connection.close() };
  } catch (err) {
    await connection.close();
    throw err;
  }
}
