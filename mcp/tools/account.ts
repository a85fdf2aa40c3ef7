import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { GitHubRepos } from '../../core/github/repos.ts';
import { accountOverview } from '../../core/projects.ts';
import { READ_ONLY, runTool, type ToolContext } from '../tool-kit.ts';

const GITHUB_NOTES = {
  not_configured: 'This server has no GitHub App: use host "internal".',
  not_linked:
    'No GitHub login is linked to your account yet (the operator links one: deploy-mcp github link).',
  not_installed:
    'The GitHub App is not installed on your linked GitHub account yet: install it, then call again.',
  installed:
    'create_repo, get_git_token and create_service accept host "github"; pushes to a tracked branch redeploy.',
} as const;

export function registerAccountTools(server: McpServer, ctx: ToolContext, github?: GitHubRepos) {
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
        github: z
          .object({
            status: z.enum(['not_configured', 'not_linked', 'not_installed', 'installed']),
            login: z.string().nullable(),
            installation_id: z.number().nullable(),
            account_type: z.string().nullable(),
            note: z.string(),
          })
          .describe('Your GitHub App installation (host "github").'),
      },
      annotations: { title: 'Who am I', ...READ_ONLY },
    },
    (_args, extra) =>
      runTool(ctx, extra, 'whoami', async (caller) => {
        const [account, gh] = await Promise.all([
          accountOverview(ctx.db, caller.userId),
          github ? github.status(caller.userId) : ({ state: 'not_configured' } as const),
        ]);
        if (!account) throw new Error(`the caller's user ${caller.userId} no longer exists`);
        const installed = gh.state === 'installed' ? gh.installation : undefined;
        return {
          email: caller.email,
          api_key: { prefix: caller.keyPrefix, name: caller.keyName },
          projects: account.projects,
          git_hosts: [
            { host: 'internal', base_url: `${ctx.publicUrl}/git`, owner: account.ownerName, default: true },
            ...(github?.gitUrl && installed
              ? [{ host: 'github', base_url: github.gitUrl, owner: installed.accountLogin, default: false }]
              : []),
          ],
          github: {
            status: gh.state,
            login: 'login' in gh ? gh.login : null,
            installation_id: installed?.id ?? null,
            account_type: installed?.accountType ?? null,
            note: GITHUB_NOTES[gh.state],
          },
        };
      }),
  );
}
