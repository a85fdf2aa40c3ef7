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
import type { SingleNodeConfig } from '../config.ts';
import { DEPLOYER_UID } from '../local/deployer-image.ts';
import { K3S_POD_CIDR, PRIVATE_NETWORK } from '../pools.ts';
import { DEPLOYER_PORTS, deployerRoutes, publicEnv } from './deployer-routes.ts';
import { INGRESS_CLASS, INGRESS_NAMESPACE, onPool, SYSTEM_NAMESPACE } from './placement.ts';

export type DeployerArgs = {
  image: string;
  appsDomain: string;
  registryHost: string;
  buildkitAddress: string;
  /** false: only the deployer's access (for a deployer outside the cluster), no Deployments. */
  run?: boolean;
  /** A one-node cluster: placement on its node, the host network, state under its state dir. */
  singleNode?: SingleNodeConfig;
  /** Off one node: the product's names under it reach the deployer-server (deployer-routes.ts). */
  domain?: string;
  /** The product names' certificate is issued (cert-manager.ts): the Ingress serves it. */
  certificate?: boolean;
};

/** The Secret the SRE makes with the rest of the product's settings (database, master key, Temporal). */
export const DEPLOYER_ENV_SECRET = 'deployer-env';
export const KUBECONFIG_DIR = '/etc/deploy-mcp/kube';
/** The ConfigMap of the in-cluster kubeconfig (it names the pod's ServiceAccount token file). */
export const DEPLOYER_KUBECONFIG = 'deployer-kubeconfig';
/** Every container of the deployer's image (its roles, the clean-up job): that uid, no privilege. */
export const DEPLOYER_SECURITY_CONTEXT = {
  allowPrivilegeEscalation: false,
  runAsNonRoot: true,
  runAsUser: DEPLOYER_UID,
  runAsGroup: DEPLOYER_UID,
  capabilities: { drop: ['ALL'] },
};
/**
 * Each role's node-local state, mounted at the image's `/app/.data` (the product's data dir is
 * `state/` in it; tenant stacks' work dirs go beside it): the server's git repositories (the
 * worker clones them over HTTP from the server, as split roles always do) and the worker's
 * Pulumi work dirs (its stack state too, unless DEPLOY_MCP_PULUMI_BACKEND_URL names a shared
 * backend in `deployer-env`).
 */
const DATA_MOUNT = '/app/.data';
/** What each Deployment runs: the front door (MCP, git, OAuth), the product's workflows and webhooks; builds and stack updates. */
export const DEPLOYER_ROLES = {
  'deployer-server': 'server,worker,deployer-server',
  'deployer-worker': 'deployer-worker',
} as const;
/** The identity the deployer-worker runs as: tenants' namespaces only (deployer-access.ts). */
export const DEPLOYER_SERVICE_ACCOUNT: ServiceAccountRef = { namespace: SYSTEM_NAMESPACE, name: 'deployer' };

/** Environment both roles share: the `kubernetes` runtime, configured from this program. */
export function runtimeEnv(args: Omit<DeployerArgs, 'image'>) {
  return [
    { name: 'DEPLOY_MCP_RUNTIME', value: 'kubernetes' },
    { name: 'DEPLOY_MCP_DATA_DIR', value: `${DATA_MOUNT}/state` },
    // The pod network reaches the pod's address; on one node the host network's loopback only.
    { name: 'DEPLOY_MCP_HOST', value: args.singleNode ? args.singleNode.bindAddress : '0.0.0.0' },
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
    // Tenants' pods admit the host-network Traefik from the nodes' addresses (not the pods').
    ...(args.singleNode
      ? []
      : [
          { name: 'DEPLOY_MCP_K8S_NODE_CIDR', value: PRIVATE_NETWORK },
          { name: 'DEPLOY_MCP_K8S_POD_CIDR', value: K3S_POD_CIDR },
        ]),
    // On one node (host network) the ports come from the Secret, clear of the machine's others.
    ...(args.singleNode ? [] : publicEnv(args.domain)),
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
 * deployer-server (MCP and git, the product's workflows, webhooks, /healthz: DEPLOYER_ROLES) and
 * deployer-worker (builds and stack updates) on the ops pool. Only the worker talks to the cluster, as the deployer ServiceAccount, with a kubeconfig
 * that names the token file (it holds no credential: a ConfigMap).
 */
export function deployer(args: DeployerArgs, opts: pulumi.CustomResourceOptions): k8s.apps.v1.Deployment[] {
  const access = deployerAccess(opts);
  if (args.run === false) return [];
  const kubeconfig = new k8s.core.v1.ConfigMap(
    DEPLOYER_KUBECONFIG,
    {
      metadata: { name: DEPLOYER_KUBECONFIG, namespace: SYSTEM_NAMESPACE },
      // On one node the kubernetes Service's address is not routed: the API server's own.
      data: {
        config: inClusterKubeconfig(
          args.singleNode
            ? `https://${args.singleNode.apiServer.host}:${args.singleNode.apiServer.port}`
            : undefined,
        ),
      },
    },
    opts,
  );
  if (!args.singleNode && args.domain)
    deployerRoutes(
      { domain: args.domain, tls: args.certificate === true, selector: { app: 'deployer-server' } },
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
          // One writer of a node-local data dir: never two at once.
          strategy: { type: 'Recreate' },
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              ...onPool('ops', args.singleNode),
              // One node: Temporal, the database and the API server are on the host's loopback.
              ...(args.singleNode ? { hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' } : {}),
              // The node-local dir is made by the kubelet as root: hand it to the image's user.
              initContainers: [
                {
                  name: 'data-owner',
                  image: args.image,
                  command: ['chown', `${DEPLOYER_UID}:${DEPLOYER_UID}`, DATA_MOUNT],
                  volumeMounts: [{ name: 'data', mountPath: DATA_MOUNT }],
                  securityContext: {
                    runAsUser: 0,
                    runAsNonRoot: false,
                    allowPrivilegeEscalation: false,
                    capabilities: { drop: ['ALL'], add: ['CHOWN'] },
                  },
                },
              ],
              ...(worker
                ? { serviceAccountName: DEPLOYER_SERVICE_ACCOUNT.name, automountServiceAccountToken: true }
                : { automountServiceAccountToken: false }),
              containers: [
                {
                  name: role,
                  image: args.image,
                  args: ['serve', '--role', DEPLOYER_ROLES[role]],
                  env: runtimeEnv(args),
                  envFrom: [{ secretRef: { name: DEPLOYER_ENV_SECRET } }],
                  volumeMounts: [
                    { name: 'kubeconfig', mountPath: KUBECONFIG_DIR, readOnly: true },
                    { name: 'data', mountPath: DATA_MOUNT },
                  ],
                  // Ready once it answers (off one node, where its port is known here).
                  ...(worker || args.singleNode
                    ? {}
                    : {
                        readinessProbe: {
                          httpGet: { path: '/healthz', port: DEPLOYER_PORTS.server },
                          periodSeconds: 5,
                          failureThreshold: 3,
                        },
                      }),
                  securityContext: DEPLOYER_SECURITY_CONTEXT,
                },
              ],
              volumes: [
                { name: 'kubeconfig', configMap: { name: kubeconfig.metadata.name } },
                {
                  name: 'data',
                  hostPath: {
                    path: `${args.singleNode?.stateDir ?? '/var/lib/deploy-mcp'}/${role}`,
                    type: 'DirectoryOrCreate',
                  },
                },
              ],
            },
          },
        },
      },
      worker ? { ...opts, dependsOn: [...access, kubeconfig] } : opts,
    );
  });
}
