import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import type { SingleNodeConfig } from '../config.ts';
import {
  DEPLOYER_ENV_SECRET,
  DEPLOYER_KUBECONFIG,
  DEPLOYER_SECURITY_CONTEXT,
  KUBECONFIG_DIR,
  runtimeEnv,
} from './deployer.ts';
import { onPool, SYSTEM_NAMESPACE } from './placement.ts';
import { REGISTRY_DEPLOYMENT } from './registry.ts';

/** The job's identity: it may patch the registry Deployment (a restart), nothing else. */
export const REGISTRY_CLEANUP_ACCOUNT = 'registry-cleanup';

/**
 * The clean-up job's ServiceAccount and its one permission: `patch` on the registry Deployment
 * (by name; the rollout restart sets the pod template's annotation, and a no-op patch answers the
 * Deployment's status while it waits: no get, list or watch, nothing on other objects).
 */
function cleanupAccess(opts: pulumi.CustomResourceOptions) {
  const metadata = { name: REGISTRY_CLEANUP_ACCOUNT, namespace: SYSTEM_NAMESPACE };
  const account = new k8s.core.v1.ServiceAccount(
    REGISTRY_CLEANUP_ACCOUNT,
    { metadata, automountServiceAccountToken: false },
    opts,
  );
  const role = new k8s.rbac.v1.Role(
    REGISTRY_CLEANUP_ACCOUNT,
    {
      metadata,
      rules: [
        {
          apiGroups: ['apps'],
          resources: ['deployments'],
          resourceNames: [REGISTRY_DEPLOYMENT],
          verbs: ['patch'],
        },
      ],
    },
    opts,
  );
  const binding = new k8s.rbac.v1.RoleBinding(
    REGISTRY_CLEANUP_ACCOUNT,
    {
      metadata,
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: REGISTRY_CLEANUP_ACCOUNT },
      subjects: [{ kind: 'ServiceAccount', name: REGISTRY_CLEANUP_ACCOUNT, namespace: SYSTEM_NAMESPACE }],
    },
    { ...opts, dependsOn: [account, role] },
  );
  return [account, role, binding];
}

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
 * any a release still needs for a rollback), then restart the registry so that it collects the
 * blobs before it serves again, while no build pushes (the maintenance lock, held exclusively).
 * The product owns the list (its release rows), so the job runs the deploy-mcp image.
 */
export function registryCleanup(
  args: RegistryCleanupArgs,
  opts: pulumi.CustomResourceOptions,
): k8s.batch.v1.CronJob {
  const access = cleanupAccess(opts);
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
                // Its own token (the registry's restart, cleanupAccess); the deployer's
                // kubeconfig ConfigMap names the token file and the API server.
                serviceAccountName: REGISTRY_CLEANUP_ACCOUNT,
                automountServiceAccountToken: true,
                containers: [
                  {
                    name: 'registry-cleanup',
                    image: args.image,
                    // Prune the manifests, then restart the registry (its garbage collection runs
                    // before it serves: registry.ts) under the maintenance lock's exclusive side.
                    args: [
                      'registry',
                      'prune',
                      '--keep',
                      String(args.keepImagesPerService),
                      '--restart-registry',
                      `${SYSTEM_NAMESPACE}/${REGISTRY_DEPLOYMENT}`,
                    ],
                    // The deployer's settings (kubernetes runtime, registry, database): the CLI
                    // reads the same configuration.
                    env: runtimeEnv(args),
                    envFrom: [{ secretRef: { name: DEPLOYER_ENV_SECRET } }],
                    volumeMounts: [
                      { name: 'data', mountPath: '/app/.data' },
                      { name: 'kubeconfig', mountPath: KUBECONFIG_DIR, readOnly: true },
                    ],
                    securityContext: DEPLOYER_SECURITY_CONTEXT,
                  },
                ],
                volumes: [
                  { name: 'data', emptyDir: {} },
                  { name: 'kubeconfig', configMap: { name: DEPLOYER_KUBECONFIG } },
                ],
              },
            },
          },
        },
      },
    },
    // After its access (which comes after the namespaces, as every object here).
    { ...opts, dependsOn: access },
  );
}
