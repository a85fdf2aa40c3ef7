import fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/client.ts';
import { isSqliteUrl } from '../core/db/sql-connection.ts';
import { invalidInput } from '../core/errors.ts';
import { clusterAccess, KubeClient } from '../core/kubernetes/client.ts';
import { pruneRegistry } from '../workers/deploy/registry-prune.ts';
import { restartRegistry } from '../workers/deploy/registry-restart.ts';

export const REGISTRY_USAGE = 'registry prune [--keep N] [--restart-registry <namespace>/<deployment>]';

/**
 * `deploy-mcp registry prune [--keep N]`: deletes the images no kept release needs, for every
 * service (deleted ones included), keeping each live service's newest N releases' images (default
 * DEPLOY_MCP_KEEP_RELEASES) and always the serving one. Safe while the server runs; the embedded
 * registry frees the space at its next start. With `--restart-registry` (the cluster's clean-up
 * job), the registry Deployment is then restarted under the maintenance lock so that it collects
 * the blobs before it serves again (workers/deploy/registry-restart.ts).
 */
export async function registry(config: Config, args: string[]): Promise<number> {
  const [action, ...rest] = args;
  if (action !== 'prune') throw invalidInput(`usage: deploy-mcp ${REGISTRY_USAGE}`);
  const { values } = parseArgs({
    args: rest,
    options: { keep: { type: 'string' }, 'restart-registry': { type: 'string' } },
  });
  const keep = values.keep === undefined ? config.disk.keepReleases : Number(values.keep);
  if (!Number.isInteger(keep) || keep < 1 || keep > 1000)
    throw invalidInput('--keep must be a whole number from 1 to 1000');
  const registryHost = config.runtime.external?.registryHost ?? `127.0.0.1:${config.runtime.registryPort}`;
  const restart = restartTarget(config, values['restart-registry']);
  const db = await openDatabase(config.databaseUrl, { poolSize: 1 });
  try {
    const result = await pruneRegistry({ db: db.prisma, registryHost, keepReleases: keep });
    for (const ref of result.deleted) console.log(`deleted ${ref}`);
    console.log(
      `pruned ${result.deleted.length} image(s) from ${registryHost}, keeping each live service's newest ${keep} release(s)` +
        (result.skipped ? `; ${result.skipped} service(s) skipped while they deploy` : ''),
    );
  } finally {
    await db.close();
  }
  if (restart) {
    const { lockWaitMs, restartMs } = await restartRegistry({
      ...restart,
      databaseUrl: config.databaseUrl,
      registryHost,
      log: (line) => console.log(line),
    });
    console.log(
      `restarted ${restart.namespace}/${restart.deployment} (its blobs collected) in ${Math.round(restartMs / 1000)} s, after ${Math.round(lockWaitMs / 1000)} s waiting for builds`,
    );
  }
  return 0;
}

/**
 * `--restart-registry ns/name` (the cluster's clean-up job): the registry Deployment to restart,
 * through the kubernetes runtime's kubeconfig. PostgreSQL only: the maintenance lock must be the
 * one the deployer's builds take (with SQLite the job would be a second process on its own file).
 */
function restartTarget(config: Config, target: string | undefined) {
  if (target === undefined) return undefined;
  const m = /^([a-z0-9-]{1,63})\/([a-z0-9-]{1,63})$/.exec(target);
  if (!m?.[1] || !m[2]) throw invalidInput('--restart-registry must be <namespace>/<deployment>');
  const k8s = config.runtime.kubernetes;
  if (!k8s) throw invalidInput('--restart-registry needs DEPLOY_MCP_RUNTIME=kubernetes (its kubeconfig)');
  if (isSqliteUrl(config.databaseUrl))
    throw invalidInput(
      "--restart-registry needs the deployer's PostgreSQL database (the lock its builds take)",
    );
  const kube = new KubeClient(clusterAccess(fs.readFileSync(k8s.kubeconfigPath, 'utf8'), k8s.context));
  return { kube, namespace: m[1], deployment: m[2] };
}
