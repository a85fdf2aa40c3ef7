import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import type { SingleNodeConfig } from '../config.ts';
import { REGISTRY_PORT } from '../pools.ts';
import { onPool, SYSTEM_NAMESPACE } from './placement.ts';

const labels = { app: 'registry' };
/** The registry's name in the system namespace (the clean-up job may restart exactly it). */
export const REGISTRY_DEPLOYMENT = 'registry';
/** The image's own binary and configuration (platform/local/images.ts, the upstream image's). */
const REGISTRY_CONFIG = '/etc/docker/registry/config.yml';
/**
 * Untagged manifests are kept (releases run images by digest), as the embedded registry's. Bounded
 * (10 minutes); the freed blobs and the outcome go to the pod's log; a failure lets the registry
 * start anyway (the space is freed at a later start). Needs `sh` and `timeout` (the upstream
 * image's busybox; platform/local/images.ts adds dash and coreutils' timeout).
 */
export function garbageCollectScript(bin: string, config: string, logFile: string): string {
  return [
    `timeout 600 ${bin} garbage-collect ${config} > ${logFile} 2>&1`,
    'rc=$?',
    'n=0',
    `while read -r l || [ -n "$l" ]; do case "$l" in *"blob eligible for deletion"*) n=$((n+1)); echo "$l";; *) [ $rc -eq 0 ] || echo "$l";; esac; done < ${logFile}`,
    'echo "garbage-collect: exit $rc, $n blob(s) deleted"',
    'exit 0',
  ].join('; ');
}
/** The init container's script: the image's binary and configuration. */
export const GARBAGE_COLLECT = garbageCollectScript('/bin/registry', REGISTRY_CONFIG, '/gc/gc.log');

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
  const env = [
    { name: 'REGISTRY_STORAGE_DELETE_ENABLED', value: 'true' },
    { name: 'REGISTRY_HTTP_ADDR', value: address },
  ];
  const data = { name: 'data', mountPath: '/var/lib/registry' };
  return new k8s.apps.v1.Deployment(
    'registry',
    {
      metadata: { name: REGISTRY_DEPLOYMENT, namespace: SYSTEM_NAMESPACE, labels },
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
            // Before the registry serves (so no push can race it), its garbage collection frees
            // the blobs no manifest references any more: the images `registry prune` deleted. The
            // clean-up job restarts this Deployment to run it (registry-cleanup.ts), holding the
            // maintenance lock builds take (core/db/maintenance-lock.ts). Its output:
            // `kubectl logs deployment/registry -c garbage-collect`.
            initContainers: [
              {
                name: 'garbage-collect',
                image,
                command: ['/bin/sh', '-c', GARBAGE_COLLECT],
                env,
                // Its output, counted before it is printed (an image may have no /tmp).
                volumeMounts: [data, { name: 'gc-log', mountPath: '/gc' }],
              },
            ],
            containers: [
              {
                name: 'registry',
                image,
                ports: [{ name: 'registry', containerPort: port, hostPort: port }],
                env,
                readinessProbe: {
                  httpGet: { path: '/v2/', port, ...(single ? { host: single.bindAddress } : {}) },
                },
                volumeMounts: [data],
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
              { name: 'gc-log', emptyDir: { sizeLimit: '64Mi' } },
            ],
          },
        },
      },
    },
    opts,
  );
}
