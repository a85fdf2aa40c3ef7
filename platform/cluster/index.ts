import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { ClusterLayerConfig } from '../config.ts';
import { K3S_POD_CIDR, PRIVATE_NETWORK } from '../pools.ts';
import { buildkit, buildkitAddress } from './buildkit.ts';
import { certManager } from './cert-manager.ts';
import { DEPLOYER_SERVICE_ACCOUNT, deployer } from './deployer.ts';
import { nodeLayout, nodePatches, type RegisteredNode } from './node-pools.ts';
import { INGRESS_CLASS, INGRESS_NAMESPACE, SYSTEM_NAMESPACE } from './placement.ts';
import { registry } from './registry.ts';
import { registryCleanup } from './registry-cleanup.ts';
import { systemPolicies } from './system-policies.ts';
import { traefik } from './traefik.ts';

export type ClusterInputs = {
  /** Admin kubeconfig Pulumi declares with (a secret); never handed to the product's pods. */
  kubeconfig: pulumi.Input<string>;
  registryHost: string;
  /**
   * The nodes whose pool label and taints the layer keeps (a NodePatch each, node-pools.ts): the
   * cloud layer's servers; on a one-node cluster, its node (pool `all`). None: nodes untouched.
   */
  poolNodes?: RegisteredNode[];
  /** The nodes' public addresses (the cloud layer's servers); build steps may not reach them. */
  publicAddresses?: pulumi.Input<string>[];
};

export type ClusterLayer = {
  ingressClass: string;
  ingressNamespace: string;
  /** Where the deployer builds (DEPLOY_MCP_BUILDKIT_ADDRESS). */
  buildkitAddress: string;
  /** The deployer's ServiceAccount, namespace/name (DEPLOY_MCP_KUBERNETES_SERVICE_ACCOUNT). */
  deployerServiceAccount: string;
  /**
   * The nodes' private network and the pod network cut out of it (DEPLOY_MCP_K8S_NODE_CIDR and
   * _POD_CIDR): tenants' pods admit the host-network Traefik from it. None on one node.
   */
  nodeCidr: string | undefined;
  podCidr: string | undefined;
};

/**
 * Everything inside the cluster, declared through one explicit provider on the cloud layer's
 * kubeconfig. Runs on its own too, given any kubeconfig (platform/local/stack.ts).
 */
export function clusterLayer(config: ClusterLayerConfig, cloud: ClusterInputs): ClusterLayer {
  const single = config.singleNode;
  const provider = new k8s.Provider('platform-cluster', {
    kubeconfig: pulumi.secret(cloud.kubeconfig),
    enableServerSideApply: true,
  });
  const namespaces = [SYSTEM_NAMESPACE, INGRESS_NAMESPACE].map(
    (name) => new k8s.core.v1.Namespace(name, { metadata: { name } }, { provider }),
  );
  const opts: pulumi.CustomResourceOptions = { provider, dependsOn: namespaces };
  nodePatches(
    (cloud.poolNodes ?? []).map((n) => ({ ...nodeLayout(n), registered: n.registered })),
    { provider },
  );
  systemPolicies(config, opts);
  traefik(config.images.traefik, opts, single);
  if (config.certManager !== false)
    certManager(
      {
        appsDomain: config.appsDomain,
        acmeEmail: config.acmeEmail,
        cloudflareToken: config.cloudflareToken,
        install: { crdsDir: required(config.certManagerCrds), images: config.certManagerImages, single },
        issuer: config.certManagerIssuer,
        // Off one node, where the product's names are routed (deployer-routes.ts).
        ...(single ? {} : { domain: config.domain }),
      },
      opts,
    );
  registry(config.images.registry, opts, single);
  buildkit(
    {
      image: config.images.buildkit,
      replicas: config.pools.build.count,
      registryHost: cloud.registryHost,
      nodeAddresses: [...(cloud.publicAddresses ?? []), ...(config.dedicatedAddresses ?? [])],
    },
    opts,
    single,
  );
  const runDeployer = config.deployer !== false;
  deployer(
    {
      image: config.images.deployer,
      appsDomain: config.appsDomain,
      registryHost: cloud.registryHost,
      buildkitAddress: buildkitAddress(single),
      run: runDeployer,
      singleNode: single,
      domain: config.domain,
      certificate: config.certManager !== false,
    },
    opts,
  );
  if (runDeployer)
    registryCleanup(
      {
        image: config.images.deployer,
        registryHost: cloud.registryHost,
        buildkitAddress: buildkitAddress(single),
        appsDomain: config.appsDomain,
        keepImagesPerService: config.keepImagesPerService,
        singleNode: single,
      },
      opts,
    );
  return {
    ingressClass: INGRESS_CLASS,
    ingressNamespace: INGRESS_NAMESPACE,
    buildkitAddress: buildkitAddress(single),
    deployerServiceAccount: `${DEPLOYER_SERVICE_ACCOUNT.namespace}/${DEPLOYER_SERVICE_ACCOUNT.name}`,
    nodeCidr: single ? undefined : PRIVATE_NETWORK,
    podCidr: single ? undefined : K3S_POD_CIDR,
  };
}

function required(crdsDir: string | undefined): string {
  if (!crdsDir)
    throw new Error('certManagerCrds is required with cert-manager (npm run setup:kubernetes makes it)');
  return crdsDir;
}
