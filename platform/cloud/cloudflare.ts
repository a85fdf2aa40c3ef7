import * as cloudflare from '@pulumi/cloudflare';
import type * as pulumi from '@pulumi/pulumi';
import type { PlatformConfig } from '../config.ts';
import { PRODUCT_NAMES } from '../pools.ts';
import type { Node } from './servers.ts';

/**
 * The load balancer for `*.<apps domain>`: a pool of the run nodes, checked through Traefik's
 * ping endpoint. The product's names point at the same nodes, proxied.
 */
export function edge(
  config: PlatformConfig,
  nodes: Node[],
  opts: pulumi.CustomResourceOptions,
): cloudflare.LoadBalancer {
  const runNodes = nodes.filter((n) => n.pool === 'run');
  const monitor = new cloudflare.LoadBalancerMonitor(
    'run-nodes',
    {
      accountId: config.cloudflareAccountId,
      type: 'http',
      port: 80,
      path: '/ping',
      expectedCodes: '200',
      interval: 60,
      retries: 2,
      timeout: 5,
      description: 'Traefik ping on the run nodes',
    },
    opts,
  );
  const pool = new cloudflare.LoadBalancerPool(
    'run-nodes',
    {
      accountId: config.cloudflareAccountId,
      name: 'deploy-mcp-run-nodes',
      monitor: monitor.id,
      minimumOrigins: 1,
      origins: runNodes.map((n) => ({ name: n.name, address: n.publicIp, enabled: true, weight: 1 })),
    },
    opts,
  );
  const lb = new cloudflare.LoadBalancer(
    'apps',
    {
      zoneId: config.cloudflareZoneId,
      name: `*.${config.appsDomain}`,
      defaultPools: [pool.id],
      fallbackPool: pool.id,
      proxied: true,
      steeringPolicy: 'random',
    },
    opts,
  );
  for (const name of PRODUCT_NAMES) {
    for (const node of runNodes) {
      new cloudflare.DnsRecord(
        `${name}-${node.name}`,
        {
          zoneId: config.cloudflareZoneId,
          name: `${name}.${config.domain}`,
          type: 'A',
          content: node.publicIp,
          proxied: true,
          ttl: 1,
        },
        opts,
      );
    }
  }
  return lb;
}
