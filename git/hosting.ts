import type { Caller } from '../core/api-keys.ts';
import type { Db } from '../core/db/client.ts';
import { invalidInput, notFound } from '../core/errors.ts';
import { ensureOwnerName } from './owner-names.ts';
import type { RepoStore } from './repo-store.ts';
import { issueGitToken } from './tokens.ts';

export type GitHostingOptions = {
  db: Db;
  store: RepoStore;
  /** Base URL of the git server, e.g. "http://localhost:8081/git". */
  baseUrl: string;
  /** Lifetime of tokens in issued remotes. */
  tokenTtlSeconds: number;
  /** Repositories one user may own. */
  maxReposPerUser: number;
};

export type GitRemote = {
  name: string;
  host: 'internal';
  owner: string;
  /** Clone URL without credentials. */
  clone_url: string;
  /** Clone URL with a fresh pull+push token as the password. */
  git_remote: string;
  expires_at: string;
  push_command: string;
  created: boolean;
};

/** Repos on our git server: creation (idempotent) and fresh, expiring remotes. */
export class GitHosting {
  private readonly o: GitHostingOptions;

  constructor(o: GitHostingOptions) {
    this.o = o;
  }

  async createRepo(caller: Caller, name: string, description: string | undefined): Promise<GitRemote> {
    const { db, store } = this.o;
    const owner = await ensureOwnerName(db, caller.userId);
    let repo = await db.repo.findUnique({
      where: { host_ownerName_name: { host: 'internal', ownerName: owner, name } },
    });
    const created = !repo;
    if (!repo) {
      const count = await db.repo.count({ where: { userId: caller.userId } });
      if (count >= this.o.maxReposPerUser) {
        throw invalidInput(
          `repo limit reached: you own ${count} repos (the limit is ${this.o.maxReposPerUser})`,
        );
      }
      await store.ensure(owner, name);
      try {
        repo = await db.repo.create({
          data: {
            userId: caller.userId,
            host: 'internal',
            ownerName: owner,
            name,
            description: description ?? null,
          },
        });
      } catch (err) {
        if ((err as { code?: string }).code !== 'P2002') throw err;
        // A concurrent create_repo for the same name won; use its row.
        repo = await db.repo.findUniqueOrThrow({
          where: { host_ownerName_name: { host: 'internal', ownerName: owner, name } },
        });
      }
    } else {
      await store.ensure(owner, name); // heal a row whose directory went missing
      if (description !== undefined && description !== repo.description) {
        repo = await db.repo.update({ where: { id: repo.id }, data: { description } });
      }
    }
    return this.remote(caller, repo.id, owner, name, created);
  }

  async remoteFor(caller: Caller, name: string): Promise<GitRemote> {
    const repo = await this.o.db.repo.findFirst({ where: { userId: caller.userId, host: 'internal', name } });
    if (!repo) throw notFound(`repo "${name}" on host "internal"`, 'Create it with create_repo.');
    return this.remote(caller, repo.id, repo.ownerName, name, false);
  }

  private async remote(caller: Caller, repoId: string, owner: string, name: string, created: boolean) {
    const { token, expiresAt } = await issueGitToken(this.o.db, {
      repoId,
      userId: caller.userId,
      scope: 'pull,push',
      ttlSeconds: this.o.tokenTtlSeconds,
    });
    const url = new URL(`${this.o.baseUrl}/${owner}/${name}.git`);
    const cloneUrl = url.href;
    url.username = owner;
    url.password = token;
    return {
      name,
      host: 'internal' as const,
      owner,
      clone_url: cloneUrl,
      git_remote: url.href,
      expires_at: expiresAt.toISOString(),
      push_command: `git push '${url.href}' HEAD:refs/heads/main`,
      created,
    };
  }
}
