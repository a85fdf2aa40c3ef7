import type * as pulumi from '@pulumi/pulumi';
import { cloudLayer } from './cloud/index.ts';
import { clusterLayer } from './cluster/index.ts';
import type { PlatformConfig } from './config.ts';

/** What the product's `kubernetes` runtime is configured with (DEPLOY_MCP_KUBECONFIG & co., see .env.example). */
export type PlatformOutputs = {
  kubeconfig: pulumi.Output<string>;
  ingressClass: string;
  ingressNamespace: string;
  appsDomain: string;
  registryHost: string;
  /** DEPLOY_MCP_K8S_NODE_CIDR and DEPLOY_MCP_K8S_POD_CIDR: tenants admit the host-network Traefik from the nodes. */
  nodeCidr: string | undefined;
  podCidr: string | undefined;
};

/** The whole cluster as one program: the cloud layer, then the in-cluster layer on its kubeconfig. */
export function platformProgram(config: PlatformConfig): () => Promise<PlatformOutputs> {
  return async () => {
    const cloud = cloudLayer(config);
    const cluster = clusterLayer(config, cloud);
    return {
      kubeconfig: cloud.kubeconfig,
      ingressClass: cluster.ingressClass,
      ingressNamespace: cluster.ingressNamespace,
      appsDomain: config.appsDomain,
      registryHost: cloud.registryHost,
      nodeCidr: cluster.nodeCidr,
      podCidr: cluster.podCidr,
    };
  };
}
