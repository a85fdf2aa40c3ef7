import * as hcloud from '@pulumi/hcloud';
import type * as pulumi from '@pulumi/pulumi';
import { type PlatformConfig, POOLS, type PoolName } from '../config.ts';
import { HCLOUD_POOL_LABEL, privateIp } from '../pools.ts';
import type { PrivateNetwork } from './network.ts';

export type Node = {
  pool: PoolName;
  name: string;
  server: hcloud.Server;
  privateIp: string;
  publicIp: pulumi.Output<string>;
  /** Its public IPv6 address (the first of its /64). */
  publicIpv6: pulumi.Output<string>;
};

/** The servers of every pool, each on the private network at its fixed address. */
export function servers(
  config: PlatformConfig,
  net: PrivateNetwork,
  firewalls: pulumi.Resource[],
  opts: pulumi.CustomResourceOptions,
): Node[] {
  const nodes: Node[] = [];
  for (const pool of POOLS) {
    for (let i = 0; i < config.pools[pool].count; i++) {
      const name = `${pool}-${i + 1}`;
      const ip = privateIp(pool, i);
      const server = new hcloud.Server(
        name,
        {
          name,
          serverType: config.pools[pool].serverType,
          image: config.image,
          location: config.location,
          sshKeys: config.sshKeys,
          labels: { 'deploy-mcp': 'platform', [HCLOUD_POOL_LABEL]: pool },
          networks: [{ networkId: net.networkId, ip }],
          publicNets: [{ ipv4Enabled: true, ipv6Enabled: true }],
          deleteProtection: pool === 'ctrl' || pool === 'ops',
          rebuildProtection: pool === 'ctrl' || pool === 'ops',
        },
        // Not before its subnet (or it gets no private address) nor before the firewalls that
        // select it by label (or it is briefly open).
        { ...opts, dependsOn: [net.cloudSubnet, ...firewalls] },
      );
      nodes.push({
        pool,
        name,
        server,
        privateIp: ip,
        publicIp: server.ipv4Address,
        publicIpv6: server.ipv6Address,
      });
    }
  }
  return nodes;
}
