import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { READ_ONLY, runTool, type ToolContext } from '../tool-kit.ts';

export function registerAccountTools(server: McpServer, ctx: ToolContext) {
  server.registerTool(
    'whoami',
    {
      title: 'Who am I',
      description:
        'Returns the account this API key belongs to: email, projects (with service and resource counts) and the ' +
        'git hosts you can deploy from. Call it first to learn project names; then create_repo or create_service.',
      inputSchema: {},
      outputSchema: {
        email: z.string(),
        api_key: z.object({ prefix: z.string(), name: z.string() }),
        projects: z.array(z.object({ name: z.string(), services: z.number(), resources: z.number() })),
        git_hosts: z.array(
          z.object({
            host: z.string(),
            base_url: z.string(),
            owner: z.string().nullable(),
            default: z.boolean(),
          }),
        ),
      },
      annotations: { title: 'Who am I', ...READ_ONLY },
    },
    (_args, extra) =>
      runTool(ctx, extra, 'whoami', async (caller) => {
        const [user, projects] = await Promise.all([
          ctx.db.user.findUniqueOrThrow({ where: { id: caller.userId }, select: { ownerName: true } }),
          ctx.db.project.findMany({
            where: { userId: caller.userId },
            orderBy: { name: 'asc' },
            select: {
              name: true,
              _count: {
                select: {
                  services: { where: { deletedAt: null } },
                  resources: { where: { deletedAt: null } },
                },
              },
            },
          }),
        ]);
        return {
          email: caller.email,
          api_key: { prefix: caller.keyPrefix, name: caller.keyName },
          projects: projects.map((p) => ({
            name: p.name,
            services: p._count.services,
            resources: p._count.resources,
          })),
          git_hosts: [
            { host: 'internal', base_url: `${ctx.publicUrl}/git`, owner: user.ownerName, default: true },
          ],
        };
      }),
  );
}
