import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { invalidInput } from '../../core/errors.ts';
import type { GitHubRepos } from '../../core/github/repos.ts';
import type { GitHosting } from '../../git/hosting.ts';
import { description, gitHost, isGitHub, repoName } from '../schemas.ts';
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

/** GitHub through the App, or a clear refusal when this server has none. */
function requireGitHub(github: GitHubRepos | undefined): GitHubRepos {
  if (!github)
    throw invalidInput('GitHub is not configured on this server; use host "internal" (our git server)');
  return github;
}

export function registerRepoTools(
  server: McpServer,
  ctx: ToolContext,
  git: GitHosting,
  github?: GitHubRepos,
) {
  server.registerTool(
    'create_repo',
    {
      title: 'Create a git repo',
      description:
        'Creates a git repo on our git server (default host) and returns git_remote: an HTTPS remote with a ' +
        'short-lived token embedded, plus the exact push command. Calling again for the same name returns the ' +
        'existing repo with a fresh remote. With host "github" the repo is created on GitHub through your ' +
        'installation of our GitHub App (organizations only; whoami shows the installation) and the token is ' +
        "GitHub's, for that repo alone, for at most an hour. Next: push your code, then create_service with repo=<name>.",
      inputSchema: { name: repoName, host: gitHost, description },
      outputSchema: gitRemote,
      annotations: { title: 'Create a git repo', ...CREATES },
    },
    (args, extra) =>
      runTool(ctx, extra, 'create_repo', async (caller) => {
        if (isGitHub(args.host))
          return requireGitHub(github).create(caller.userId, args.name, args.description);
        return git.createRepo(caller, args.name, args.description);
      }),
  );

  server.registerTool(
    'get_git_token',
    {
      title: 'Get a git remote with a fresh token',
      description:
        'Returns a fresh git_remote (HTTPS with a short-lived, repo-scoped token) for one of your repos, for ' +
        'pushing or cloning. Tokens expire; call again when one has. With host "github", name is a repo of the ' +
        'GitHub account your App installation is on, and the token is a GitHub installation token for that repo alone.',
      inputSchema: { name: repoName, host: gitHost },
      outputSchema: gitRemote,
      annotations: { title: 'Get a git remote with a fresh token', ...CHANGES },
    },
    (args, extra) =>
      runTool(ctx, extra, 'get_git_token', async (caller) => {
        if (isGitHub(args.host)) return requireGitHub(github).remote(caller.userId, args.name);
        return git.remoteFor(caller, args.name);
      }),
  );
}
