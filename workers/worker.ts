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
  /**
   * A connection the caller owns and shares among its workers (`connectWorkers`); `close()`
   * then leaves it open. Default: a connection of the worker's own.
   */
  connection?: NativeConnection;
};

/**
 * One connection for all the workers of a process (instead of one each: each is a gRPC channel
 * with its own buffers in Temporal's core). `close()` once every worker has stopped.
 */
export async function connectWorkers(address: string) {
  const connection = await NativeConnection.connect({ address });
  return { connection, close: () => connection.close() };
}

/** A Temporal worker. Call `run()` and `shutdown()`; `close()` releases the connection. */
export async function createWorker(o: CreateWorkerOptions) {
  const bundle = o.workflows ? await workflowBundle() : undefined;
  const shared = o.connection;
  const connection = shared ?? (await NativeConnection.connect({ address: o.address }));
  const close = shared ? async () => undefined : () => connection.close();
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
    return { worker, close };
  } catch (err) {
    await close();
    throw err;
  }
}
