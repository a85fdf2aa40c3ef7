import { heartbeat } from '@temporalio/activity';
import { pruneRegistry } from '../deploy/registry-prune.ts';
import type { DeployDeps } from './deploy.ts';

/** Releases per live service whose images the registry keeps unless configured (DEPLOY_MCP_KEEP_RELEASES). */
export const DEFAULT_KEEP_RELEASES = 10;

/** The registry clean-up run after each deploy and delete (workers/deploy/registry-prune.ts). */
export function pruneActivities(deps: DeployDeps) {
  return {
    /** Deletes the images of `serviceId` that no kept release needs; returns how many went. */
    async pruneImages(serviceId: string): Promise<number> {
      heartbeat();
      const { deleted } = await pruneRegistry({
        db: deps.db,
        registryHost: deps.registryHost,
        keepReleases: deps.keepReleases ?? DEFAULT_KEEP_RELEASES,
        serviceIds: [serviceId],
      });
      return deleted.length;
    },

    /** pruneImages for a deployment's service (the deploy workflow knows deployment ids only). */
    async pruneDeploymentImages(deploymentId: string): Promise<number> {
      const { serviceId } = await deps.db.deployment.findUniqueOrThrow({
        where: { id: deploymentId },
        select: { serviceId: true },
      });
      const { deleted } = await pruneRegistry({
        db: deps.db,
        registryHost: deps.registryHost,
        keepReleases: deps.keepReleases ?? DEFAULT_KEEP_RELEASES,
        serviceIds: [serviceId],
      });
      return deleted.length;
    },
  };
}
