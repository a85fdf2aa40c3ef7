import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import type { SingleNodeConfig } from '../config.ts';
import { REGISTRY_PORT } from '../pools.ts';
import { onPool, SYSTEM_NAMESPACE } from './placement.ts';

const labels = { app: 'registry' };

/**
 * The OCI registry on the (first) ops node, on the node's port 5000: reachable from the private
 * network only (the Hetzner firewall opens it to nothing public; ansible/roles/firewall limits the
 * private side). Deletes are enabled so the clean-up job can remove old images.
 */
export function registry(
  image: string,
  opts: pulumi.CustomResourceOptions,
  single?: SingleNodeConfig,
): k8s.apps.v1.Deployment {
  // One node that is this machine: the host network at the configured address, so containerd,
  // BuildKit and the product all reach it at one address.
  const port = single ? single.ports.registry : REGISTRY_PORT;
  const address = single ? `${single.bindAddress}:${port}` : `:${port}`;
  return new k8s.apps.v1.Deployment(
    'registry',
    {
      metadata: { name: 'registry', namespace: SYSTEM_NAMESPACE, labels },
      spec: {
        replicas: 1,
        // One writer on a node-local volume: never two at once.
        strategy: { type: 'Recreate' },
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            ...onPool('ops', single),
            ...(single ? { hostNetwork: true } : {}),
            containers: [
              {
                name: 'registry',
                image,
                ports: [{ name: 'registry', containerPort: port, hostPort: port }],
                env: [
                  { name: 'REGISTRY_STORAGE_DELETE_ENABLED', value: 'true' },
                  { name: 'REGISTRY_HTTP_ADDR', value: address },
                ],
                readinessProbe: {
                  httpGet: { path: '/v2/', port, ...(single ? { host: single.bindAddress } : {}) },
                },
                volumeMounts: [{ name: 'data', mountPath: '/var/lib/registry' }],
              },
            ],
            volumes: [
              {
                name: 'data',
                hostPath: {
                  path: `${single?.stateDir ?? '/var/lib/deploy-mcp'}/registry`,
                  type: 'DirectoryOrCreate',
                },
              },
            ],
          },
        },
      },
    },
    opts,
  );
}
