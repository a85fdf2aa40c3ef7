import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import type { ClusterLayerConfig } from '../config.ts';
import { PRIVATE_NETWORK, REGISTRY_PORT } from '../pools.ts';
import { INGRESS_NAMESPACE, SYSTEM_NAMESPACE } from './placement.ts';

const byName = (name: string) => ({ matchLabels: { 'kubernetes.io/metadata.name': name } });
const app = (name: string) => ({ matchLabels: { app: name } });

/**
 * Defaults for the platform's own namespaces, so a mistake or a compromised pod there cannot
 * grow or open them:
 * - ResourceQuotas: a bound on pods (what the layer runs, with room for a rolling update and the
 *   clean-up job), and no LoadBalancer or NodePort Services (the edge is Traefik on the run
 *   nodes' host network; the registry uses a host port).
 * - NetworkPolicies in deploy-mcp-system: ingress denied by default; the registry answers the
 *   nodes (containerd pulls over the private network), BuildKit and the deployer-worker (pushes)
 *   and the clean-up job; the deployer-server answers the ingress controller (MCP, git, webhooks)
 *   and the deployer-worker (it clones over the server's git HTTP).
 *   BuildKit's own policy (buildkit.ts) lets only the deployer-worker in. Egress stays open: the
 *   product reaches its database, Temporal, the API server and GitHub; the node firewall
 *   (ansible/roles/firewall) blocks the metadata endpoint for every pod.
 * Traefik runs on the host network, where NetworkPolicies do not apply; its namespace gets the quota.
 */
export function systemPolicies(
  config: Pick<ClusterLayerConfig, 'pools'>,
  opts: pulumi.CustomResourceOptions,
): void {
  const quotas: [string, number][] = [
    // registry, two deployer roles, the clean-up job, one BuildKit per build node; doubled for rollouts.
    [SYSTEM_NAMESPACE, 2 * (4 + config.pools.build.count)],
    // One Traefik per run node, doubled for a rolling update.
    [INGRESS_NAMESPACE, 2 * config.pools.run.count],
  ];
  for (const [namespace, pods] of quotas)
    new k8s.core.v1.ResourceQuota(
      `${namespace}-quota`,
      {
        metadata: { name: 'platform-defaults', namespace },
        spec: { hard: { pods: String(pods), 'services.loadbalancers': '0', 'services.nodeports': '0' } },
      },
      opts,
    );

  const policy = (name: string, spec: k8s.types.input.networking.v1.NetworkPolicySpec) =>
    new k8s.networking.v1.NetworkPolicy(
      name,
      { metadata: { name, namespace: SYSTEM_NAMESPACE }, spec },
      opts,
    );
  policy('default-deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] });
  policy('registry-ingress', {
    podSelector: app('registry'),
    policyTypes: ['Ingress'],
    ingress: [
      {
        from: [
          { ipBlock: { cidr: PRIVATE_NETWORK } },
          { podSelector: app('buildkitd') },
          { podSelector: app('deployer-worker') },
          { podSelector: app('registry-cleanup') },
        ],
        ports: [{ protocol: 'TCP', port: REGISTRY_PORT }],
      },
    ],
  });
  policy('deployer-server-ingress', {
    podSelector: app('deployer-server'),
    policyTypes: ['Ingress'],
    // The ingress controller (MCP, git, webhooks): Traefik runs on the run nodes' host network,
    // so its connections come from a node's private address (the ipBlock; the pod network is
    // elsewhere, so tenants' pods are not in it), its namespace kept for a pod-network Traefik;
    // and the worker, which clones over the server's git HTTP.
    ingress: [
      {
        from: [
          { ipBlock: { cidr: PRIVATE_NETWORK } },
          { namespaceSelector: byName(INGRESS_NAMESPACE) },
          { podSelector: app('deployer-worker') },
        ],
      },
    ],
  });
}
