import fs from 'node:fs';
import { App } from '@octokit/app';
import { Octokit } from '@octokit/core';
import type { GitHubSettings } from '../config.ts';

/** An installation of our App: the account (user or organization) it was installed on. */
export type Installation = { id: number; accountLogin: string; accountType: string };

/** What one installation token may do; each names the least the caller needs. */
export type TokenPermissions = Partial<Record<'contents' | 'administration' | 'metadata', 'read' | 'write'>>;

export type InstallationToken = { token: string; expiresAt: Date };

/** GitHub's longest installation-token lifetime; a longer answer is refused, not trusted. */
export const MAX_TOKEN_LIFETIME_MS = 3_600_000;

/** A GitHub API answer we act on (its HTTP status and GitHub's message, never a token). */
export class GitHubApiError extends Error {
  override name = 'GitHubApiError';
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * Our GitHub App, through `@octokit/app`: the App's own requests are signed with its JWT; every
 * repository request runs with an installation token minted for that one use, narrowed to one
 * repository and the one permission it needs, and dropped afterwards (nothing caches or stores
 * them: `@octokit/app`'s own token cache is never used, because we never call
 * `getInstallationOctokit`).
 */
export class GitHubApp {
  private readonly app: App;
  private readonly Client: typeof Octokit;

  readonly settings: GitHubSettings;

  constructor(settings: GitHubSettings, privateKey: string) {
    this.settings = settings;
    this.Client = Octokit.defaults({ baseUrl: settings.apiUrl });
    this.app = new App({ appId: settings.appId, privateKey, Octokit: this.Client });
  }

  /** The App as configured; the private key is read from its file here, once. */
  static fromSettings(settings: GitHubSettings): GitHubApp {
    return new GitHubApp(settings, fs.readFileSync(settings.privateKeyFile, 'utf8'));
  }

  /** HTTPS clone URL of a repository (no credentials in it). */
  cloneUrl(owner: string, name: string): string {
    return `${this.settings.gitUrl}/${owner}/${name}.git`;
  }

  /** The installation on `login` (a user or an organization); null when the App is not installed there. */
  async installationOn(login: string): Promise<Installation | null> {
    for (const route of ['GET /users/{username}/installation', 'GET /orgs/{org}/installation'] as const) {
      const found = await this.appRequest(route, { username: login, org: login });
      if (found) return installation(found);
    }
    return null;
  }

  /** The installation that covers `owner/name`; null when none does (or the repo does not exist). */
  async installationOfRepo(owner: string, name: string): Promise<Installation | null> {
    const found = await this.appRequest('GET /repos/{owner}/{repo}/installation', { owner, repo: name });
    return found ? installation(found) : null;
  }

  /** Installation `id`; null when it no longer exists. */
  async installationById(id: number): Promise<Installation | null> {
    const found = await this.appRequest('GET /app/installations/{installation_id}', { installation_id: id });
    return found ? installation(found) : null;
  }

  /**
   * Mints an installation token for one use: narrowed to `repo` (when given; a repo that does
   * not exist yet cannot be named) and to `permissions`. GitHub caps it at one hour; a longer
   * lifetime in the answer is refused.
   */
  async mintToken(
    installationId: number,
    o: { repo?: string; permissions: TokenPermissions },
  ): Promise<InstallationToken> {
    const res = await this.app.octokit
      .request('POST /app/installations/{installation_id}/access_tokens', {
        installation_id: installationId,
        ...(o.repo ? { repositories: [o.repo] } : {}),
        permissions: o.permissions,
      })
      .catch(rethrow);
    const expiresAt = new Date(res.data.expires_at);
    if (!(expiresAt.getTime() <= Date.now() + MAX_TOKEN_LIFETIME_MS + 60_000))
      throw new GitHubApiError(502, 'GitHub returned an installation token that outlives one hour');
    return { token: res.data.token, expiresAt };
  }

  /** An Octokit that authenticates with one installation token (for one request or a few). */
  client(token: string): Octokit {
    return new this.Client({ auth: token });
  }

  /** A JWT-signed App request; 404 becomes null. */
  private async appRequest(route: string, params: Record<string, unknown>) {
    try {
      const res = await this.app.octokit.request(route, params);
      return res.data as { id: number; account: { login: string; type?: string } | null };
    } catch (err) {
      if ((err as { status?: number }).status === 404) return null;
      return rethrow(err);
    }
  }
}

function installation(data: { id: number; account: { login: string; type?: string } | null }): Installation {
  return {
    id: data.id,
    accountLogin: (data.account?.login ?? '').toLowerCase(),
    accountType: data.account?.type ?? 'User',
  };
}

/** Octokit's RequestError carries the request (with its Authorization header): keep only status and message. */
export function rethrow(err: unknown): never {
  const status = (err as { status?: number }).status;
  if (typeof status === 'number') {
    const message = (err as { response?: { data?: { message?: string } } }).response?.data?.message;
    throw new GitHubApiError(status, `GitHub answered ${status}${message ? `: ${message}` : ''}`);
  }
  throw err;
}
