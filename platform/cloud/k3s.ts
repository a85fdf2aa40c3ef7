import { fileURLToPath } from 'node:url';
import * as command from '@pulumi/command';
import * as pulumi from '@pulumi/pulumi';
import type { PlatformConfig } from '../config.ts';
import { KUBE_API_PORT, poolLabels, poolTaints, REGISTRY_PORT } from '../pools.ts';
import type { Node } from './servers.ts';

/** The playbook that makes one node what its pool needs (OS, firewall, registry client, k3s). */
export const ANSIBLE_DIR = fileURLToPath(new URL('../../ansible', import.meta.url));

/** Ansible's variables for one node: everything but the token, which goes in the environment. */
export function nodeVars(
  config: PlatformConfig,
  node: Node,
  first: Node,
  registryHost: string,
): Record<string, unknown> {
  const server = node.pool === 'ctrl';
  return {
    k3s_role: server ? 'server' : 'agent',
    k3s_node_name: node.name,
    k3s_cluster_init: node === first,
    k3s_server_url: node === first ? '' : `https://${first.privateIp}:${KUBE_API_PORT}`,
    k3s_version: config.k3sVersion,
    k3s_node_ip: node.privateIp,
    k3s_node_labels: poolLabels(node.pool),
    k3s_node_taints: poolTaints(node.pool),
    registry_host: registryHost,
  };
}

/** host:port of the registry: the first ops node's private address (never public: see firewalls.ts). */
export function registryHost(nodes: Node[]): string {
  const ops = nodes.find((n) => n.pool === 'ops');
  if (!ops) throw new Error('the platform needs at least one ops node (the registry runs there)');
  return `${ops.privateIp}:${REGISTRY_PORT}`;
}

export type Cluster = {
  /** The admin kubeconfig, server address rewritten to the first ctrl node's public IP (a secret). */
  kubeconfig: pulumi.Output<string>;
  joins: command.local.Command[];
  /** Each node's join (its playbook run ends once the node has registered): the in-cluster layer patches it after. */
  joinOf: Map<Node, command.local.Command>;
};

/**
 * k3s on every node, through @pulumi/command running ansible/node.yml against that one host:
 * Ansible owns what is on the node (packages, k3s, its config), Pulumi owns when it runs and its
 * inputs (the token as a secret, the pool's labels and taints). The first ctrl node starts the
 * cluster; the others join it over the private network.
 */
export function k3s(config: PlatformConfig, nodes: Node[]): Cluster {
  const ctrl = nodes.filter((n) => n.pool === 'ctrl');
  const first = ctrl[0];
  if (!first) throw new Error('the platform needs at least one ctrl node');
  const registry = registryHost(nodes);
  const join = (node: Node, dependsOn: pulumi.Resource[]) =>
    new command.local.Command(
      `k3s-${node.name}`,
      {
        dir: ANSIBLE_DIR,
        create: node.publicIp.apply((ip) => {
          const vars = {
            ...nodeVars(config, node, first, registry),
            k3s_tls_san: node === first ? [ip] : [],
          };
          return `ansible-playbook -i ${ip}, -u root node.yml -e '${JSON.stringify(vars)}'`;
        }),
        environment: { K3S_TOKEN: pulumi.secret(config.k3sToken), ANSIBLE_HOST_KEY_CHECKING: 'False' },
        // A replaced server is a new machine: run the playbook again.
        triggers: [node.server.id, config.k3sVersion],
      },
      { dependsOn: [node.server, ...dependsOn] },
    );
  const init = join(first, []);
  const joinOf = new Map<Node, command.local.Command>([[first, init]]);
  for (const n of nodes) if (n !== first) joinOf.set(n, join(n, [init]));
  const joins = [...joinOf.values()];
  const read = new command.remote.Command(
    'kubeconfig',
    {
      connection: { host: first.publicIp, user: 'root', privateKey: pulumi.secret(config.sshPrivateKey) },
      create: 'cat /etc/rancher/k3s/k3s.yaml',
      triggers: [init.id],
    },
    { dependsOn: [init], additionalSecretOutputs: ['stdout'] },
  );
  const addressedTo = (ip: pulumi.Input<string>) =>
    pulumi.secret(
      pulumi
        .all([read.stdout, ip])
        .apply(([text, at]) =>
          String(text).replace(`https://127.0.0.1:${KUBE_API_PORT}`, `https://${at}:${KUBE_API_PORT}`),
        ),
    );
  return {
    kubeconfig: addressedTo(first.publicIp),
    joins,
    joinOf,
  };
}
