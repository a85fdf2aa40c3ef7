import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import type { PoolName } from '../config.ts';
import { ALL_POOLS, type NodeTaint, POOL_LABEL, poolTaintList } from '../pools.ts';

/** A node and its pool, by its Kubernetes name (the cloud layer's server name); ALL_POOLS on one node. */
export type PoolNode = { name: string; pool: PoolName | typeof ALL_POOLS };

/** A pool node and what registers it in the cluster (its k3s join): its patch waits for that. */
export type RegisteredNode = PoolNode & { registered?: pulumi.Resource };

/** What the in-cluster layer keeps on one live node: these labels, and exactly these taints. */
export type NodeLayout = { name: string; labels: Record<string, string>; taints: NodeTaint[] };

/**
 * The field manager of the layer's node patches (`metadata.managedFields[].manager` on the
 * Node): what owns the pool label and the taints list once the layer has run.
 */
export const NODE_FIELD_MANAGER = 'deploy-mcp-platform-nodes';

/** A pool node's label and taints (pools.ts): ops and build tainted NoSchedule; one node: `all`, none. */
export function nodeLayout(node: PoolNode): NodeLayout {
  return {
    name: node.name,
    labels: { [POOL_LABEL]: node.pool },
    taints: node.pool === ALL_POOLS ? [] : poolTaintList(node.pool),
  };
}

/**
 * One NodePatch per node (server-side apply, named after the node so the name is stable across
 * updates): the labels given, and `spec.taints` exactly the list given. The Node's taints list is
 * atomic for server-side apply, so the patch owns the whole list; `patchForce` takes it (and a
 * label of another value) over from whoever set it before: k3s at registration, `kubectl taint`.
 * A removed patch gives its fields up (the provider applies an empty patch as its field manager):
 * what no other manager holds goes, the Node stays.
 */
export function nodePatches(
  nodes: (NodeLayout & { registered?: pulumi.Resource })[],
  opts: pulumi.CustomResourceOptions,
): k8s.core.v1.NodePatch[] {
  return nodes.map(
    (node) =>
      new k8s.core.v1.NodePatch(
        `node-${node.name}`,
        {
          metadata: {
            name: node.name,
            labels: node.labels,
            annotations: {
              'pulumi.com/patchForce': 'true',
              'pulumi.com/patchFieldManager': NODE_FIELD_MANAGER,
            },
          },
          spec: { taints: node.taints },
        },
        node.registered ? { ...opts, dependsOn: [node.registered] } : opts,
      ),
  );
}
