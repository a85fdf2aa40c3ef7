import { isIPv4 } from 'node:net';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { buildConflist, cniWorkerConfig, registryConfig } from '../../core/daemons/buildkit.ts';
import { connectedNetworks, egressScript, systemResolvers } from '../../core/network/egress.ts';
import type { SingleNodeConfig } from '../config.ts';
import { K3S_POD_CIDR, K3S_SERVICE_CIDR, PRIVATE_NETWORK } from '../pools.ts';
import { buildkitStartScript } from './buildkit-start.ts';
import { onPool, SYSTEM_NAMESPACE } from './placement.ts';

const labels = { app: 'buildkitd' };
export const BUILDKIT_PORT = 1234;
/** The address the deployer-worker builds through. */
export const BUILDKIT_ADDRESS = `tcp://buildkitd.${SYSTEM_NAMESPACE}:${BUILDKIT_PORT}`;

/**
 * Build steps' addresses, inside the BuildKit pod (or, on the one-node cluster, the host): a
 * range of its own, apart from the product's own buildkitd (10.213.0.0/16) and apps (10.214/16).
 */
export const CLUSTER_BUILD_SUBNET = '10.215.0.0/16';
/** The steps' CNI network's name (build.conflist): the comment on its masquerading rules. */
export const CLUSTER_BUILD_NETWORK = 'deploy-mcp-cluster-build';
/** The egress policy's name: chains DMCP-KBUILD (mangle FORWARD) and DMCP-KBUILD-IN (filter INPUT). */
export const CLUSTER_BUILD_POLICY = 'KBUILD';
const CONFIG_DIR = '/etc/buildkit';

/**
 * The egress rules of build steps (core/network/egress.ts, the same rules as the product's own
 * buildkitd): no private range (the nodes' network with the registry, the pod and Service
 * ranges), no loopback, no link-local (169.254.169.254), nothing on the host or pod itself; DNS
 * only to the given resolvers. On one node that is this machine: its resolvers and the networks
 * it sits on, read here, where the program runs. Nor the nodes' public addresses
 * (`nodeAddresses`: the cloud layer's servers and `dedicatedAddresses`), where a pod reaches the
 * nodes' own services (kubelet, the API server, host-network listeners), and the address of the
 * node the pod runs on, which the script reads from the downward API (NODE_IP, NODE_IPS) where
 * it runs. IPv4 only: steps have no IPv6 at all (the conflist turns it off on their link).
 */
export function buildStepEgress(
  single?: SingleNodeConfig,
  nodeAddresses: pulumi.Input<string | undefined>[] = [],
): pulumi.Output<string> {
  return pulumi.all(nodeAddresses).apply((addresses) => buildStepEgressScript(single, addresses));
}

/** buildStepEgress's script, given the nodes' addresses (IPv6 ones and duplicates ignored). */
export function buildStepEgressScript(
  single: SingleNodeConfig | undefined,
  addresses: (string | undefined)[],
) {
  return egressScript({
    name: CLUSTER_BUILD_POLICY,
    source: CLUSTER_BUILD_SUBNET,
    resolvers: single ? systemResolvers() : [],
    denied: [
      ...(single ? connectedNetworks() : [PRIVATE_NETWORK, K3S_POD_CIDR, K3S_SERVICE_CIDR]),
      ...[...new Set(addresses)].filter((a): a is string => !!a && isIPv4(a)).map((a) => `${a}/32`),
    ],
    deniedFromEnv: NODE_ADDRESS_ENV.map((e) => e.name),
  });
}

