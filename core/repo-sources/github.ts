import type { Db } from '../db/client.ts';
import { invalidInput } from '../errors.ts';
import { usersOfInstallation } from '../github/accounts.ts';
import { GitHubApiError, type GitHubApp } from '../github/app.ts';
import type { Commit, PullCredential, RepoSource, SourceRepo } from './repo-source.ts';

/**
 * GitHub through our App. Every call mints its own installation token for the one repo with
 * contents:read, after checking that the installation covering the repo is still on the account
 * linked to the repo's user (an unlinked or uninstalled account builds nothing more).
 */
export class GitHubRepoSource implements RepoSource {
  private readonly db: Db;
  private readonly github: GitHubApp;

  constructor(db: Db, github: GitHubApp) {
    this.db = db;
    this.github = github;
  }

  private async readToken(repo: SourceRepo) {
    const installation = await this.github.installationOfRepo(repo.ownerName, repo.name);
    const users = installation ? await usersOfInstallation(this.db, installation.accountLogin) : [];
    if (!installation || !users.includes(repo.userId))
      throw invalidInput(
        `GitHub repo ${repo.ownerName}/${repo.name} is no longer in your GitHub App installation: ` +
          'reinstall the App or give it access to the repo (whoami shows the installation status)',
      );
    return this.github.mintToken(installation.id, { repo: repo.name, permissions: { contents: 'read' } });
  }

  async commit(repo: SourceRepo, ref: string): Promise<Commit> {
    const { token } = await this.readToken(repo);
    try {
      const res = await this.github
        .client(token)
        .request('GET /repos/{owner}/{repo}/commits/{ref}', { owner: repo.ownerName, repo: repo.name, ref });
      const message = res.data.commit.message ?? '';
      return { sha: res.data.sha, subject: message.split('\n', 1)[0]?.slice(0, 200) ?? null };
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 404 || status === 409 || status === 422)
        throw invalidInput(
          `branch "${ref}" of GitHub repo ${repo.ownerName}/${repo.name} has no commits yet: push first`,
        );
      if (typeof status === 'number') throw new GitHubApiError(status, `GitHub answered ${status}`);
      throw err;
    }
  }

  async pullCredential(repo: SourceRepo): Promise<PullCredential> {
    const { token, expiresAt } = await this.readToken(repo);
    return {
      url: this.github.cloneUrl(repo.ownerName, repo.name),
      username: 'x-access-token',
      password: token,
      expiresAt,
    };
  }
}
