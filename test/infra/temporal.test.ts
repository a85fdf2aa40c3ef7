import path from 'node:path';
import { createClient } from '@libsql/client';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../core/daemons/probes.ts';
import { startTemporalDevServer, type TemporalDevServer } from '../../core/daemons/temporal.ts';
import { createSelfCheckActivities } from '../../workers/activities/index.ts';
import { connectTemporal } from '../../workers/client.ts';
import { createWorker } from '../../workers/worker.ts';
import { scratchDir } from '../support/scratch.ts';

describe('Temporal dev server: a workflow with one activity', () => {
  const work = scratchDir('temporal-proof');
  let server: TemporalDevServer;
  let temporal: Awaited<ReturnType<typeof connectTemporal>>;

  beforeAll(async () => {
    server = await startTemporalDevServer({
      bin: 'temporal',
      dir: work.dir,
      port: await freePort(),
      namespace: 'default',
    });
    temporal = await connectTemporal(server.address, 'default');
  });

  afterAll(async () => {
    try {
      await temporal?.close();
    } finally {
      await server?.stop();
      work.cleanup();
    }
  });

  async function runSelfCheck(taskQueue: string, pingDatabase: () => Promise<void>) {
    const { worker, close } = await createWorker({
      address: server.address,
      namespace: 'default',
      taskQueue,
      workflows: true,
      activities: createSelfCheckActivities({ pingDatabase }),
    });
    try {
      return await worker.runUntil(
        temporal.client.workflow.execute('selfCheck', {
          taskQueue,
          workflowId: `self-check-${taskQueue}`,
          args: ['req-1'],
        }),
      );
    } finally {
      await close();
    }
  }

  it('completes through a real worker, with the activity reaching a real database', async () => {
    const db = createClient({ url: `file:${path.join(work.dir, 'check.db')}` });
    try {
      const result = await runSelfCheck('proof-ok', async () => {
        await db.execute('select 1');
      });
      expect(result).toMatchObject({
        requestId: 'req-1',
        database: 'ok',
        worker: expect.stringContaining('/'),
      });
    } finally {
      db.close();
    }
    const history = await temporal.client.workflow.getHandle('self-check-proof-ok').fetchHistory();
    const types = (history.events ?? []).map((e) => e.eventType);
    expect(types).toContain(10); // ACTIVITY_TASK_SCHEDULED
  });

  it('fails the workflow with the activity error once its retries are spent', async () => {
    const failing = runSelfCheck('proof-fail', async () => {
      throw new Error('database unreachable');
    });
    await expect(failing).rejects.toBeInstanceOf(WorkflowFailedError);
    await expect(failing).rejects.toMatchObject({ cause: { cause: { message: 'database unreachable' } } });
  });
});
