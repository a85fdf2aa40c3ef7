import type { Repo } from '../db/client.ts';

/** The repo fields a source needs. */
export type SourceRepo = Pick<Repo, 'id' | 'userId' | 'host' | 'ownerName' | 'name'>;

/** A commit a branch or sha names, with its subject line (for list_deployments). */
export type Commit = { sha: string; subject: string | null };

/**
 * What the build needs to fetch one repo: the URL and HTTP Basic credentials, valid for that
 * repo alone and only a short while. It lives in the activity that clones and is never
 * returned from it, logged or written anywhere.
 */
export type PullCredential = { url: string; username: string; password: string; expiresAt: Date };

/** Where a service's code comes from: our git server or GitHub. */
export interface RepoSource {
  /** The commit `ref` (a branch or a sha) names; an actionable error when there is none. */
  commit(repo: SourceRepo, ref: string): Promise<Commit>;
  /** A fresh read-only credential for `repo`, minted for this one clone. */
  pullCredential(repo: SourceRepo): Promise<PullCredential>;
}

/** Picks the source of each repo by its host. */
export class RepoSources {
  private readonly sources: { internal: RepoSource; github?: RepoSource | undefined };

  constructor(sources: { internal: RepoSource; github?: RepoSource | undefined }) {
    this.sources = sources;
  }

  for(repo: Pick<Repo, 'host'>): RepoSource {
    const source = repo.host === 'github' ? this.sources.github : this.sources.internal;
    if (!source) throw new Error(`no repo source for host "${repo.host}" (is the GitHub App configured?)`);
    return source;
  }
}
