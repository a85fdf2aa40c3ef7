import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { type Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { Db } from '../../core/db/client.ts';
import { invalidInput } from '../../core/errors.ts';
import type { RepoStore } from '../../git/repo-store.ts';
import { PRODUCT_TASK_QUEUE } from '../task-queues.ts';

const run = promisify(execFile);
const IN_FLIGHT = ['queued', 'building', 'deploying'];

export type DeployTrigger = 'create' | 'redeploy' | 'push';

/** Starts deployments: one per service and commit, newest wins. Used by the tools and by pushes. */
export class DeployStarter {
  constructor(
    private readonly db: Db,
    private readonly temporal: Client,
    private readonly repos: RepoStore,
  ) {}

  /** The deployment of `commitSha` (default: the branch head) with the service's current settings; started if new. */
  async start(serviceId: string, trigger: DeployTrigger, commitSha?: string) {
    const service = await this.db.service.findUniqueOrThrow({
      where: { id: serviceId },
      include: { repo: true },
    });
    if (!service.repo) throw invalidInput('the service has no repo on our git server');
    const sha =
      commitSha ?? (await this.branchHead(service.repo.ownerName, service.repo.name, service.branch));
    // Service + commit + settings: the same commit never deploys twice with the same settings,
    // while changed settings (env vars, limits, commands) deploy it again.
    const settings = createHash('sha256')
      .update(
        JSON.stringify([
          service.branch,
          service.buildPack,
          service.port,
          service.memoryMb,
          service.cpuMillis,
          service.installCommand,
          service.buildCommand,
          service.startCommand,
          service.envEncrypted,
        ]),
      )
      .digest('hex')
      .slice(0, 12);
    const workflowId = `deploy-${service.id}-${sha}-${settings}`;
    const existing = await this.db.deployment.findUnique({ where: { workflowId } });
    if (existing) return { deployment: existing, started: false };

    const subject = await run('git', [
      '--git-dir',
      this.repos.dir(service.repo.ownerName, service.repo.name),
      'log',
      '-1',
      '--format=%s',
      sha,
    ])
      .then((r) => r.stdout.trim().slice(0, 200))
      .catch(() => null);
    let deployment: Awaited<ReturnType<Db['deployment']['create']>>;
    try {
      deployment = await this.db.deployment.create({
        data: {
          serviceId,
          userId: service.userId,
          workflowId,
          trigger,
          commitSha: sha,
          commitMessage: subject,
        },
      });
    } catch (err) {
      if ((err as { code?: string }).code !== 'P2002') throw err;
      return {
        deployment: await this.db.deployment.findUniqueOrThrow({ where: { workflowId } }),
        started: false,
      };
    }
    await this.db.deploymentStatusChange.create({ data: { deploymentId: deployment.id, status: 'queued' } });
    // A newer commit supersedes deployments still in flight.
    const older = await this.db.deployment.findMany({
      where: { serviceId, status: { in: IN_FLIGHT }, id: { not: deployment.id } },
    });
    for (const d of older) {
      await this.temporal.workflow
        .getHandle(d.workflowId)
        .cancel()
        .catch(() => undefined);
      await this.db.deployment.update({
        where: { id: d.id },
        data: { status: 'superseded', finishedAt: new Date() },
      });
    }
    // A service with a live release stays "active" while the new deployment runs.
    if (!service.currentReleaseId)
      await this.db.service.update({ where: { id: serviceId }, data: { status: 'queued' } });
    try {
      await this.temporal.workflow.start('deployService', {
        taskQueue: PRODUCT_TASK_QUEUE,
        workflowId,
        args: [deployment.id],
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    return { deployment, started: true };
  }

  /**
   * Deletes a service: supersedes deployments in flight, then runs the deleteService workflow
   * and waits for it (at most `timeoutMs`).
   */
  async delete(serviceId: string, timeoutMs = 50_000): Promise<void> {
    const inFlight = await this.db.deployment.findMany({ where: { serviceId, status: { in: IN_FLIGHT } } });
    for (const d of inFlight)
      await this.temporal.workflow
        .getHandle(d.workflowId)
        .cancel()
        .catch(() => undefined);
    const handle = await this.temporal.workflow
      .start('deleteService', {
        taskQueue: PRODUCT_TASK_QUEUE,
        workflowId: `delete-${serviceId}`,
        args: [serviceId],
      })
      .catch((err: unknown) => {
        if (err instanceof WorkflowExecutionAlreadyStartedError)
          return this.temporal.workflow.getHandle(`delete-${serviceId}`);
        throw err;
      });
    await Promise.race([
      handle.result(),
      new Promise((_, reject) =>
        setTimeout(
          () => reject(new Error('deleting the service is taking longer than expected')),
          timeoutMs,
        ).unref(),
      ),
    ]);
  }

  /** Starts the deployments pushes asked for (DeployRequest rows), once each. */
  async startRequested(requestIds: string[]): Promise<void> {
    for (const id of requestIds) {
      const claimed = await this.db.deployRequest.updateMany({
        where: { id, status: 'pending' },
        data: { status: 'started' },
      });
      if (claimed.count !== 1) continue;
      const request = await this.db.deployRequest.findUniqueOrThrow({ where: { id } });
      await this.start(request.serviceId, 'push', request.commitSha);
    }
  }

  /** The commit a branch of one of our repos points at; a clear error when it has none. */
  async branchHead(owner: string, name: string, branch: string): Promise<string> {
    try {
      const { stdout } = await run('git', [
        '--git-dir',
        this.repos.dir(owner, name),
        'rev-parse',
        '--verify',
        `refs/heads/${branch}`,
      ]);
      return stdout.trim();
    } catch {
      throw invalidInput(
        `branch "${branch}" of repo ${owner}/${name} has no commits yet: push first (see create_repo)`,
      );
    }
  }
}
