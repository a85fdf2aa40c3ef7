import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import { cidrContains, parseCidr } from '../../core/network/cidr.ts';
import { DEPLOYER_WORKER_POD_LABELS, type ServiceAccountRef, tenantRoleBinding } from './deployer-access.ts';
import { LABELS, tenantNamespace } from './names.ts';
import { clusterProvider, type KubernetesCluster } from './provider.ts';

/** What a tenant may use in all, summed over its pods (a ResourceQuota). */
export type TenantQuota = {
  requestsCpu: string;
  limitsCpu: string;
  requestsMemory: string;
  limitsMemory: string;
  pods: number;
};

/** The defaults of the product (issue 10). */
export const TENANT_QUOTA_DEFAULTS: TenantQuota = {
  requestsCpu: '40',
  limitsCpu: '40',
  requestsMemory: '40Gi',
  limitsMemory: '40Gi',
  pods: 200,
};

/** Requests and limits a container gets when it names none (a LimitRange). */
export type ContainerDefaults = {
  requestCpu: string;
  requestMemory: string;
  limitCpu: string;
  limitMemory: string;
};

/** A service's defaults (Service.cpuMillis 500, memoryMb 512), requesting a fifth of the CPU. */
export const CONTAINER_DEFAULTS: ContainerDefaults = {
  requestCpu: '100m',
  requestMemory: '512Mi',
  limitCpu: '500m',
  limitMemory: '512Mi',
};

/** A tenant's own objects, in a stack of their own (tenantStackName): made before its first service. */
export type KubernetesTenantSpec = {
  /** The cluster (the same one the tenant's service stacks use). */
  cluster: KubernetesCluster;
  /** The tenant's user id: names the namespace (tenantNamespace) and labels every object. */
  userId: string;
  /** Namespace of the ingress controller: the only one besides the tenant's own whose pods reach its apps. */
  ingressNamespace: string;
  /** Namespace of the cluster DNS, reachable on UDP and TCP 53 (default "kube-system"). */
  dnsNamespace?: string | undefined;
  /** Changes to TENANT_QUOTA_DEFAULTS. */
  quota?: Partial<TenantQuota> | undefined;
  /** Changes to CONTAINER_DEFAULTS. */
  containerDefaults?: Partial<ContainerDefaults> | undefined;
  /**
   * The ServiceAccount the deployer runs as, when it has the narrow access of
   * deployer-access.ts: the namespace gets a RoleBinding granting it the tenant role there.
   */
  deployer?: ServiceAccountRef | undefined;
  /**
   * The nodes' private network (CIDR), admitted too: an ingress controller on the host network
   * (the platform's Traefik DaemonSet) connects from node addresses, not from pods of its
   * namespace. Undefined: the namespace only.
   */
  nodeCidr?: string | undefined;
  /** The pod network, cut out of nodeCidr when it lies inside it (default k3s's, 10.42.0.0/16). */
  podCidr?: string | undefined;
};

/** k3s's default pod network. */
export const DEFAULT_POD_CIDR = '10.42.0.0/16';

/**
 * The ingress peer of the nodes' addresses: `nodeCidr` less the pod network, so tenants' pods
 * (other tenants among them) never match it. Throws when the pod network covers all of it.
 */
export function nodeIngressPeer(nodeCidr: string, podCidr = DEFAULT_POD_CIDR) {
  const node = parseCidr(nodeCidr);
  const pods = parseCidr(podCidr);
  if (!node) throw new Error(`not an IPv4 CIDR: ${nodeCidr}`);
  if (!pods) throw new Error(`not an IPv4 CIDR: ${podCidr}`);
  if (cidrContains(pods, node))
    throw new Error(`the node network ${nodeCidr} lies inside the pod network ${podCidr}`);
  return { ipBlock: { cidr: nodeCidr, ...(cidrContains(node, pods) ? { except: [podCidr] } : {}) } };
}

/** Where tenants' apps may not connect: private ranges (the cluster's own) and the metadata endpoint. */
export const EGRESS_DENIED_CIDRS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.169.254/32'];

/** Pod Security Admission at "restricted", enforced, audited and warned, at the newest rules. */
const POD_SECURITY_LABELS = {
  'pod-security.kubernetes.io/enforce': 'restricted',
  'pod-security.kubernetes.io/enforce-version': 'latest',
  'pod-security.kubernetes.io/audit': 'restricted',
  'pod-security.kubernetes.io/audit-version': 'latest',
  'pod-security.kubernetes.io/warn': 'restricted',
  'pod-security.kubernetes.io/warn-version': 'latest',
};

