import * as hcloud from '@pulumi/hcloud';
import type * as pulumi from '@pulumi/pulumi';
import type { PlatformConfig } from '../config.ts';
import { CLOUD_SUBNET, PRIVATE_NETWORK, VSWITCH_SUBNET } from '../pools.ts';

export type PrivateNetwork = {
  network: hcloud.Network;
  networkId: pulumi.Output<number>;
  cloudSubnet: hcloud.NetworkSubnet;
};

/** The private network: a subnet for cloud servers and, given a vSwitch, one for dedicated servers. */
export function privateNetwork(config: PlatformConfig, opts: pulumi.CustomResourceOptions): PrivateNetwork {
  const network = new hcloud.Network(
    'private',
    { ipRange: PRIVATE_NETWORK, labels: { 'deploy-mcp': 'platform' } },
    opts,
  );
  const networkId = network.id.apply(Number);
  const cloudSubnet = new hcloud.NetworkSubnet(
    'cloud',
    { networkId, type: 'cloud', networkZone: config.networkZone, ipRange: CLOUD_SUBNET },
    opts,
  );
  if (config.vswitchId !== undefined) {
    new hcloud.NetworkSubnet(
      'vswitch',
      {
        networkId,
        type: 'vswitch',
        networkZone: config.networkZone,
        ipRange: VSWITCH_SUBNET,
        vswitchId: config.vswitchId,
      },
      opts,
    );
  }
  return { network, networkId, cloudSubnet };
}
