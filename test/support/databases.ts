import path from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';
import { startTestPostgres, type TestPostgres } from './postgres.ts';
import { scratchDir } from './scratch.ts';

export type TestDatabases = {
  /** A new, empty database of this kind; returns its URL. */
  fresh: (name: string) => Promise<string>;
};

/**
 * Runs `body` once per product database: the embedded SQLite file and a real PostgreSQL
 * server started for this file. Each `fresh()` call gives an empty database.
 */
export function describeEachDatabase(title: string, body: (db: TestDatabases) => void) {
  describe.each(['sqlite', 'postgresql'] as const)(`${title} (%s)`, (dialect) => {
    let pg: TestPostgres | undefined;
    const scratch = scratchDir(`db-${dialect}`);
    let n = 0;
    beforeAll(async () => {
      if (dialect === 'postgresql') pg = await startTestPostgres();
    });
    afterAll(async () => {
      await pg?.stop();
      scratch.cleanup();
    });
    body({
      fresh: async (name) => {
        const unique = `${name}_${++n}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
        if (dialect === 'sqlite') return `file:${path.join(scratch.dir, `${unique}.db`)}`;
        if (!pg) throw new Error('postgres not started');
        return pg.createDatabase(unique);
      },
    });
  });
}