/**
 * The tenant stack program (a pure factory): the tenant's namespace with Pod Security
 * Admission at "restricted", a ResourceQuota, container defaults (a LimitRange, which the quota's
 * CPU and memory items require of every container) and NetworkPolicies: ingress only from the
 * ingress controller and the tenant's own pods; egress to cluster DNS, the tenant's own pods and
 * the public internet, never to private ranges or the metadata endpoint.
 */
export function kubernetesTenantProgram(spec: KubernetesTenantSpec): pulumi.automation.PulumiFn {
  return async () => {
    const provider = clusterProvider(spec.cluster);
    const quota = { ...TENANT_QUOTA_DEFAULTS, ...spec.quota };
    const defaults = { ...CONTAINER_DEFAULTS, ...spec.containerDefaults };
    const name = tenantNamespace(spec.userId);
    const labels = { [LABELS.user]: spec.userId };
    const metadata = { namespace: name, labels };

    const namespace = new k8s.core.v1.Namespace(
      'namespace',
      { metadata: { name, labels: { ...labels, ...POD_SECURITY_LABELS } } },
      { provider },
    );
    // Everything else lives in the namespace: created after it, deleted before it.
    const opts = { provider, dependsOn: [namespace] };

    if (spec.deployer) {
      const binding = tenantRoleBinding(name, spec.deployer);
      new k8s.rbac.v1.RoleBinding(
        'deployer',
        { ...binding, metadata: { ...binding.metadata, labels } },
        opts,
      );
    }

    new k8s.core.v1.ResourceQuota(
      'quota',
      {
        metadata: { ...metadata, name: 'tenant' },
        spec: {
          hard: {
            'requests.cpu': quota.requestsCpu,
            'limits.cpu': quota.limitsCpu,
            'requests.memory': quota.requestsMemory,
            'limits.memory': quota.limitsMemory,
            pods: String(quota.pods),
          },
        },
      },
      opts,
    );

    new k8s.core.v1.LimitRange(
      'container-defaults',
      {
        metadata: { ...metadata, name: 'container-defaults' },
        spec: {
          limits: [
            {
              type: 'Container',
              defaultRequest: { cpu: defaults.requestCpu, memory: defaults.requestMemory },
              default: { cpu: defaults.limitCpu, memory: defaults.limitMemory },
            },
          ],
        },
      },
      opts,
    );

    new k8s.networking.v1.NetworkPolicy(
      'ingress',
      {
        metadata: { ...metadata, name: 'tenant-ingress' },
        spec: {
          podSelector: {},
          policyTypes: ['Ingress'],
          ingress: [
            { from: [{ namespaceSelector: namespaceNamed(spec.ingressNamespace) }] },
            // A host-network ingress controller, from the nodes' addresses.
            ...(spec.nodeCidr ? [{ from: [nodeIngressPeer(spec.nodeCidr, spec.podCidr)] }] : []),
            { from: [{ podSelector: {} }] },
            // The deployer's worker asks a new release's pods their health path (runtimes/kubernetes.ts).
            ...(spec.deployer
              ? [
                  {
                    from: [
                      {
                        namespaceSelector: namespaceNamed(spec.deployer.namespace),
                        podSelector: { matchLabels: { ...DEPLOYER_WORKER_POD_LABELS } },
                      },
                    ],
                  },
                ]
              : []),
          ],
        },
      },
      opts,
    );

    new k8s.networking.v1.NetworkPolicy(
      'egress',
      {
        metadata: { ...metadata, name: 'tenant-egress' },
        spec: {
          podSelector: {},
          policyTypes: ['Egress'],
          egress: [
            {
              to: [{ namespaceSelector: namespaceNamed(spec.dnsNamespace ?? 'kube-system') }],
              ports: [
                { protocol: 'UDP', port: 53 },
                { protocol: 'TCP', port: 53 },
              ],
            },
            // The tenant's apps reach each other, as the ingress policy lets them.
            { to: [{ podSelector: {} }] },
            { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: EGRESS_DENIED_CIDRS } }] },
          ],
        },
      },
      opts,
    );

    return { namespace: namespace.metadata.name };
  };
}

/** Selects one namespace by the label the API server puts on every namespace. */
function namespaceNamed(name: string) {
  return { matchLabels: { 'kubernetes.io/metadata.name': name } };
}
