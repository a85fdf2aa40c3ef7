import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import type { SingleNodeConfig } from '../config.ts';
import { DEPLOYER_ENV_SECRET, DEPLOYER_SECURITY_CONTEXT, runtimeEnv } from './deployer.ts';
import { onPool, SYSTEM_NAMESPACE } from './placement.ts';

export type RegistryCleanupArgs = {
  image: string;
  registryHost: string;
  /** The runtime's settings the CLI checks at start (the same as the deployer's). */
  buildkitAddress: string;
  appsDomain: string;
  keepImagesPerService: number;
  /** A one-node cluster: placement on its node, the host network (the registry is on its loopback). */
  singleNode?: SingleNodeConfig;
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
                ...(args.singleNode ? { hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' } : {}),
                restartPolicy: 'Never',
                automountServiceAccountToken: false,
                containers: [
                  {
                    name: 'registry-cleanup',
                    image: args.image,
                    args: ['registry', 'prune', '--keep', String(args.keepImagesPerService)],
                    // The deployer's settings (kubernetes runtime, registry): the CLI reads the
                    // same configuration; it needs no cluster access (no token is mounted).
                    env: runtimeEnv(args),
                    envFrom: [{ secretRef: { name: DEPLOYER_ENV_SECRET } }],
                    volumeMounts: [{ name: 'data', mountPath: '/app/.data' }],
                    securityContext: DEPLOYER_SECURITY_CONTEXT,
                  },
                ],
                volumes: [{ name: 'data', emptyDir: {} }],
              },
            },
          },
        },
      },
    },
    opts,
  );
}
