import * as hcloud from '@pulumi/hcloud';
import type * as pulumi from '@pulumi/pulumi';
import type { PlatformConfig, PoolName } from '../config.ts';
import { HCLOUD_POOL_LABEL, KUBE_API_PORT, PRIVATE_NETWORK, REGISTRY_PORT } from '../pools.ts';

const ANYWHERE = ['0.0.0.0/0', '::/0'];

type Rule = { port: string; sourceIps: string[]; description: string };

/**
 * Inbound rules per pool, on top of the SSH rule every server gets. Hetzner firewalls filter the
 * public interface only; the private side is the iptables rules of ansible/roles/firewall. A
 * firewall allows only what a rule names: the registry and the API are never public.
 */
export function poolRules(config: Pick<PlatformConfig, 'adminCidr'>): Record<PoolName, Rule[]> {
  return {
    ctrl: [
      {
        port: String(KUBE_API_PORT),
        sourceIps: [PRIVATE_NETWORK, config.adminCidr],
        description: 'Kubernetes API: private network and admins',
      },
    ],
    ops: [
      { port: String(REGISTRY_PORT), sourceIps: [PRIVATE_NETWORK], description: 'registry: private network' },
    ],
    build: [],
    run: [
      { port: '80', sourceIps: ANYWHERE, description: 'HTTP (Cloudflare load balancer)' },
      { port: '443', sourceIps: ANYWHERE, description: 'HTTPS (Cloudflare load balancer)' },
    ],
  };
}

/** One firewall per pool, applied to the servers labelled with that pool. */
export function firewalls(
  config: PlatformConfig,
  opts: pulumi.CustomResourceOptions,
): Record<PoolName, hcloud.Firewall> {
  const rules = poolRules(config);
  const ssh: Rule = { port: '22', sourceIps: [config.adminCidr], description: 'SSH: admins' };
  return Object.fromEntries(
    (Object.keys(rules) as PoolName[]).map((pool) => [
      pool,
      new hcloud.Firewall(
        `fw-${pool}`,
        {
          labels: { 'deploy-mcp': 'platform', [HCLOUD_POOL_LABEL]: pool },
          rules: [ssh, ...rules[pool]].map((r) => ({ direction: 'in', protocol: 'tcp', ...r })),
          applyTos: [{ labelSelector: `${HCLOUD_POOL_LABEL}=${pool}` }],
        },
        opts,
      ),
    ]),
  ) as Record<PoolName, hcloud.Firewall>;
}
