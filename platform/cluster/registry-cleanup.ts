import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import { DEPLOYER_ENV_SECRET } from './deployer.ts';
import { onPool, SYSTEM_NAMESPACE } from './placement.ts';

export type RegistryCleanupArgs = {
  image: string;
  registryHost: string;
  keepImagesPerService: number;
  /** A one-node cluster (placement on its node). */
  singleNode?: unknown;
};

/**
 * Nightly: per service, delete all but the newest N images the product's releases name (and keep
 * any a release still needs for a rollback), then let the registry collect the blobs. The product
 * owns the list (its release rows), so the job runs the deploy-mcp image.
 */
export function registryCleanup(
  args: RegistryCleanupArgs,
  opts: pulumi.CustomResourceOptions,
): k8s.batch.v1.CronJob {
  return new k8s.batch.v1.CronJob(
    'registry-cleanup',
    {
      metadata: { name: 'registry-cleanup', namespace: SYSTEM_NAMESPACE },
      spec: {
        schedule: '17 3 * * *',
        concurrencyPolicy: 'Forbid',
        successfulJobsHistoryLimit: 3,
        failedJobsHistoryLimit: 3,
        jobTemplate: {
          spec: {
            backoffLimit: 1,
            template: {
              // The registry's NetworkPolicy lets pods with this label in (system-policies.ts).
              metadata: { labels: { app: 'registry-cleanup' } },
              spec: {
                ...onPool('ops', args.singleNode),
                restartPolicy: 'Never',
                automountServiceAccountToken: false,
                containers: [
                  {
                    name: 'registry-cleanup',
                    image: args.image,
                    args: ['registry', 'prune', '--keep', String(args.keepImagesPerService)],
                    env: [{ name: 'DEPLOY_MCP_REGISTRY', value: args.registryHost }],
                    envFrom: [{ secretRef: { name: DEPLOYER_ENV_SECRET } }],
                  },
                ],
              },
            },
          },
        },
      },
    },
    opts,
  );
}
