import type { Db, Repo } from '../db/client.ts';
import { isUniqueViolation } from '../db/unique-violation.ts';
import { conflict, DomainError, invalidInput, notFound } from '../errors.ts';
import { gitHubStatus, gitHubUnavailable } from './accounts.ts';
import { GitHubApiError, type GitHubApp, type Installation } from './app.ts';

/** GitHub repository names: letters, digits, ".", "-", "_", at most 100. */
const REPO_NAME = /^[A-Za-z0-9._-]{1,100}$/;

/** What create_repo and get_git_token return for a GitHub repo (the same shape as our git server's). */
export type GitHubRemote = {
  name: string;
  host: 'github';
  owner: string;
  clone_url: string;
  git_remote: string;
  expires_at: string;
  push_command: string;
  created: boolean;
};

/** GitHub repos reached through the caller's installation of our App. */
export class GitHubRepos {
  private readonly db: Db;
  private readonly github: GitHubApp | undefined;

  constructor(db: Db, github: GitHubApp | undefined) {
    this.db = db;
    this.github = github;
  }

  /** The caller's GitHub standing (whoami). */
  status(userId: string) {
    return gitHubStatus(this.db, this.github, userId);
  }

  /** Base URL of git on GitHub (https://github.com), when an App is configured. */
  get gitUrl(): string | undefined {
    return this.github?.settings.gitUrl;
  }

  /** The caller's installation; an actionable error when there is none. */
  private async installation(userId: string): Promise<Installation & { login: string }> {
    const status = await gitHubStatus(this.db, this.github, userId);
    if (status.state !== 'installed') throw gitHubUnavailable(status);
    return { ...status.installation, login: status.login };
  }

  private app(): GitHubApp {
    if (!this.github) throw invalidInput('GitHub is not configured on this server');
    return this.github;
  }

  /**
   * `ref` ("name" or "owner/name") as a repo the caller may build from: the App's installation
   * that covers it must be the caller's own. The same answer for a repo that does not exist and
   * one the caller has no right to.
   */
  async authorize(
    userId: string,
    ref: string,
  ): Promise<{ owner: string; name: string; installationId: number }> {
    const own = await this.installation(userId);
    const [owner, name] = ref.includes('/') ? (ref.split('/', 2) as [string, string]) : [own.login, ref];
    if (!REPO_NAME.test(name) || !/^[A-Za-z0-9-]{1,39}$/.test(owner))
      throw invalidInput(`"${ref}" is not a GitHub repository name ("owner/name")`);
    const found = await this.app().installationOfRepo(owner, name).catch(apiFailure);
    if (!found || found.id !== own.id || found.accountLogin !== own.login)
      throw notFound(
        `GitHub repo "${owner}/${name}" in your installation (on "${own.login}")`,
        'Create it with create_repo(host: "github"), or add it to the App installation on GitHub.',
      );
    return { owner: owner.toLowerCase(), name: name.toLowerCase(), installationId: own.id };
  }

  /** The caller's row for a GitHub repo (made on first use; one user per GitHub repo). */
  async row(userId: string, owner: string, name: string, description?: string): Promise<Repo> {
    const where = { host_ownerName_name: { host: 'github', ownerName: owner, name } };
    const existing = await this.db.repo.findUnique({ where });
    if (existing && existing.userId !== userId)
      throw conflict(`GitHub repo ${owner}/${name} is connected to another account on this server`);
    if (existing) return existing;
    try {
      return await this.db.repo.create({
        data: { userId, host: 'github', ownerName: owner, name, description: description ?? null },
      });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      return this.row(userId, owner, name, description);
    }
  }

  /**
   * Creates `name` through the caller's installation (GitHub lets an App create repositories in
   * organizations only: in a personal account it needs the person's own token). Calling again
   * for a repo that exists in the installation returns it with `created: false`.
   */
  async create(userId: string, name: string, description?: string): Promise<GitHubRemote> {
    if (!REPO_NAME.test(name)) throw invalidInput(`"${name}" is not a valid GitHub repository name`);
    const own = await this.installation(userId);
    const app = this.app();
    let created = false;
    if (!(await app.installationOfRepo(own.login, name).catch(apiFailure))) {
      if (own.accountType !== 'Organization')
        throw invalidInput(
          `GitHub lets an App create repositories only in organizations, and "${own.login}" is a personal ` +
            `account: create ${own.login}/${name} on GitHub, give the App access to it, then call get_git_token`,
        );
      // The repo does not exist yet, so this token cannot name it: it carries administration only.
      const { token } = await app.mintToken(own.id, { permissions: { administration: 'write' } });
      await app
        .client(token)
        .request('POST /orgs/{org}/repos', { org: own.login, name, private: true, description })
        .catch(apiFailure);
      created = true;
    }
    await this.row(userId, own.login, name.toLowerCase(), description);
    return { ...(await this.remote(userId, `${own.login}/${name}`)), created };
  }

  /** A push-and-pull remote for one repo: a fresh token for that repo alone, contents:write, ≤ 1 h. */
  async remote(userId: string, ref: string): Promise<GitHubRemote> {
    const { owner, name, installationId } = await this.authorize(userId, ref);
    await this.row(userId, owner, name);
    const app = this.app();
    const { token, expiresAt } = await app
      .mintToken(installationId, { repo: name, permissions: { contents: 'write' } })
      .catch(apiFailure);
    const url = new URL(app.cloneUrl(owner, name));
    url.username = 'x-access-token';
    url.password = token;
    return {
      name,
      host: 'github',
      owner,
      clone_url: app.cloneUrl(owner, name),
      git_remote: url.href,
      expires_at: expiresAt.toISOString(),
      push_command: `git push '${url.href}' HEAD:refs/heads/main`,
      created: false,
    };
  }
}

/** GitHub's refusals become messages an agent can act on; its outages stay server faults. */
function apiFailure(err: unknown): never {
  if (err instanceof GitHubApiError && err.status >= 400 && err.status < 500)
    throw new DomainError(err.status === 404 ? 'not_found' : 'invalid_input', err.message);
  throw err;
}
