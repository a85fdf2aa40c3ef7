import * as cloudflare from '@pulumi/cloudflare';
import * as hcloud from '@pulumi/hcloud';
import type * as pulumi from '@pulumi/pulumi';
import type { RegisteredNode } from '../cluster/node-pools.ts';
import type { PlatformConfig } from '../config.ts';
import { edge } from './cloudflare.ts';
import { firewalls } from './firewalls.ts';
import { k3s, registryHost } from './k3s.ts';
import { privateNetwork } from './network.ts';
import { type Node, servers } from './servers.ts';

export type CloudLayer = {
  nodes: Node[];
  /** Admin kubeconfig of the new cluster (a secret). */
  kubeconfig: pulumi.Output<string>;
  /** host:port of the registry on the private network. */
  registryHost: string;
  loadBalancer: cloudflare.LoadBalancer;
  /** Every node by its Kubernetes name and pool, and the join it registers in (the layer patches it after). */
  poolNodes: RegisteredNode[];
  /** Every server's public IPv4 and IPv6 address: build steps may not reach them (cluster/buildkit.ts). */
  publicAddresses: pulumi.Output<string>[];
};

/** Hetzner (network, firewalls, servers), Cloudflare (load balancer, DNS) and k3s on the servers. */
export function cloudLayer(config: PlatformConfig): CloudLayer {
  // Explicit providers: the tokens come from this stack's config, never from the environment.
  const hetzner = { provider: new hcloud.Provider('hetzner', { token: config.hcloudToken }) };
  const cf = { provider: new cloudflare.Provider('cloudflare', { apiToken: config.cloudflareToken }) };
  const net = privateNetwork(config, hetzner);
  const walls = Object.values(firewalls(config, hetzner));
  const nodes = servers(config, net, walls, hetzner);
  const loadBalancer = edge(config, nodes, cf);
  const cluster = k3s(config, nodes);
  return {
    nodes,
    kubeconfig: cluster.kubeconfig,
    registryHost: registryHost(nodes),
    loadBalancer,
    poolNodes: nodes.map((n) => ({ name: n.name, pool: n.pool, registered: cluster.joinOf.get(n) })),
    publicAddresses: nodes.flatMap((n) => [n.publicIp, n.publicIpv6]),
  };
}
