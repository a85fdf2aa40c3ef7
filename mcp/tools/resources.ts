import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Caller } from '../../core/api-keys.ts';
import type { Resource } from '../../core/db/client.ts';
import { notAvailableYet, notFound } from '../../core/errors.ts';
import { resolveProject } from '../../core/projects.ts';
import { connectionAad, resourceKind } from '../../core/resources/catalog.ts';
import type { SecretBox } from '../../core/secrets.ts';
import { type ResourceManager, sizeSummary } from '../../workers/resources/manager.ts';
import { fitPage } from '../answer-size.ts';
import { DEFAULT_PAGE_SIZE, decodeCursor } from '../pagination.ts';
import {
  cursor,
  pageSize,
  projectName,
  region,
  resourceName,
  resourceSize,
  resourceType,
  serviceName,
} from '../schemas.ts';
import { CHANGES, CREATES, DESTROYS, READ_ONLY, runTool, type ToolContext } from '../tool-kit.ts';

const resourceSummary = z.object({
  name: z.string(),
  project: z.string(),
  type: z.string(),
  size: z.string(),
  region: z.string(),
  status: z.string().describe('provisioning | ready | failed | deleting'),
  created_at: z.string(),
});

const resourceDetail = {
  ...resourceSummary.shape,
  connection: z
    .record(z.string(), z.string())
    .describe('Connection variables; masked unless include_secrets.'),
  services: z.array(z.string()).describe('Services this resource is attached to.'),
  status_reason: z.string().optional().describe('Why it failed, when status is failed.'),
};

function summary(r: Resource & { project: { name: string } }) {
  return {
    name: r.name,
    project: r.project.name,
    type: r.type,
    size: r.size,
    region: r.region,
    status: r.status,
    created_at: r.createdAt.toISOString(),
  };
}

export type ResourceToolDeps = {
  secrets: SecretBox;
  /** Creates and deletes resources; absent on a server without workers (the tools say so). */
  resources?: ResourceManager;
};

