import fs from 'node:fs';
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { LocalWorkspace, PulumiCommand, type Stack } from '@pulumi/pulumi/automation/index.js';
import { clusterLayer } from '../cluster/index.ts';
import type { PoolNode } from '../cluster/node-pools.ts';
import type { ClusterLayerConfig } from '../config.ts';
import { REGISTRY_PORT } from '../pools.ts';

const PROJECT = 'deploy-mcp-cluster-layer';

/** The layer's outputs: what the product's `kubernetes` runtime is configured with. */
export type ClusterLayerOutputs = {
  kubeconfig: string;
  ingressClass: string;
  ingressNamespace: string;
  appsDomain: string;
  registryHost: string;
  buildkitAddress: string;
  deployerServiceAccount: string;
  /** Unset on one node (see ClusterLayer). */
  nodeCidr?: string;
  podCidr?: string;
};

export type ClusterLayerStackOptions = {
  config: ClusterLayerConfig;
  /** The admin kubeconfig's contents (kept a secret in the state). */
  kubeconfig: string;
  /** Where the nodes and the deployer reach the registry; default: the single node's address, else 10.0.1.20:5000. */
  registryHost?: string;
  /** The nodes whose pool label and taints the layer keeps (ClusterInputs.poolNodes); default none. */
  poolNodes?: PoolNode[];
  stackName: string;
  /** Work dir; the stack's state (a `file://` backend) and PULUMI_HOME live under it. */
  dir: string;
  /** Encrypts the state's secrets. */
  passphrase: string;
  /** Install root whose `bin/` holds the `pulumi` CLI (the tools dir). */
  pulumiRoot: string;
  /**
   * How long Pulumi waits for each object to be ready (Deployments rolled out, …) or gone, as a
   * Pulumi duration; default "5m" (the provider's own default is 10 minutes).
   */
  awaitTimeout?: string;
};

export type ClusterLayerStack = {
  up: () => Promise<ClusterLayerOutputs>;
  destroy: () => Promise<void>;
  stack: Stack;
};

/**
 * The in-cluster layer on its own, given a kubeconfig: the same `clusterLayer` the platform
 * program runs after the cloud layer, as an inline program through the Automation API (no
 * language host) with a local file backend. `up` waits until every object is ready (Pulumi's
 * await logic: Deployments and DaemonSets rolled out).
 */
export async function clusterLayerStack(o: ClusterLayerStackOptions): Promise<ClusterLayerStack> {
  const single = o.config.singleNode;
  const registryHost =
    o.registryHost ??
    (single ? `${single.bindAddress}:${single.ports.registry}` : `10.0.1.20:${REGISTRY_PORT}`);
  const timeout = o.awaitTimeout ?? '5m';
  const program = async (): Promise<Record<string, unknown>> => {
    // Every object's wait is bounded: a pod that never gets Ready fails the update in `timeout`.
    pulumi.runtime.registerResourceTransform((args) => ({
      props: args.props,
      opts: { ...args.opts, customTimeouts: { create: timeout, update: timeout, delete: timeout } },
    }));
    const layer = clusterLayer(o.config, { kubeconfig: o.kubeconfig, registryHost, poolNodes: o.poolNodes });
    return {
      kubeconfig: pulumi.secret(o.kubeconfig),
      ingressClass: layer.ingressClass,
      ingressNamespace: layer.ingressNamespace,
      appsDomain: o.config.appsDomain,
      registryHost,
      buildkitAddress: layer.buildkitAddress,
      deployerServiceAccount: layer.deployerServiceAccount,
      nodeCidr: layer.nodeCidr,
      podCidr: layer.podCidr,
    };
  };
  const stack = await localStack(o, program);
  return {
    stack,
    up: async () => {
      const result = await stack.up();
      return Object.fromEntries(
        Object.entries(result.outputs).map(([k, v]) => [k, v.value]),
      ) as ClusterLayerOutputs;
    },
    destroy: async () => {
      await stack.destroy();
    },
  };
}

/** Where and how a local stack keeps its state (ClusterLayerStackOptions' own). */
export type LocalStackOptions = Pick<
  ClusterLayerStackOptions,
  'stackName' | 'dir' | 'passphrase' | 'pulumiRoot'
>;

/**
 * An inline program as a stack with a `file://` backend under `o.dir` (created, or selected when
 * it exists: a second call with another program updates the same stack). The layer's runner, and
 * tests that bring up a part of the layer on its own.
 */
export async function localStack(o: LocalStackOptions, program: pulumi.automation.PulumiFn): Promise<Stack> {
  const state = path.join(o.dir, 'state');
  const home = path.join(o.dir, 'pulumi-home');
  const workDir = path.join(o.dir, 'work');
  for (const d of [state, home, workDir]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  const backend = `file://${state}`;
  return LocalWorkspace.createOrSelectStack(
    { stackName: o.stackName, projectName: PROJECT, program },
    {
      workDir,
      pulumiHome: home,
      pulumiCommand: await PulumiCommand.get({ root: o.pulumiRoot }),
      projectSettings: { name: PROJECT, runtime: 'nodejs', backend: { url: backend } },
      envVars: {
        PULUMI_BACKEND_URL: backend,
        PULUMI_CONFIG_PASSPHRASE: o.passphrase,
        PULUMI_SKIP_UPDATE_CHECK: 'true',
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: 'true',
      },
    },
  );
}
