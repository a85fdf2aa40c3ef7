import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import {
  DEPLOYER_ROLE,
  DEPLOYER_WORKER_POD_LABELS,
  deployerAccessManifests,
  deployerPolicy,
  inClusterKubeconfig,
  type ServiceAccountRef,
  TENANT_ROLE,
} from '../../tenant-stacks/kubernetes/deployer-access.ts';
import { INGRESS_CLASS, INGRESS_NAMESPACE, onPool, SYSTEM_NAMESPACE } from './placement.ts';

export type DeployerArgs = {
  image: string;
  appsDomain: string;
  registryHost: string;
  buildkitAddress: string;
  /** false: only the deployer's access (for a deployer outside the cluster), no Deployments. */
  run?: boolean;
  /** A one-node cluster (placement on its node). */
  singleNode?: unknown;
};

/** The Secret the SRE makes with the rest of the product's settings (database, master key, Temporal). */
export const DEPLOYER_ENV_SECRET = 'deployer-env';
const KUBECONFIG_DIR = '/etc/deploy-mcp/kube';
/** The identity the deployer-worker runs as: tenants' namespaces only (deployer-access.ts). */
export const DEPLOYER_SERVICE_ACCOUNT: ServiceAccountRef = { namespace: SYSTEM_NAMESPACE, name: 'deployer' };

/** Environment both roles share: the `kubernetes` runtime, configured from this program. */
export function runtimeEnv(args: DeployerArgs) {
  return [
    { name: 'DEPLOY_MCP_RUNTIME', value: 'kubernetes' },
    { name: 'DEPLOY_MCP_KUBECONFIG', value: `${KUBECONFIG_DIR}/config` },
    { name: 'DEPLOY_MCP_INGRESS_CLASS', value: INGRESS_CLASS },
    { name: 'DEPLOY_MCP_INGRESS_NAMESPACE', value: INGRESS_NAMESPACE },
    { name: 'DEPLOY_MCP_APPS_DOMAIN', value: args.appsDomain },
    { name: 'DEPLOY_MCP_REGISTRY', value: args.registryHost },
    { name: 'DEPLOY_MCP_BUILDKIT_ADDRESS', value: args.buildkitAddress },
    {
      name: 'DEPLOY_MCP_KUBERNETES_SERVICE_ACCOUNT',
      value: `${DEPLOYER_SERVICE_ACCOUNT.namespace}/${DEPLOYER_SERVICE_ACCOUNT.name}`,
    },
  ];
}

/**
 * The deployer's narrow access (deployer-access.ts), the same objects the cluster tests apply:
 * its ServiceAccount, the two roles, the binding and the admission policy. No admin credential
 * reaches its pods: the worker uses its projected ServiceAccount token.
 */
function deployerAccess(opts: pulumi.CustomResourceOptions) {
  const [sa, tenantRole, deployerRole, binding, policy, policyBinding] = deployerAccessManifests(
    DEPLOYER_SERVICE_ACCOUNT,
  ) as [
    k8s.core.v1.ServiceAccountArgs,
    k8s.rbac.v1.ClusterRoleArgs,
    k8s.rbac.v1.ClusterRoleArgs,
    k8s.rbac.v1.ClusterRoleBindingArgs,
    k8s.admissionregistration.v1.ValidatingAdmissionPolicyArgs,
    k8s.admissionregistration.v1.ValidatingAdmissionPolicyBindingArgs,
  ];
  const account = new k8s.core.v1.ServiceAccount('deployer', sa, opts);
  const roles = [
    new k8s.rbac.v1.ClusterRole(TENANT_ROLE, tenantRole, opts),
    new k8s.rbac.v1.ClusterRole(DEPLOYER_ROLE, deployerRole, opts),
  ];
  const policyName = deployerPolicy(DEPLOYER_SERVICE_ACCOUNT).metadata.name;
  const admission = new k8s.admissionregistration.v1.ValidatingAdmissionPolicy(policyName, policy, opts);
  return [
    account,
    ...roles,
    new k8s.rbac.v1.ClusterRoleBinding(DEPLOYER_ROLE, binding, { ...opts, dependsOn: [account, ...roles] }),
    admission,
    new k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(policyName, policyBinding, {
      ...opts,
      dependsOn: [admission],
    }),
  ];
}

/**
 * deployer-server (webhooks, /healthz) and deployer-worker (builds and stack updates) on the ops
 * pool. Only the worker talks to the cluster, as the deployer ServiceAccount, with a kubeconfig
 * that names the token file (it holds no credential: a ConfigMap).
 */
export function deployer(args: DeployerArgs, opts: pulumi.CustomResourceOptions): k8s.apps.v1.Deployment[] {
  const access = deployerAccess(opts);
  if (args.run === false) return [];
  const kubeconfig = new k8s.core.v1.ConfigMap(
    'deployer-kubeconfig',
    {
      metadata: { name: 'deployer-kubeconfig', namespace: SYSTEM_NAMESPACE },
      data: { config: inClusterKubeconfig() },
    },
    opts,
  );
  return (['deployer-server', 'deployer-worker'] as const).map((role) => {
    const worker = role === 'deployer-worker';
    // Tenants' ingress policies let the worker's pods in by these labels (deployer-access.ts).
    const labels = worker ? { ...DEPLOYER_WORKER_POD_LABELS } : { app: role };
    return new k8s.apps.v1.Deployment(
      role,
      {
        metadata: { name: role, namespace: SYSTEM_NAMESPACE, labels },
        spec: {
          replicas: 1,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              ...onPool('ops', args.singleNode),
              ...(worker
                ? { serviceAccountName: DEPLOYER_SERVICE_ACCOUNT.name, automountServiceAccountToken: true }
                : { automountServiceAccountToken: false }),
              containers: [
                {
                  name: role,
                  image: args.image,
                  args: ['serve', '--role', role],
                  env: runtimeEnv(args),
                  envFrom: [{ secretRef: { name: DEPLOYER_ENV_SECRET } }],
                  volumeMounts: [{ name: 'kubeconfig', mountPath: KUBECONFIG_DIR, readOnly: true }],
                  securityContext: { allowPrivilegeEscalation: false, runAsNonRoot: true, runAsUser: 10001 },
                },
              ],
              volumes: [{ name: 'kubeconfig', configMap: { name: kubeconfig.metadata.name } }],
            },
          },
        },
      },
      worker ? { ...opts, dependsOn: [...access, kubeconfig] } : opts,
    );
  });
}
