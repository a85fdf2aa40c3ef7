import { parseArgs } from 'node:util';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/client.ts';
import { invalidInput } from '../core/errors.ts';
import { pruneRegistry } from '../workers/deploy/registry-prune.ts';

export const REGISTRY_USAGE = 'registry prune [--keep N]';

/**
 * `deploy-mcp registry prune [--keep N]`: deletes the images no kept release needs, for every
 * service (deleted ones included), keeping each live service's newest N releases' images (default
 * DEPLOY_MCP_KEEP_RELEASES) and always the serving one. Safe while the server runs; the embedded
 * registry frees the space at its next start.
 */
export async function registry(config: Config, args: string[]): Promise<number> {
  const [action, ...rest] = args;
  if (action !== 'prune') throw invalidInput(`usage: deploy-mcp ${REGISTRY_USAGE}`);
  const { values } = parseArgs({ args: rest, options: { keep: { type: 'string' } } });
  const keep = values.keep === undefined ? config.disk.keepReleases : Number(values.keep);
  if (!Number.isInteger(keep) || keep < 1 || keep > 1000)
    throw invalidInput('--keep must be a whole number from 1 to 1000');
  const registryHost = config.runtime.external?.registryHost ?? `127.0.0.1:${config.runtime.registryPort}`;
  const db = await openDatabase(config.databaseUrl, { poolSize: 1 });
  try {
    const result = await pruneRegistry({ db: db.prisma, registryHost, keepReleases: keep });
    for (const ref of result.deleted) console.log(`deleted ${ref}`);
    console.log(
      `pruned ${result.deleted.length} image(s) from ${registryHost}, keeping each live service's newest ${keep} release(s)` +
        (result.skipped ? `; ${result.skipped} service(s) skipped while they deploy` : ''),
    );
    return 0;
  } finally {
    await db.close();
  }
}
