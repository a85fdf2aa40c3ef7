import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { PlatformConfig } from '../config.ts';
import { buildkit } from './buildkit.ts';
import { certManager } from './cert-manager.ts';
import { deployer } from './deployer.ts';
import { INGRESS_CLASS, INGRESS_NAMESPACE, SYSTEM_NAMESPACE } from './placement.ts';
import { registry } from './registry.ts';
import { registryCleanup } from './registry-cleanup.ts';
import { systemPolicies } from './system-policies.ts';
import { traefik } from './traefik.ts';

export type ClusterInputs = {
  /** Admin kubeconfig Pulumi declares with (a secret); never handed to the product's pods. */
  kubeconfig: pulumi.Input<string>;
  registryHost: string;
};

export type ClusterLayer = { ingressClass: string; ingressNamespace: string };

/** Everything inside the cluster, declared through one explicit provider on the cloud layer's kubeconfig. */
export function clusterLayer(config: PlatformConfig, cloud: ClusterInputs): ClusterLayer {
  const provider = new k8s.Provider('platform-cluster', {
    kubeconfig: pulumi.secret(cloud.kubeconfig),
    enableServerSideApply: true,
  });
  const namespaces = [SYSTEM_NAMESPACE, INGRESS_NAMESPACE].map(
    (name) => new k8s.core.v1.Namespace(name, { metadata: { name } }, { provider }),
  );
  const opts: pulumi.CustomResourceOptions = { provider, dependsOn: namespaces };
  systemPolicies(config, opts);
  traefik(config.images.traefik, opts);
  certManager(
    {
      appsDomain: config.appsDomain,
      acmeEmail: config.acmeEmail,
      cloudflareToken: config.cloudflareToken,
      manifest: config.certManagerManifest,
    },
    opts,
  );
  registry(config.images.registry, opts);
  buildkit(config.images.buildkit, config.pools.build.count, opts);
  deployer(
    {
      image: config.images.deployer,
      appsDomain: config.appsDomain,
      registryHost: cloud.registryHost,
    },
    opts,
  );
  registryCleanup(
    {
      image: config.images.deployer,
      registryHost: cloud.registryHost,
      keepImagesPerService: config.keepImagesPerService,
    },
    opts,
  );
  return { ingressClass: INGRESS_CLASS, ingressNamespace: INGRESS_NAMESPACE };
}