/** The init container's view of its node's addresses (the downward API). */
const NODE_ADDRESS_ENV = [
  { name: 'NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
  { name: 'NODE_IPS', valueFrom: { fieldRef: { fieldPath: 'status.hostIPs' } } },
];

/** Where the deployer reaches BuildKit: its Service, or on a one-node cluster its host address. */
export function buildkitAddress(single?: SingleNodeConfig): string {
  return single ? `tcp://${single.bindAddress}:${single.ports.buildkit}` : BUILDKIT_ADDRESS;
}

/**
 * buildkitd on the build nodes, one per node, behind a Service. Its TCP port has no TLS, so a
 * NetworkPolicy lets only the deployer-worker reach it. It pushes to the platform's registry,
 * which speaks plain HTTP on the private network (buildkitd.toml from a ConfigMap).
 */
export function buildkit(
  args: {
    image: string;
    replicas: number;
    registryHost: string;
    /** Public addresses of every node (build steps may not reach them): see buildStepEgress. */
    nodeAddresses?: pulumi.Input<string | undefined>[];
  },
  opts: pulumi.CustomResourceOptions,
  single?: SingleNodeConfig,
): k8s.apps.v1.Deployment {
  const port = single ? single.ports.buildkit : BUILDKIT_PORT;
  const listen = single ? `${single.bindAddress}:${port}` : `0.0.0.0:${port}`;
  new k8s.core.v1.Service(
    'buildkitd',
    {
      metadata: { name: 'buildkitd', namespace: SYSTEM_NAMESPACE },
      spec: {
        selector: labels,
        ports: [{ name: 'buildkit', port: BUILDKIT_PORT, targetPort: port }],
      },
    },
    opts,
  );
  new k8s.networking.v1.NetworkPolicy(
    'buildkitd',
    {
      metadata: { name: 'buildkitd', namespace: SYSTEM_NAMESPACE },
      spec: {
        podSelector: { matchLabels: labels },
        policyTypes: ['Ingress'],
        ingress: [
          {
            from: [{ podSelector: { matchLabels: { app: 'deployer-worker' } } }],
            ports: [{ port: BUILDKIT_PORT }],
          },
        ],
      },
    },
    opts,
  );
  const config = new k8s.core.v1.ConfigMap(
    'buildkitd-config',
    {
      metadata: { name: 'buildkitd-config', namespace: SYSTEM_NAMESPACE },
      data: {
        'buildkitd.toml': `[worker.oci]\n  enabled = true\n  gc = true\n${cniWorkerConfig(`${CONFIG_DIR}/build.conflist`, '/usr/lib/cni')}[worker.containerd]\n  enabled = false\n${registryConfig([args.registryHost], {})}`,
        'build.conflist': buildConflist(CLUSTER_BUILD_NETWORK, CLUSTER_BUILD_SUBNET),
        'egress.sh': buildStepEgress(single, args.nodeAddresses),
        'start.sh': buildkitStartScript(CLUSTER_BUILD_NETWORK, CLUSTER_BUILD_SUBNET),
      },
    },
    opts,
  );
  return new k8s.apps.v1.Deployment(
    'buildkitd',
    {
      metadata: { name: 'buildkitd', namespace: SYSTEM_NAMESPACE, labels },
      spec: {
        replicas: args.replicas,
        // One buildkitd at a time per node: a new one never starts beside the old (on one node
        // they share the host's network, whose stale step rules its start removes).
        strategy: { type: 'Recreate' },
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            ...onPool('build', single),
            // One node that is this machine: on its host network, next to the registry it pushes to.
            ...(single ? { hostNetwork: true } : {}),
            // Steps resolve names through the node's resolvers (the ones the egress rules admit),
            // not the cluster DNS in the Service range, which steps may not reach.
            dnsPolicy: 'Default',
            // The egress rules first, by a container that may change the firewall and nothing else.
            initContainers: [
              {
                name: 'egress',
                image: args.image,
                command: ['/bin/sh', `${CONFIG_DIR}/egress.sh`],
                env: NODE_ADDRESS_ENV,
                securityContext: {
                  capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] },
                },
                volumeMounts: [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }],
              },
            ],
            // One per build node.
            topologySpreadConstraints: [
              {
                maxSkew: 1,
                topologyKey: 'kubernetes.io/hostname',
                whenUnsatisfiable: 'DoNotSchedule',
                labelSelector: { matchLabels: labels },
              },
            ],
            containers: [
              {
                name: 'buildkitd',
                image: args.image,
                // At every start (a restart after a kill too): the rules a killed buildkitd's
                // steps left removed first (buildkit-start.ts), then buildkitd.
                command: ['/bin/sh', `${CONFIG_DIR}/start.sh`],
                args: [
                  '--config',
                  `${CONFIG_DIR}/buildkitd.toml`,
                  '--addr',
                  `tcp://${listen}`,
                  '--addr',
                  'unix:///run/buildkit/buildkitd.sock',
                ],
                ports: [{ name: 'buildkit', containerPort: port }],
                readinessProbe: { tcpSocket: { port, ...(single ? { host: single.bindAddress } : {}) } },
                // Privileged: a rootful buildkitd (the only kind that gives steps CNI networks) runs
                // each step with runc (mount, PID and network namespaces, overlayfs mounts, cgroups,
                // pivot_root) and sets up the step's network (netns mounts, veth links,
                // ip_forward, masquerading): more than any set of capabilities under the default
                // seccomp and AppArmor profiles and the masked /proc allows. The build pool's
                // nodes run nothing else, and the steps themselves get runc's default
                // capabilities, not these.
                securityContext: { privileged: true },
                volumeMounts: [
                  { name: 'state', mountPath: '/var/lib/buildkit' },
                  { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
                  { name: 'tmp', mountPath: '/tmp' },
                ],
              },
            ],
            volumes: [
              {
                name: 'state',
                hostPath: {
                  path: `${single?.stateDir ?? '/var/lib/deploy-mcp'}/buildkit`,
                  type: 'DirectoryOrCreate',
                },
              },
              { name: 'config', configMap: { name: config.metadata.name } },
              // Frontends' temporary files (an image may lack /tmp: the one built from binaries here does).
              { name: 'tmp', emptyDir: {} },
            ],
          },
        },
      },
    },
    opts,
  );
}
