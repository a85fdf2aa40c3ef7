import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { issueGitToken } from '../../git/tokens.ts';
import { childEnv } from '../child-env.ts';
import type { Db } from '../db/client.ts';
import { invalidInput } from '../errors.ts';
import type { Commit, PullCredential, RepoSource, SourceRepo } from './repo-source.ts';

const run = promisify(execFile);

/** Our own git server: repos under `root`, served at `baseUrl` with per-repo `mlg_` tokens. */
export class InternalRepoSource implements RepoSource {
  private readonly o: {
    db: Db;
    /** Where the bare repos live: <root>/<owner>/<name>.git. */
    root: string;
    /** Base URL of the git server, e.g. http://127.0.0.1:8081/git. */
    baseUrl: string;
  };

  constructor(o: {
    db: Db;
    /** Where the bare repos live: <root>/<owner>/<name>.git. */
    root: string;
    /** Base URL of the git server, e.g. http://127.0.0.1:8081/git. */
    baseUrl: string;
  }) {
    this.o = o;
  }

  async commit(repo: SourceRepo, ref: string): Promise<Commit> {
    const gitDir = `${this.o.root}/${repo.ownerName}/${repo.name}.git`;
    const git = (args: string[]) =>
      run('git', ['--git-dir', gitDir, ...args], { env: childEnv() }).then((r) => r.stdout.trim());
    const isSha = /^[0-9a-f]{40}$/.test(ref);
    let sha: string;
    try {
      sha = isSha ? ref : await git(['rev-parse', '--verify', `refs/heads/${ref}`]);
    } catch {
      throw invalidInput(
        `branch "${ref}" of repo ${repo.ownerName}/${repo.name} has no commits yet: push first (see create_repo)`,
      );
    }
    const subject = await git(['log', '-1', '--format=%s', sha]).then(
      (s) => s.slice(0, 200),
      () => null,
    );
    return { sha, subject };
  }

  async pullCredential(repo: SourceRepo): Promise<PullCredential> {
    const { token, expiresAt } = await issueGitToken(this.o.db, {
      repoId: repo.id,
      userId: repo.userId,
      scope: 'pull',
      ttlSeconds: 600,
    });
    return {
      url: `${this.o.baseUrl}/${repo.ownerName}/${repo.name}.git`,
      username: 'deployer',
      password: token,
      expiresAt,
    };
  }
}
