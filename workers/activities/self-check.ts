import os from 'node:os';

export type SelfCheckDeps = {
  /** Throws when the product database cannot answer a query. */
  pingDatabase: () => Promise<void>;
};

export type SelfCheckReport = { database: 'ok'; worker: string; checkedAt: string };

export function createSelfCheckActivities(deps: SelfCheckDeps) {
  return {
    /** Proves a worker can reach the product database; used by `deploy-mcp doctor`. */
    async checkDatabase(): Promise<SelfCheckReport> {
      await deps.pingDatabase();
      return {
        database: 'ok',
        worker: `${os.hostname()}/${process.pid}`,
        checkedAt: new Date().toISOString(),
      };
    },
  };
}
