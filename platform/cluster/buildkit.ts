import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import { onPool, SYSTEM_NAMESPACE } from './placement.ts';

const labels = { app: 'buildkitd' };
export const BUILDKIT_PORT = 1234;
/** The address the deployer-worker builds through. */
export const BUILDKIT_ADDRESS = `tcp://buildkitd.${SYSTEM_NAMESPACE}:${BUILDKIT_PORT}`;

/**
 * buildkitd on the build nodes, one per node, behind a Service. Its TCP port has no TLS, so a
 * NetworkPolicy lets only the deployer-worker reach it.
 */
export function buildkit(
  image: string,
  replicas: number,
  opts: pulumi.CustomResourceOptions,
): k8s.apps.v1.Deployment {
  new k8s.core.v1.Service(
    'buildkitd',
    {
      metadata: { name: 'buildkitd', namespace: SYSTEM_NAMESPACE },
      spec: {
        selector: labels,
        ports: [{ name: 'buildkit', port: BUILDKIT_PORT, targetPort: BUILDKIT_PORT }],
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
  return new k8s.apps.v1.Deployment(
    'buildkitd',
    {
      metadata: { name: 'buildkitd', namespace: SYSTEM_NAMESPACE, labels },
      spec: {
        replicas,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            ...onPool('build'),
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
                image,
                args: [
                  '--addr',
                  `tcp://0.0.0.0:${BUILDKIT_PORT}`,
                  '--addr',
                  'unix:///run/buildkit/buildkitd.sock',
                ],
                ports: [{ name: 'buildkit', containerPort: BUILDKIT_PORT }],
                // buildkitd runs builds in its own containers; the build pool's nodes run nothing else.
                securityContext: { privileged: true },
                volumeMounts: [{ name: 'state', mountPath: '/var/lib/buildkit' }],
              },
            ],
            volumes: [
              {
                name: 'state',
                hostPath: { path: '/var/lib/deploy-mcp/buildkit', type: 'DirectoryOrCreate' },
              },
            ],
          },
        },
      },
    },
    opts,
  );
}
