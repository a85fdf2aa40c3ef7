import { createHash, randomUUID } from 'node:crypto';
import { type Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { hostnameTaken, serviceHostLabel } from '../../core/app-hosts.ts';
import type { Db, Deployment, Service } from '../../core/db/client.ts';
import { isUniqueViolation } from '../../core/db/unique-violation.ts';
import { conflict, invalidInput } from '../../core/errors.ts';
import type { RepoSources, SourceRepo } from '../../core/repo-sources/repo-source.ts';
import { ensureOwnerName } from '../../git/owner-names.ts';
import { PRODUCT_TASK_QUEUE } from '../task-queues.ts';
import { IN_FLIGHT_STATUSES } from './statuses.ts';

export type DeployTrigger = 'create' | 'redeploy' | 'push' | 'rollback' | 'resources';

/**
 * What the deployment key covers of attached resources: which ones, and their credential
 * version (a rotation deploys again). Empty without resources, so older keys stay the same.
 */
function attachedKey(attached: { resource: { id: string; credentialVersion: number; status: string } }[]) {
  const key = attached
    .map((a) => `${a.resource.id}:${a.resource.credentialVersion}:${a.resource.status}`)
    .sort()
    .join(',');
  return key ? [key] : [];
}

/** Starts deployments: one per service and commit, newest wins. Used by the tools and by pushes. */
export class DeployStarter {
  private readonly db: Db;
  private readonly temporal: Client;
  private readonly sources: RepoSources;

  constructor(db: Db, temporal: Client, sources: RepoSources) {
    this.db = db;
    this.temporal = temporal;
    this.sources = sources;
  }

  /** The deployment of `commitSha` (default: the branch head) with the service's current settings; started if new. */
  async start(serviceId: string, trigger: DeployTrigger, commitSha?: string) {
    const service = await this.db.service.findUniqueOrThrow({
      where: { id: serviceId },
      include: { repo: true, resources: { include: { resource: true } } },
    });
    if (!service.repo) throw invalidInput('the service has no repo');
    await this.reserveHostLabel(service);
    // Our git server or GitHub: the branch head, or the pushed commit (its subject best-effort).
    const source = this.sources.for(service.repo);
    const commit = commitSha
      ? await source.commit(service.repo, commitSha).catch(() => ({ sha: commitSha, subject: null }))
      : await source.commit(service.repo, service.branch);
    const sha = commit.sha;
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
          // Appended only when set, so services without one keep their deployment keys.
          ...(service.healthCheckPath ? [service.healthCheckPath] : []),
          ...attachedKey(service.resources),
        ]),
      )
      .digest('hex')
      .slice(0, 12);
    const workflowId = `deploy-${service.id}-${sha}-${settings}`;
    const existing = await this.db.deployment.findUnique({
      where: { workflowId },
      include: { release: true },
    });
    if (existing) {
      // An explicit redeploy of a commit that already went live, while another release serves
      // (after a rollback): re-activate its release, without building again.
      if (
        trigger === 'redeploy' &&
        existing.release &&
        existing.release.id !== service.currentReleaseId &&
        !IN_FLIGHT_STATUSES.includes(existing.status)
      ) {
        return this.rollback(serviceId, existing.release.version, 'redeploy');
      }
      return { deployment: existing, started: false };
    }

    const subject = commit.subject;
    let deployment: Deployment;
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
      if (!isUniqueViolation(err)) throw err;
      return {
        deployment: await this.db.deployment.findUniqueOrThrow({ where: { workflowId } }),
        started: false,
      };
    }
    await this.launch(deployment, service.currentReleaseId, []);
    return { deployment, started: true };
  }

  /**
   * Re-activates release `version` of a service (default: the one before the current release)
   * from its stored image, without building. The service's current settings (env vars, port,
   * limits) apply.
   */
  async rollback(serviceId: string, version?: number, trigger: DeployTrigger = 'rollback') {
    const service = await this.db.service.findUniqueOrThrow({ where: { id: serviceId } });
    await this.reserveHostLabel(service);
    const current = service.currentReleaseId
      ? await this.db.release.findUnique({ where: { id: service.currentReleaseId } })
      : null;
    const target =
      version === undefined
        ? current &&
          (await this.db.release.findFirst({
            where: { serviceId, version: { lt: current.version } },
            orderBy: { version: 'desc' },
            include: { deployment: true },
          }))
        : await this.db.release.findUnique({
            where: { serviceId_version: { serviceId, version } },
            include: { deployment: true },
          });
    if (!target) {
      const versions = await this.db.release.findMany({
        where: { serviceId },
        select: { version: true },
        orderBy: { version: 'desc' },
        take: 20,
      });
      throw invalidInput(
        version === undefined
          ? 'there is no earlier release to roll back to' +
              (versions.length ? ` (releases: ${versions.map((r) => `v${r.version}`).join(', ')})` : '')
          : `release v${version} not found; releases: ${versions.map((r) => `v${r.version}`).join(', ') || 'none yet'}. ` +
              'Call list_deployments to see them.',
      );
    }
    if (target.id === service.currentReleaseId)
      throw conflict(`release v${target.version} is already serving; nothing to roll back`);
    if (target.imagePrunedAt)
      throw conflict(
        `release v${target.version} cannot serve again: its image was deleted from the registry on ` +
          `${target.imagePrunedAt.toISOString()} (only the images of each service's newest releases are kept). ` +
          'Roll back to a newer release (see list_deployments), or deploy its commit ' +
          `${target.deployment.commitSha?.slice(0, 12) ?? ''} again from the branch.`,
      );
    if (current && current.imageRef === target.imageRef)
      throw conflict(
        `release v${target.version}'s image is already serving (as v${current.version}); nothing to roll back`,
      );
    // The same rollback asked twice while it runs is one deployment.
    const running = await this.db.deployment.findFirst({
      where: { serviceId, trigger, imageRef: target.imageRef, status: { in: IN_FLIGHT_STATUSES } },
    });
    if (running) return { deployment: running, started: false };

    const deployment = await this.db.deployment.create({
      data: {
        serviceId,
        userId: service.userId,
        workflowId: `${trigger}-${serviceId}-v${target.version}-${randomUUID().slice(0, 8)}`,
        trigger,
        commitSha: target.deployment.commitSha,
        commitMessage: `${trigger === 'rollback' ? 'rollback' : 'redeploy'} to release v${target.version}`,
        imageRef: target.imageRef,
      },
    });
    await this.launch(deployment, service.currentReleaseId, [target.imageRef]);
    return { deployment, started: true };
  }

  /**
   * Redeploys the serving release's image with the service's current settings, without a build
   * (attached resources changed: attach, detach, rotation). Nothing to do before a first release:
   * a deployment in flight reads the attachments when its release starts.
   */
  async redeployServing(serviceId: string, trigger: DeployTrigger = 'resources') {
    const service = await this.db.service.findUniqueOrThrow({ where: { id: serviceId } });
    if (!service.currentReleaseId || service.deletedAt) return undefined;
    const current = await this.db.release.findUniqueOrThrow({
      where: { id: service.currentReleaseId },
      include: { deployment: true },
    });
    const deployment = await this.db.deployment.create({
      data: {
        serviceId,
        userId: service.userId,
        workflowId: `${trigger}-${serviceId}-v${current.version}-${randomUUID().slice(0, 8)}`,
        trigger,
        commitSha: current.deployment.commitSha,
        commitMessage: `redeploy release v${current.version}: attached resources changed`,
        imageRef: current.imageRef,
      },
    });
    await this.launch(deployment, service.currentReleaseId, [current.imageRef]);
    return deployment;
  }

  /**
   * Gives a service from before hostnames were reserved (Service.hostLabel NULL) its label, with
   * the uniqueness check create_service makes; a label another live service holds is refused.
   */
  private async reserveHostLabel(
    service: Pick<Service, 'id' | 'userId' | 'projectId' | 'name' | 'hostLabel'>,
  ) {
    if (service.hostLabel) return;
    const project = await this.db.project.findUniqueOrThrow({ where: { id: service.projectId } });
    const label = serviceHostLabel(
      service.name,
      project.name,
      await ensureOwnerName(this.db, service.userId),
    );
    try {
      await this.db.service.updateMany({
        where: { id: service.id, hostLabel: null, deletedAt: null },
        data: { hostLabel: label },
      });
    } catch (err) {
      if (!isUniqueViolation(err, 'hostLabel')) throw err;
      throw hostnameTaken(
        label,
        'This service cannot deploy under it: create it under another name, then delete it.',
      );
    }
  }

  /** Supersedes deployments in flight, then starts the workflow for `deployment`. */
  private async launch(deployment: Deployment, currentReleaseId: string | null, args: string[]) {
    const serviceId = deployment.serviceId;
    await this.db.deploymentStatusChange.create({ data: { deploymentId: deployment.id, status: 'queued' } });
    // A newer deployment supersedes those still in flight.
    const older = await this.db.deployment.findMany({
      where: { serviceId, status: { in: IN_FLIGHT_STATUSES }, id: { not: deployment.id } },
    });
    for (const d of older) {
      await this.temporal.workflow
        .getHandle(d.workflowId)
        .cancel()
        .catch(() => undefined);
      const reason = `superseded by deployment ${deployment.id}`;
      // Only while it is still in flight: one that ended meanwhile keeps its status and times.
      await this.db.$transaction(async (tx) => {
        const { count } = await tx.deployment.updateMany({
          where: { id: d.id, status: { in: IN_FLIGHT_STATUSES } },
          data: { status: 'superseded', statusReason: reason, finishedAt: new Date() },
        });
        if (count)
          await tx.deploymentStatusChange.create({
            data: { deploymentId: d.id, status: 'superseded', reason },
          });
      });
    }
    // A service with a live release stays "active" while the new deployment runs.
    if (!currentReleaseId)
      await this.db.service.update({ where: { id: serviceId }, data: { status: 'queued' } });
    try {
      await this.temporal.workflow.start('deployService', {
        taskQueue: PRODUCT_TASK_QUEUE,
        workflowId: deployment.workflowId,
        args: [deployment.id, ...args],
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
  }

  /**
   * Deletes a service: supersedes deployments in flight, then runs the deleteService workflow
   * and waits for it (at most `timeoutMs`). "deleting" when the wait ended first: the workflow
   * goes on in the background.
   */
  async delete(serviceId: string, timeoutMs = 50_000): Promise<'deleted' | 'deleting'> {
    const inFlight = await this.db.deployment.findMany({
      where: { serviceId, status: { in: IN_FLIGHT_STATUSES } },
    });
    for (const d of inFlight)
      await this.temporal.workflow
        .getHandle(d.workflowId)
        .cancel()
        .catch(() => undefined);
    // Shown while the delete runs (deleteService marks the service deleted at its end).
    await this.db.service.update({ where: { id: serviceId }, data: { status: 'deleting' } });
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
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        handle.result().then(() => 'deleted' as const),
        new Promise<'deleting'>((resolve) => {
          timer = setTimeout(() => resolve('deleting'), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
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
    const repo = { id: '', userId: '', host: 'internal', ownerName: owner, name };
    return this.headOf(repo, branch);
  }

  /** The commit a branch of a repo (ours or GitHub's) points at; a clear error when it has none. */
  async headOf(repo: SourceRepo, branch: string): Promise<string> {
    return (await this.sources.for(repo).commit(repo, branch)).sha;
  }
}
