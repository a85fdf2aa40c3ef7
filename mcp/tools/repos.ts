import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { notAvailableYet } from '../../core/errors.ts';
import type { GitHosting } from '../../git/hosting.ts';
import { description, gitHost, repoName } from '../schemas.ts';
import { CHANGES, CREATES, runTool, type ToolContext } from '../tool-kit.ts';

const gitRemote = {
  name: z.string(),
  host: z.string(),
  owner: z.string(),
  clone_url: z.string().describe('Clone URL without credentials.'),
  git_remote: z.string().describe('HTTPS remote with a short-lived token embedded; treat it as a secret.'),
  expires_at: z.string(),
  push_command: z.string(),
  created: z.boolean().describe('False when the repo already existed.'),
};

/** GitHub hosting is not built yet; every other host value is refused by the schema. */
function requireInternal(host: string | undefined) {
  if (host !== undefined && host !== 'internal') throw notAvailableYet(`Git host "${host}"`);
}

export function registerRepoTools(server: McpServer, ctx: ToolContext, git: GitHosting) {
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
      runTool(ctx, extra, 'create_repo', async (caller) => {
        requireInternal(args.host);
        return git.createRepo(caller, args.name, args.description);
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
        requireInternal(args.host);
        return git.remoteFor(caller, args.name);
      }),
  );
}
