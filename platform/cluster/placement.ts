import type { PoolName } from '../config.ts';
import { ALL_POOLS, POOL_LABEL, TAINTED_POOLS } from '../pools.ts';

/**
 * Pod spec fields that put a pod on a pool's nodes (tolerating its taint, where it has one); on a
 * one-node cluster (`singleNode`), on the node labelled with every pool.
 */
export function onPool(pool: PoolName, singleNode?: unknown) {
  if (singleNode) return { nodeSelector: { [POOL_LABEL]: ALL_POOLS }, tolerations: [] };
  return {
    nodeSelector: { [POOL_LABEL]: pool },
    tolerations: TAINTED_POOLS.includes(pool)
      ? [{ key: POOL_LABEL, operator: 'Equal', value: pool, effect: 'NoSchedule' }]
      : [],
  };
}

/** The namespace of the platform's own workloads (registry, BuildKit, the deployer). */
export const SYSTEM_NAMESPACE = 'deploy-mcp-system';
/** The ingress controller's namespace and class: what tenants' Ingresses and NetworkPolicies name. */
export const INGRESS_NAMESPACE = 'traefik';
export const INGRESS_CLASS = 'traefik';
/** The wildcard certificate of the apps domain, Traefik's default certificate. */
export const WILDCARD_SECRET = 'apps-wildcard-tls';