export function registerResourceTools(server: McpServer, ctx: ToolContext, deps: ResourceToolDeps) {
  const { db } = ctx;

  async function findResource(caller: Caller, name: string, project: string | undefined) {
    const p = await resolveProject(db, caller.userId, project);
    const resource = await db.resource.findFirst({
      where: { userId: caller.userId, projectId: p.id, name, deletedAt: null },
      include: {
        project: { select: { name: true } },
        // Deleted services keep their rows (history), not their attachments.
        services: {
          where: { service: { deletedAt: null } },
          include: { service: { select: { name: true, id: true } } },
        },
      },
    });
    if (!resource) {
      throw notFound(
        `resource "${name}" in project "${p.name}"`,
        'Call list_resources to see your resources.',
      );
    }
    return resource;
  }

  function detail(
    r: Awaited<ReturnType<typeof findResource>>,
    includeSecrets: boolean | undefined,
  ): Record<string, unknown> {
    const connection = r.connectionEncrypted
      ? deps.secrets.openJson<Record<string, string>>(r.connectionEncrypted, connectionAad(r.id))
      : {};
    return {
      ...summary(r),
      connection: Object.fromEntries(
        Object.entries(connection).map(([k, v]) => [k, includeSecrets ? v : '********']),
      ),
      services: r.services.map((s) => s.service.name).sort(),
      ...(r.statusReason ? { status_reason: r.statusReason } : {}),
    };
  }

  const offered = deps.resources?.offered ?? {};
  const catalog = Object.entries(offered)
    .map(([type, regions]) => `${type} (regions: ${(regions ?? []).join(', ')})`)
    .join('; ');

  server.registerTool(
    'create_resource',
    {
      title: 'Create a database',
      description:
        'Creates a database and waits until it is ready (up to 45 s; then status "provisioning": follow it ' +
        'with get_resource). Returns its connection variables, masked (get_resource with include_secrets reveals ' +
        'them). Attach it to a service to have the variables injected (Postgres: DATABASE_URL, PGHOST, PGPORT, ' +
        'PGUSER, PGPASSWORD, PGDATABASE). Types offered here: ' +
        (catalog || 'none') +
        `. Sizes: ${sizeSummary()}; default small. Calling again with the same name and type is safe. Next: get_resource.`,
      inputSchema: {
        name: resourceName.describe('Resource name (DNS label).'),
        project: projectName,
        type: resourceType,
        size: resourceSize,
        region,
      },
      outputSchema: resourceDetail,
      annotations: { title: 'Create a database', ...CREATES },
    },
    (args, extra) =>
      runTool(ctx, extra, 'create_resource', async (caller) => {
        await resolveProject(db, caller.userId, args.project);
        if (!deps.resources) throw notAvailableYet('Creating databases (create_resource)');
        await deps.resources.create(caller, {
          name: args.name,
          project: args.project,
          kind: resourceKind(args.type ?? 'postgres'),
          size: args.size,
          region: args.region,
        });
        return detail(await findResource(caller, args.name, args.project), false);
      }),
  );

  server.registerTool(
    'list_resources',
    {
      title: 'List databases',
      description:
        'Lists your databases (name, type, status), a page of at most 100 (default 20). When next_cursor is set, ' +
        'call again with cursor to get more. Next: get_resource for connection variables.',
      inputSchema: {
        project: projectName.describe('Only this project; default: all your projects.'),
        limit: pageSize,
        cursor,
      },
      outputSchema: {
        resources: z.array(resourceSummary),
        next_cursor: z.string().nullable(),
        note: z.string(),
      },
      annotations: { title: 'List databases', ...READ_ONLY },
    },
    (args, extra) =>
      runTool(ctx, extra, 'list_resources', async (caller) => {
        const limit = args.limit ?? DEFAULT_PAGE_SIZE;
        const after = decodeCursor(args.cursor);
        const projectId = args.project
          ? (await resolveProject(db, caller.userId, args.project)).id
          : undefined;
        const rows = await db.resource.findMany({
          where: { userId: caller.userId, deletedAt: null, ...(projectId ? { projectId } : {}) },
          include: { project: { select: { name: true } } },
          orderBy: { id: 'asc' },
          take: limit + 1,
          ...(after ? { cursor: { id: after }, skip: 1 } : {}),
        });
        return fitPage(rows, limit, 'list_resources', (items, next_cursor, note) => ({
          resources: items.map(summary),
          next_cursor,
          note,
        }));
      }),
  );

  server.registerTool(
    'get_resource',
    {
      title: 'Get a database',
      description:
        'Shows one database: status, size, region, the services it is attached to, and its connection variables ' +
        '(masked unless include_secrets is true; treat revealed values as secrets).',
      inputSchema: {
        name: resourceName,
        project: projectName,
        include_secrets: z
          .boolean({ error: 'include_secrets must be true or false' })
          .optional()
          .describe('Reveal connection values.'),
      },
      outputSchema: resourceDetail,
      annotations: { title: 'Get a database', ...READ_ONLY },
    },
    (args, extra) =>
      runTool(ctx, extra, 'get_resource', async (caller) => {
        const r = await findResource(caller, args.name, args.project);
        if (args.include_secrets)
          await db.auditEvent.create({
            data: {
              userId: caller.userId,
              actor: `api_key:${caller.keyPrefix}`,
              action: 'resource.reveal',
              targetType: 'resource',
              targetId: r.id,
            },
          });
        return detail(r, args.include_secrets);
      }),
  );

  server.registerTool(
    'delete_resource',
    {
      title: 'Delete a database',
      description:
        'Deletes a database and all its data. It refuses while services are attached (naming them) unless ' +
        'detach is true, which detaches it first. A final backup is kept on the server for a few days ' +
        '(DEPLOY_MCP_BACKUP_RETENTION_DAYS, default 7); the database itself cannot be brought back by a tool. ' +
        'Deleting one that is already gone reports not found.',
      inputSchema: {
        name: resourceName,
        project: projectName,
        detach: z
          .boolean({ error: 'detach must be true or false' })
          .optional()
          .describe('Detach it from its services first (default false: refuse while attached).'),
      },
      outputSchema: {
        name: z.string(),
        project: z.string(),
        deleted: z.boolean(),
        status: z.string().describe('deleted, or deleting when the wait ended first'),
        backup: z.string().nullable().describe('Name of the final backup kept, if any.'),
        detached: z.array(z.string()).describe('Services it was detached from.'),
      },
      annotations: { title: 'Delete a database', ...DESTROYS },
    },
    (args, extra) =>
      runTool(ctx, extra, 'delete_resource', async (caller) => {
        const r = await findResource(caller, args.name, args.project);
        if (!deps.resources) throw notAvailableYet('Deleting databases (delete_resource)');
        const result = await deps.resources.delete(caller, r, args.detach === true);
        return {
          name: r.name,
          project: r.project.name,
          deleted: result.status === 'deleted',
          status: result.status,
          backup: result.backup,
          detached: r.services.map((s) => s.service.name).sort(),
        };
      }),
  );

  registerAttachTools(server, ctx, deps, findResource);

  server.registerTool(
    'rotate_resource_credentials',
    {
      title: "Rotate a database's credentials",
      description:
        'Gives a postgres database a new password at once: the old one stops working for new connections, the data ' +
        'stays, and the services it is attached to are redeployed without a build with the new variables (their ' +
        'old release may fail to open new connections for the few seconds until then). A sqlite database in Turso ' +
        '(any region but local) gets a new token the same way, every older one invalidated. Next: get_service.',
      inputSchema: { name: resourceName, project: projectName },
      outputSchema: {
        name: z.string(),
        status: z.string().describe('rotated, or rotating when the wait ended first'),
        redeployed: z.array(z.string()).describe('Services redeployed with the new credentials.'),
      },
      annotations: { title: "Rotate a database's credentials", ...CHANGES },
    },
    (args, extra) =>
      runTool(ctx, extra, 'rotate_resource_credentials', async (caller) => {
        const r = await findResource(caller, args.name, args.project);
        if (!deps.resources) throw notAvailableYet('Rotating credentials (rotate_resource_credentials)');
        const result = await deps.resources.rotate(caller, r);
        return { name: r.name, ...result };
      }),
  );
}

