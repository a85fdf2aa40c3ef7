import type { PoolName } from './config.ts';

/** The private network all nodes share (Hetzner Cloud network + the Robot vSwitch). */
export const PRIVATE_NETWORK = '10.0.0.0/16';
/** k3s's pod network and Service range (its defaults; the k3s roles keep them). */
export const K3S_POD_CIDR = '10.42.0.0/16';
export const K3S_SERVICE_CIDR = '10.43.0.0/16';
/** Cloud servers' subnet. */
export const CLOUD_SUBNET = '10.0.1.0/24';
/** Dedicated (Robot) servers' subnet, reached through the vSwitch (VLAN, MTU 1400: ansible/roles/vswitch). */
export const VSWITCH_SUBNET = '10.0.2.0/24';

/** Node label (Kubernetes) and server label (Hetzner) naming a node's pool. */
export const POOL_LABEL = 'deploy-mcp.dev/pool';
/** POOL_LABEL's value on a node that is every pool at once (a one-node cluster, untainted). */
export const ALL_POOLS = 'all';
/** Hetzner label keys allow no dots in the name part; the servers carry `pool=<name>`. */
export const HCLOUD_POOL_LABEL = 'pool';

/** Pools whose nodes only take pods that tolerate them: the registry on ops, BuildKit on build. */
export const TAINTED_POOLS: readonly PoolName[] = ['ops', 'build'];

/** A node taint as the Kubernetes API has it (Node `spec.taints[]`). */
export type NodeTaint = {
  key: string;
  value: string;
  effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
};

/** Kubernetes taints of a pool's nodes: ops and build NoSchedule, the others none. */
export function poolTaintList(pool: PoolName): NodeTaint[] {
  return TAINTED_POOLS.includes(pool) ? [{ key: POOL_LABEL, value: pool, effect: 'NoSchedule' }] : [];
}

/** Kubernetes taints of a pool's nodes (k3s `--node-taint` syntax): poolTaintList's, at registration. */
export function poolTaints(pool: PoolName): string[] {
  return poolTaintList(pool).map((t) => `${t.key}=${t.value}:${t.effect}`);
}

/** Kubernetes labels of a pool's nodes (k3s `--node-label` syntax). */
export function poolLabels(pool: PoolName): string[] {
  return [`${POOL_LABEL}=${pool}`];
}

/** Where each pool's private addresses start in the cloud subnet (room for 10 / 10 / 10 / 150 nodes). */
const FIRST_HOST: Record<PoolName, number> = { ctrl: 10, ops: 20, build: 30, run: 100 };
const POOL_SIZE: Record<PoolName, number> = { ctrl: 10, ops: 10, build: 10, run: 150 };

/** The fixed private address of a pool's i-th server. */
export function privateIp(pool: PoolName, index: number): string {
  if (index < 0 || index >= POOL_SIZE[pool])
    throw new Error(`pool ${pool} holds at most ${POOL_SIZE[pool]} servers`);
  return `10.0.1.${FIRST_HOST[pool] + index}`;
}

/** The registry's address as nodes and the deployer name it: the first ops node, private network only. */
export const REGISTRY_PORT = 5000;
export const KUBE_API_PORT = 6443;

/**
 * The product's own names under the domain: DNS records (cloud/cloudflare.ts) and the routes to
 * the deployer-server (cluster/deployer-routes.ts): the MCP server, the webhooks and API, the git server.
 */
export const PRODUCT_NAMES = ['api', 'mcp', 'git'] as const;
