import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { notAvailableYet, notFound } from '../../core/errors.ts';
import { description, gitHost, repoName } from '../schemas.ts';
import { CHANGES, CREATES, runTool, type ToolContext } from '../tool-kit.ts';

const gitRemote = {
  name: z.string(),
  host: z.string(),
  git_remote: z.string().describe('HTTPS remote with a short-lived token embedded; treat it as a secret.'),
  expires_at: z.string(),
  push_command: z.string(),
};

export function registerRepoTools(server: McpServer, ctx: ToolContext) {
  server.registerTool(
    'create_repo',
    {
      title: 'Create a git repo',
      description:
        'Creates a git repo on our git server (default host) and returns git_remote: an HTTPS remote with a ' +
        'short-lived token embedded, plus the exact push command. Calling again for the same name returns the ' +
        'existing repo with a fresh remote. Next: push your code, then create_service with repo=<name>.',
      inputSchema: { name: repoName, host: gitHost, description },
      outputSchema: gitRemote,
      annotations: { title: 'Create a git repo', ...CREATES },
    },
    (args, extra) =>
      runTool(ctx, extra, 'create_repo', async () => {
        throw notAvailableYet(`Git hosting (create_repo on host "${args.host ?? 'internal'}")`);
      }),
  );

  server.registerTool(
    'get_git_token',
    {
      title: 'Get a git remote with a fresh token',
      description:
        'Returns a fresh git_remote (HTTPS with a short-lived, repo-scoped token) for one of your repos, for ' +
        'pushing or cloning. Tokens expire; call again when one has.',
      inputSchema: { name: repoName, host: gitHost },
      outputSchema: gitRemote,
      annotations: { title: 'Get a git remote with a fresh token', ...CHANGES },
    },
    (args, extra) =>
      runTool(ctx, extra, 'get_git_token', async (caller) => {
        const host = args.host ?? 'internal';
        const repo = await ctx.db.repo.findFirst({
          where: { userId: caller.userId, host, name: args.name },
        });
        if (!repo) throw notFound(`repo "${args.name}" on host "${host}"`, 'Create it with create_repo.');
        throw notAvailableYet('Git tokens (get_git_token)');
      }),
  );
}
