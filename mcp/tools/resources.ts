import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Caller } from '../../core/api-keys.ts';
import type { Resource } from '../../core/db/client.ts';
import { notAvailableYet, notFound } from '../../core/errors.ts';
import { resolveProject } from '../../core/projects.ts';
import type { SecretBox } from '../../core/secrets.ts';
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
} from '../schemas.ts';
import { CREATES, DESTROYS, READ_ONLY, runTool, type ToolContext } from '../tool-kit.ts';

const resourceSummary = z.object({
  name: z.string(),
  project: z.string(),
  type: z.string(),
  size: z.string(),
  region: z.string(),
  status: z.string(),
  created_at: z.string(),
});

const resourceDetail = {
  ...resourceSummary.shape,
  connection: z
    .record(z.string(), z.string())
    .describe('Connection variables; masked unless include_secrets.'),
  services: z.array(z.string()).describe('Services this resource is attached to.'),
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

export type ResourceToolDeps = { secrets: SecretBox };

export function registerResourceTools(server: McpServer, ctx: ToolContext, deps: ResourceToolDeps) {
  const { db } = ctx;

  async function findResource(caller: Caller, name: string, project: string | undefined) {
    const p = await resolveProject(db, caller.userId, project);
    const resource = await db.resource.findFirst({
      where: { userId: caller.userId, projectId: p.id, name, deletedAt: null },
      include: {
        project: { select: { name: true } },
        services: { include: { service: { select: { name: true } } } },
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

  server.registerTool(
    'create_resource',
    {
      title: 'Create a database',
      description:
        'Creates a database (libsql: SQLite-compatible) and returns its connection variables (masked). Attach it ' +
        'to a service to have the variables injected. Calling again with the same name is safe. Next: get_resource.',
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
        throw notAvailableYet('Creating databases (create_resource)');
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
        const connection = r.connectionEncrypted
          ? deps.secrets.openJson<Record<string, string>>(
              r.connectionEncrypted,
              `resource:${r.id}:connection`,
            )
          : {};
        return {
          ...summary(r),
          connection: Object.fromEntries(
            Object.entries(connection).map(([k, v]) => [k, args.include_secrets ? v : '********']),
          ),
          services: r.services.map((s) => s.service.name).sort(),
        };
      }),
  );

  server.registerTool(
    'delete_resource',
    {
      title: 'Delete a database',
      description:
        'Deletes a database and all its data, and detaches it from its services. This cannot be undone. ' +
        'Deleting one that is already gone reports not found.',
      inputSchema: { name: resourceName, project: projectName },
      outputSchema: { name: z.string(), project: z.string(), deleted: z.boolean() },
      annotations: { title: 'Delete a database', ...DESTROYS },
    },
    (args, extra) =>
      runTool(ctx, extra, 'delete_resource', async (caller) => {
        await findResource(caller, args.name, args.project);
        throw notAvailableYet('Deleting databases (delete_resource)');
      }),
  );
}
