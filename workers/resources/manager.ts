import { type Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { Caller } from '../../core/api-keys.ts';
import type { Db, Resource } from '../../core/db/client.ts';
import { isUniqueViolation } from '../../core/db/unique-violation.ts';
import { conflict, invalidInput, notAvailableYet, notFound } from '../../core/errors.ts';
import { resolveProject } from '../../core/projects.ts';
import {
  isTurso,
  pickRegion,
  RESOURCE_SIZE_CONNECTIONS,
  type RegionCatalog,
  type ResourceKind,
  type ResourceSize,
  resourceStackName,
} from '../../core/resources/catalog.ts';
import type { DeployStarter } from '../deploy/start-deploy.ts';
import { PRODUCT_TASK_QUEUE } from '../task-queues.ts';
import type { deleteResource, provisionResource, rotateResource } from '../workflows/resources.ts';

/** How long create and delete wait by default: answers arrive within MCP clients' usual 60 s. */
const DEFAULT_WAIT_MS = 45_000;

export type ResourceManagerOptions = {
  db: Db;
  temporal: Client;
  /** Live resources one user may have. */
  maxPerUser: number;
  /** Regions per type; a type missing here is not offered. */
  regions: Partial<RegionCatalog>;
  /** How long create and delete wait for their workflow before answering with the status. */
  waitMs?: number;
  /** Redeploys services whose attached resources change (absent: they change at their next deploy). */
  deploys?: DeployStarter;
};

export type CreateResourceInput = {
  name: string;
  project: string | undefined;
  kind: ResourceKind;
  size: ResourceSize | undefined;
  region: string | undefined;
};

/**
 * Resources (databases) as MCP tools, the CLI and create_service see them: limits, rows, audit
 * events, and the provisionResource/deleteResource workflows (which get ids only).
 */
export class ResourceManager {
  private readonly o: ResourceManagerOptions;

  constructor(o: ResourceManagerOptions) {
    this.o = o;
  }

  /** Types this server offers, with their regions (for the tool descriptions). */
  get offered(): Partial<RegionCatalog> {
    return this.o.regions;
  }

  /**
   * Creates a resource and waits (bounded) until it is ready or failed. The same name again
   * with the same type returns the existing one (provisioning again when it had failed).
   */
  async create(
    caller: Caller,
    input: CreateResourceInput,
    waitMs = this.o.waitMs ?? DEFAULT_WAIT_MS,
  ): Promise<Resource> {
    const { db } = this.o;
    const size = input.size ?? 'small';
    const project = await resolveProject(db, caller.userId, input.project);
    const liveKey = `${project.id}/${input.name}`;
    const existing = await db.resource.findUnique({ where: { liveKey } });
    if (existing && existing.type !== input.kind)
      throw conflict(
        `resource "${input.name}" exists already as ${existing.type}; pick another name or delete_resource it first`,
      );
    if (!this.o.regions[input.kind]) throw notAvailableYet(`${input.kind} resources`);
    const region = pickRegion({ postgres: [], sqlite: [], ...this.o.regions }, input.kind, input.region);
    if (existing) {
      if (existing.size !== size || existing.region !== region)
        throw conflict(
          `resource "${input.name}" exists already with size ${existing.size} in region ${existing.region}; ` +
            'sizes and regions cannot be changed yet',
        );
      if (existing.status === 'failed') {
        await db.resource.update({
          where: { id: existing.id },
          data: { status: 'provisioning', statusReason: null },
        });
        await this.startProvisioning(existing.id, true);
      }
      return this.waitForStatus(existing.id, ['ready', 'failed'], waitMs);
    }
    const live = await db.resource.count({ where: { userId: caller.userId, deletedAt: null } });
    if (live >= this.o.maxPerUser)
      throw invalidInput(
        `you have ${live} resources, the most this server allows (${this.o.maxPerUser}); delete_resource one first`,
      );
    let resource: Resource;
    try {
      resource = await db.$transaction(async (tx) => {
        const row = await tx.resource.create({
          data: {
            userId: caller.userId,
            projectId: project.id,
            name: input.name,
            liveKey,
            type: input.kind,
            size,
            region,
          },
        });
        const named = await tx.resource.update({
          where: { id: row.id },
          data: { stackName: resourceStackName(row) },
        });
        await tx.auditEvent.create({
          data: {
            userId: caller.userId,
            actor: `api_key:${caller.keyPrefix}`,
            action: 'resource.create',
            targetType: 'resource',
            targetId: row.id,
            detail: JSON.stringify({
              name: input.name,
              project: project.name,
              type: input.kind,
              size,
              region,
            }),
          },
        });
        return named;
      });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      throw conflict(`resource "${input.name}" was just created by another call; call create_resource again`);
    }
    await this.startProvisioning(resource.id, false);
    return this.waitForStatus(resource.id, ['ready', 'failed'], waitMs);
  }

  /**
   * Deletes a resource: refuses while services use it (naming them) unless `detach`; keeps a final
   * backup; waits (bounded) for the deleteResource workflow.
   */
  async delete(
    caller: Caller,
    resource: Resource & { services: { service: { name: string; id: string } }[] },
    detach: boolean,
  ): Promise<{ status: string; backup: string | null }> {
    const { db } = this.o;
    const attached = resource.services.map((s) => s.service.name).sort();
    if (attached.length && !detach)
      throw conflict(
        `resource "${resource.name}" is attached to ${attached.map((n) => `"${n}"`).join(', ')}; ` +
          'detach_resource it from them first, or call delete_resource with detach: true',
      );
    await db.$transaction(async (tx) => {
      await tx.serviceResource.deleteMany({ where: { resourceId: resource.id } });
      await tx.resource.update({
        where: { id: resource.id },
        data: { status: 'deleting', deletedAt: new Date(), liveKey: null },
      });
      await tx.auditEvent.create({
        data: {
          userId: caller.userId,
          actor: `api_key:${caller.keyPrefix}`,
          action: 'resource.delete',
          targetType: 'resource',
          targetId: resource.id,
          detail: JSON.stringify({ name: resource.name, detached: attached }),
        },
      });
    });
    const workflowId = `resource-delete-${resource.id}`;
    const handle = await this.o.temporal.workflow
      .start<typeof deleteResource>('deleteResource', {
        taskQueue: PRODUCT_TASK_QUEUE,
        workflowId,
        args: [resource.id],
      })
      .catch((err: unknown) => {
        if (err instanceof WorkflowExecutionAlreadyStartedError)
          return this.o.temporal.workflow.getHandle<typeof deleteResource>(workflowId);
        throw err;
      });
    // Services it was detached from run on without its variables (no build).
    for (const s of resource.services) await this.o.deploys?.redeployServing(s.service.id);
    const result = await withDeadline(handle.result(), this.o.waitMs ?? DEFAULT_WAIT_MS);
    return result ? { status: 'deleted', backup: result.backup } : { status: 'deleting', backup: null };
  }

  /**
   * Attaches a ready resource to a service of the same user and redeploys the service's serving
   * release without a build. Attaching it again changes nothing. Returns the redeployment's id.
   */
  async attach(
    caller: Caller,
    service: { id: string; name: string; userId: string },
    resource: Resource,
  ): Promise<{ changed: boolean; deploymentId: string | null }> {
    const { db } = this.o;
    if (service.userId !== caller.userId || resource.userId !== caller.userId)
      throw new Error('attach across tenants'); // the tools look both up for the caller: never reached
    if (resource.status !== 'ready')
      throw conflict(
        `resource "${resource.name}" is ${resource.status}, not ready; ` +
          (resource.status === 'failed'
            ? 'call create_resource again to retry it'
            : 'wait until get_resource says ready'),
      );
    try {
      await db.serviceResource.create({ data: { serviceId: service.id, resourceId: resource.id } });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      return { changed: false, deploymentId: null };
    }
    await this.audit(caller, 'resource.attach', resource.id, {
      service: service.name,
      resource: resource.name,
    });
    const deployment = await this.o.deploys?.redeployServing(service.id);
    return { changed: true, deploymentId: deployment?.id ?? null };
  }

  /** Detaches a resource from a service and redeploys it without a build. Not attached: nothing changes. */
  async detach(
    caller: Caller,
    service: { id: string; name: string },
    resource: Resource,
  ): Promise<{ changed: boolean; deploymentId: string | null }> {
    const { count } = await this.o.db.serviceResource.deleteMany({
      where: { serviceId: service.id, resourceId: resource.id },
    });
    if (!count) return { changed: false, deploymentId: null };
    await this.audit(caller, 'resource.detach', resource.id, {
      service: service.name,
      resource: resource.name,
    });
    const deployment = await this.o.deploys?.redeployServing(service.id);
    return { changed: true, deploymentId: deployment?.id ?? null };
  }

  /**
   * Rotates a resource's credentials and waits (bounded) for it; then the services using it are
   * redeployed without a build, with the new variables.
   */
  async rotate(
    caller: Caller,
    resource: Resource & { services: { service: { name: string; id: string } }[] },
  ): Promise<{ status: string; redeployed: string[] }> {
    if (resource.type !== 'postgres' && !isTurso(resource))
      throw invalidInput(
        `${resource.type} resources on this server have no credentials to rotate: the file is reachable only ` +
          'by the services it is attached to',
      );
    if (resource.status !== 'ready')
      throw conflict(`resource "${resource.name}" is ${resource.status}, not ready`);
    await this.audit(caller, 'resource.rotate', resource.id, { resource: resource.name });
    const handle = await this.o.temporal.workflow.start<typeof rotateResource>('rotateResource', {
      taskQueue: PRODUCT_TASK_QUEUE,
      workflowId: `resource-rotate-${resource.id}-${Date.now()}`,
      args: [resource.id],
    });
    const done = await withDeadline(
      handle.result().then(() => true),
      this.o.waitMs ?? DEFAULT_WAIT_MS,
    );
    if (!done) return { status: 'rotating', redeployed: [] };
    for (const s of resource.services) await this.o.deploys?.redeployServing(s.service.id);
    return { status: 'rotated', redeployed: resource.services.map((s) => s.service.name).sort() };
  }

  /** The caller's resources named in project `projectId`, each ready; a missing or unready one is an error. */
  async readyResources(caller: Caller, projectId: string, names: string[]): Promise<Resource[]> {
    const found: Resource[] = [];
    for (const name of [...new Set(names)]) {
      const r = await this.o.db.resource.findFirst({
        where: { userId: caller.userId, projectId, name, deletedAt: null },
      });
      if (!r)
        throw notFound(
          `resource "${name}"`,
          'Create it with create_resource first (or pass database: {type}).',
        );
      if (r.status !== 'ready')
        throw conflict(`resource "${name}" is ${r.status}, not ready; wait until get_resource says ready`);
      found.push(r);
    }
    return found;
  }

  /**
   * create_service's wiring: attaches `resources` and, with `database`, a database named after the
   * service (created, or reused when it exists with that type), before the service's deploy starts.
   */
  async attachForCreate(
    caller: Caller,
    service: { id: string; name: string; userId: string },
    project: string,
    resources: Resource[],
    database: { type: 'postgres' | 'sqlite' | 'libsql'; size?: ResourceSize | undefined } | undefined,
  ): Promise<void> {
    const wanted = [...resources];
    if (database) {
      // At most 30 s of create_service's wait go to the database; the rest to the deploy.
      const made = await this.create(
        caller,
        {
          name: service.name,
          project,
          kind: database.type === 'libsql' ? 'sqlite' : database.type,
          size: database.size,
          region: undefined,
        },
        30_000,
      );
      if (made.status === 'failed')
        throw conflict(
          `the database "${made.name}" could not be made: ${made.statusReason ?? 'see get_resource'}`,
        );
      if (made.status !== 'ready')
        throw conflict(
          `the database "${made.name}" is still ${made.status}; call create_service again once get_resource says ready`,
        );
      wanted.push(made);
    }
    for (const r of wanted) {
      try {
        await this.o.db.serviceResource.create({ data: { serviceId: service.id, resourceId: r.id } });
        await this.audit(caller, 'resource.attach', r.id, { service: service.name, resource: r.name });
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
      }
    }
  }

  private async audit(caller: Caller, action: string, resourceId: string, detail: Record<string, unknown>) {
    await this.o.db.auditEvent.create({
      data: {
        userId: caller.userId,
        actor: `api_key:${caller.keyPrefix}`,
        action,
        targetType: 'resource',
        targetId: resourceId,
        detail: JSON.stringify(detail),
      },
    });
  }

  private async startProvisioning(resourceId: string, again: boolean) {
    const workflowId = `resource-provision-${resourceId}${again ? `-${Date.now()}` : ''}`;
    try {
      await this.o.temporal.workflow.start<typeof provisionResource>('provisionResource', {
        taskQueue: PRODUCT_TASK_QUEUE,
        workflowId,
        args: [resourceId],
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
  }

  /** Polls the row until its status is one of `statuses` or the wait budget is spent. */
  private async waitForStatus(resourceId: string, statuses: string[], waitMs: number): Promise<Resource> {
    const deadline = Date.now() + waitMs;
    for (let i = 0; ; i++) {
      const row = await this.o.db.resource.findUniqueOrThrow({ where: { id: resourceId } });
      if (statuses.includes(row.status) || Date.now() > deadline || i > 10_000) return row;
      await new Promise((r) => setTimeout(r, Math.min(200 + i * 50, 1000)));
    }
  }
}

/** `p`'s value, or undefined once `ms` have passed. */
async function withDeadline<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Connections a size allows (shown in the tool description). */
export function sizeSummary(): string {
  return Object.entries(RESOURCE_SIZE_CONNECTIONS)
    .map(([s, n]) => `${s} (${n} connections)`)
    .join(', ');
}
