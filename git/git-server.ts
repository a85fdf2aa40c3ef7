import type { Db } from '../core/db/client.ts';
import type { Logger } from '../core/log.ts';
import { GitHosting } from './hosting.ts';
import { type RepoLimits, RepoStore } from './repo-store.ts';
import type { GitHttpDeps } from './smart-http.ts';

export type GitServerOptions = {
  db: Db;
  log: Logger;
  /** Directory of the bare repositories. */
  root: string;
  /** Base URL clients reach the git server at, e.g. "http://localhost:8081/git". */
  baseUrl: string;
  tokenTtlSeconds: number;
  maxReposPerUser: number;
  limits: RepoLimits;
  onDeployRequested?: (requestIds: string[]) => void;
};

/** The internal git server's parts: repo hosting for the tools and the smart-HTTP handler. */
export function createGitServer(o: GitServerOptions): {
  hosting: GitHosting;
  http: GitHttpDeps;
  store: RepoStore;
} {
  const store = new RepoStore(o.root, o.limits);
  return {
    store,
    hosting: new GitHosting({
      db: o.db,
      store,
      baseUrl: o.baseUrl,
      tokenTtlSeconds: o.tokenTtlSeconds,
      maxReposPerUser: o.maxReposPerUser,
    }),
    http: {
      db: o.db,
      store,
      log: o.log.child({ component: 'git' }),
      ...(o.onDeployRequested ? { onDeployRequested: o.onDeployRequested } : {}),
    },
  };
}
