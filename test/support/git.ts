import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/**
 * The real git client as an agent runs it: an identity, no prompts, no user or system config
 * (HOME is `home`). Returns `git(args, cwd)`.
 */
export function agentGit(home: string, name = 'Agent') {
  const env = {
    ...process.env,
    HOME: home,
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: name,
    GIT_AUTHOR_EMAIL: `${name.toLowerCase()}@example.com`,
    GIT_COMMITTER_NAME: name,
    GIT_COMMITTER_EMAIL: `${name.toLowerCase()}@example.com`,
  };
  return (args: string[], cwd = home) => exec('git', args, { cwd, env, maxBuffer: 64 * 1024 * 1024 });
}

/** Makes `dir` a repo with one commit of its files and pushes it to `remote` (branch main). */
export async function pushNewRepo(git: ReturnType<typeof agentGit>, dir: string, remote: string) {
  await git(['init', '-q', '-b', 'main'], dir);
  await git(['add', '.'], dir);
  await git(['commit', '-q', '-m', 'first'], dir);
  await git(['push', '-q', remote, 'HEAD:refs/heads/main'], dir);
}
