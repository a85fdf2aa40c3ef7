import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import { registryConfig } from '../../core/daemons/buildkit.ts';
import type { SingleNodeConfig } from '../config.ts';
import { onPool, SYSTEM_NAMESPACE } from './placement.ts';

const labels = { app: 'buildkitd' };
export const BUILDKIT_PORT = 1234;
/** The address the deployer-worker builds through. */
export const BUILDKIT_ADDRESS = `tcp://buildkitd.${SYSTEM_NAMESPACE}:${BUILDKIT_PORT}`;

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
  args: { image: string; replicas: number; registryHost: string },
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
        'buildkitd.toml': `[worker.oci]\n  enabled = true\n  gc = true\n[worker.containerd]\n  enabled = false\n${registryConfig([args.registryHost], {})}`,
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
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            ...onPool('build', single),
            // One node that is this machine: on its host network, next to the registry it pushes to.
            ...(single ? { hostNetwork: true } : {}),
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
                args: [
                  '--config',
                  '/etc/buildkit/buildkitd.toml',
                  '--addr',
                  `tcp://${listen}`,
                  '--addr',
                  'unix:///run/buildkit/buildkitd.sock',
                ],
                ports: [{ name: 'buildkit', containerPort: port }],
                readinessProbe: { tcpSocket: { port, ...(single ? { host: single.bindAddress } : {}) } },
                // buildkitd runs builds in its own containers; the build pool's nodes run nothing else.
                securityContext: { privileged: true },
                volumeMounts: [
                  { name: 'state', mountPath: '/var/lib/buildkit' },
                  { name: 'config', mountPath: '/etc/buildkit', readOnly: true },
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