/**
 * attach_resource and detach_resource: the service gets (or loses) the resource's variables at
 * run time, through a redeploy of its serving release without a build.
 */
function registerAttachTools(
  server: McpServer,
  ctx: ToolContext,
  deps: ResourceToolDeps,
  findResource: (caller: Caller, name: string, project: string | undefined) => Promise<Resource>,
) {
  const { db } = ctx;
  const inputSchema = {
    service: serviceName.describe('Service name.'),
    resource: resourceName.describe('Resource name (same project as the service).'),
    project: projectName,
  };
  const outputSchema = {
    service: z.string(),
    resource: z.string(),
    attached: z.boolean(),
    changed: z.boolean().describe('False when it already was (or was not) attached.'),
    redeployment: z
      .string()
      .nullable()
      .describe('The deployment that applies it (no build); follow it with get_service.'),
    variables: z
      .array(z.string())
      .describe('Names of the variables the service gets (values: get_resource).'),
  };
  async function findService(caller: Caller, name: string, project: string | undefined) {
    const p = await resolveProject(db, caller.userId, project);
    const service = await db.service.findFirst({
      where: { userId: caller.userId, projectId: p.id, name, deletedAt: null },
    });
    if (!service)
      throw notFound(`service "${name}" in project "${p.name}"`, 'Call list_services to see your services.');
    return service;
  }
  for (const [tool, attach] of [
    ['attach_resource', true],
    ['detach_resource', false],
  ] as const) {
    server.registerTool(
      tool,
      {
        title: attach ? 'Attach a database to a service' : 'Detach a database from a service',
        description: attach
          ? 'Gives a service a ready database: its connection variables (Postgres: DATABASE_URL, PGHOST, PGPORT, ' +
            'PGUSER, PGPASSWORD, PGDATABASE) are injected at run time, and the serving release is redeployed ' +
            "without a build. With several attached, each one's variables are also prefixed with its name " +
            "(db-main → DB_MAIN_DATABASE_URL); the plain names stay the first attached one's. The service's own " +
            'env_vars win. Attaching again changes nothing. Next: get_service.'
          : "Takes a database's variables away from a service and redeploys its serving release without a build. " +
            'The database and its data stay. Next: get_service.',
        inputSchema,
        outputSchema,
        annotations: { title: attach ? 'Attach a database' : 'Detach a database', ...CHANGES },
      },
      (args, extra) =>
        runTool(ctx, extra, tool, async (caller) => {
          const service = await findService(caller, args.service, args.project);
          const resource = await findResource(caller, args.resource, args.project);
          if (!deps.resources) throw notAvailableYet(`Attaching databases (${tool})`);
          const result = attach
            ? await deps.resources.attach(caller, service, resource)
            : await deps.resources.detach(caller, service, resource);
          const variables = resource.connectionEncrypted
            ? Object.keys(
                deps.secrets.openJson<Record<string, string>>(
                  resource.connectionEncrypted,
                  connectionAad(resource.id),
                ),
              ).sort()
            : [];
          return {
            service: service.name,
            resource: resource.name,
            attached: attach,
            changed: result.changed,
            redeployment: result.deploymentId,
            variables,
          };
        }),
    );
  }
}
