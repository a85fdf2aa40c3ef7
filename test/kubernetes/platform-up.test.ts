import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CACHE_DIR } from '../../core/cluster/cluster.ts';
import { freePort, tcpOpen } from '../../core/daemons/probes.ts';
import { openDatabase } from '../../core/db/client.ts';
import type { ClusterLayerConfig } from '../../platform/config.ts';
import { importPlatformImages, type PlatformImages } from '../../platform/local/images.ts';
import {
  type ClusterLayerOutputs,
  type ClusterLayerStack,
  clusterLayerStack,
} from '../../platform/local/stack.ts';
import { ALL_POOLS, POOL_LABEL } from '../../platform/pools.ts';
import { parseServiceAccount } from '../../tenant-stacks/kubernetes/deployer-access.ts';
import { tenantNamespace } from '../../tenant-stacks/kubernetes/names.ts';
import {
  deployerPolicyInForce,
  kubectl,
  serviceAccountKubeconfig,
  type TestCluster,
  useTestCluster,
} from '../support/cluster.ts';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { httpGet } from '../support/http.ts';
import { call, text } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { connectAgent, type ServeProcess, startServe } from '../support/serve.ts';

const exec = promisify(execFile);
const BIN = path.join(repoRoot, '.tools/bin');

type ServiceView = {
  status: string;
  url: string | null;
  deployment: { status: string; reason: string | null } | null;
};

/**
 * Issue 13's in-cluster layer for real: `platform/cluster` (the same `clusterLayer` the platform
 * program runs) goes `up` through the Automation API on a one-node cluster of its own, with
 * Traefik, the registry and BuildKit images built here from the binaries setup has (nothing is
 * pulled). Then the product on this machine, configured only from the layer's outputs and acting
 * as the layer's deployer ServiceAccount, deploys an app that Traefik's DaemonSet serves, built
 * by the in-cluster BuildKit and pulled from the in-cluster registry. `destroy` leaves nothing.
 * The deployer itself does not run as pods here (no deployer image: `deployer: false`).
 */
describe('the in-cluster platform layer, up on the one-node cluster', () => {
  const work = scratchDir('k8s-platform', path.join(repoRoot, '.data', 'test'));
  let cluster: TestCluster;
  let layer: ClusterLayerStack | undefined;
  let outputs: ClusterLayerOutputs;
  let images: PlatformImages;
  let destroyed = false;
  let serve: ServeProcess | undefined;
  let client: Client | undefined;
  let ports: { web: number; websecure: number; registry: number; buildkit: number };
  const figures: Record<string, number> = {};
  const admin = (args: string[]) => kubectl(cluster, args);
  const json = async (args: string[]) => JSON.parse(await admin([...args, '-o', 'json']));

  beforeAll(async () => {
    ports = {
      web: await freePort(),
      websecure: await freePort(),
      registry: await freePort(),
      buildkit: await freePort(),
    };
    // A cluster of its own (its objects would collide with the shared cluster's host Traefik),
    // without that Traefik: the layer brings its own. containerd pulls from the layer's registry.
    cluster = await useTestCluster({
      dir: path.join(work.dir, 'cluster'),
      registries: [`127.0.0.1:${ports.registry}`],
      ingress: false,
    });
    // The one node is every pool (as k3s would label it at registration), and untainted.
    await admin(['label', 'node', 'localhost', `${POOL_LABEL}=${ALL_POOLS}`, '--overwrite']);
    let t = Date.now();
    images = await importPlatformImages({
      binDir: BIN,
      cacheDir: DEFAULT_CACHE_DIR,
      clusterDir: path.join(work.dir, 'cluster'),
    });
    figures.imagesMs = Date.now() - t;
    const api = new URL(cluster.apiServerUrl);
    const config: ClusterLayerConfig = {
      pools: {
        ctrl: { count: 1, serverType: 'local' },
        ops: { count: 1, serverType: 'local' },
        build: { count: 1, serverType: 'local' },
        run: { count: 1, serverType: 'local' },
      },
      appsDomain: 'localhost',
      acmeEmail: 'sre@example.com',
      cloudflareToken: '',
      images: { ...images, deployer: 'localhost/deploy-mcp/deployer:none' },
      keepImagesPerService: 5,
      certManagerManifest: undefined,
      certManager: false,
      deployer: false,
      singleNode: {
        bindAddress: '127.0.0.1',
        ports,
        apiServer: { host: api.hostname, port: Number(api.port) },
        stateDir: path.join(work.dir, 'node-state'),
      },
    };
    layer = await clusterLayerStack({
      config,
      kubeconfig: fs.readFileSync(cluster.kubeconfigPath, 'utf8'),
      stackName: 'local',
      dir: path.join(work.dir, 'layer'),
      passphrase: randomBytes(24).toString('hex'),
      pulumiRoot: path.join(repoRoot, '.tools'),
      awaitTimeout: '4m',
    });
    t = Date.now();
    outputs = await layer.up();
    figures.upMs = Date.now() - t;
  }, 420_000);

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await serve?.stop().catch(() => undefined);
    if (layer && !destroyed) await layer.destroy().catch(() => undefined);
    await cluster?.release();
    console.log('platform-up figures (ms):', JSON.stringify(figures));
    work.cleanup();
  }, 300_000);

  it('brings Traefik, the registry and BuildKit up Ready, from images built here', async () => {
    expect(outputs).toMatchObject({
      ingressClass: 'traefik',
      ingressNamespace: 'traefik',
      appsDomain: 'localhost',
      registryHost: `127.0.0.1:${ports.registry}`,
      buildkitAddress: `tcp://127.0.0.1:${ports.buildkit}`,
      deployerServiceAccount: 'deploy-mcp-system/deployer',
    });
    const ds = await json(['-n', 'traefik', 'get', 'daemonset', 'traefik']);
    expect(ds.status).toMatchObject({ desiredNumberScheduled: 1, numberReady: 1 });
    for (const name of ['registry', 'buildkitd']) {
      const d = await json(['-n', 'deploy-mcp-system', 'get', 'deployment', name]);
      expect(d.status.readyReplicas, name).toBe(1);
    }
    // Every pod runs an image imported here, never one pulled from outside.
    const pods = (await json(['get', 'pods', '-A'])).items as {
      spec: { containers: { image: string }[] };
      status: { phase: string };
    }[];
    expect(pods.map((p) => p.status.phase)).toEqual(['Running', 'Running', 'Running']);
    expect(pods.flatMap((p) => p.spec.containers.map((c) => c.image)).sort()).toEqual(
      [images.buildkit, images.registry, images.traefik].sort(),
    );

    expect(await httpGet(`http://127.0.0.1:${ports.web}/ping`)).toEqual({ status: 200, body: 'OK' });
    expect((await httpGet(`http://${outputs.registryHost}/v2/`)).status).toBe(200);
    const { stdout } = await exec(
      path.join(BIN, 'buildctl'),
      ['--addr', outputs.buildkitAddress, 'debug', 'workers', '-v'],
      {
        timeout: 60_000,
      },
    );
    expect(stdout).toMatch(/executor:\s*oci/);
    // Only the deployer-worker may reach BuildKit (stored; this cluster's bridge CNI enforces no policy).
    const np = await json(['-n', 'deploy-mcp-system', 'get', 'networkpolicy', 'buildkitd']);
    expect(np.spec.ingress).toEqual([
      {
        from: [{ podSelector: { matchLabels: { app: 'deployer-worker' } } }],
        ports: [{ port: 1234, protocol: 'TCP' }],
      },
    ]);
    // cert-manager is not installed here: the layer declares no issuer (certManager: false).
    const crds = await admin(['get', 'crd', '-o', 'name']);
    expect(crds).not.toMatch(/cert-manager/);
  }, 120_000);

  it("deploys an app end to end: the product on this machine, configured from the layer's outputs", async () => {
    const sa = parseServiceAccount(outputs.deployerServiceAccount);
    const kubeconfigPath = await serviceAccountKubeconfig(cluster, sa, path.join(work.dir, 'kube'));
    await deployerPolicyInForce(kubeconfigPath);
    serve = await startServe(path.join(work.dir, 'data'), {
      ports: {
        server: await freePort(),
        deployer: await freePort(),
        temporal: await freePort(),
        registry: ports.registry,
        ingress: ports.web,
      },
      env: {
        DEPLOY_MCP_RUNTIME: 'kubernetes',
        DEPLOY_MCP_KUBECONFIG: kubeconfigPath,
        DEPLOY_MCP_KUBERNETES_SERVICE_ACCOUNT: outputs.deployerServiceAccount,
        DEPLOY_MCP_INGRESS_CLASS: outputs.ingressClass,
        DEPLOY_MCP_INGRESS_NAMESPACE: outputs.ingressNamespace,
        DEPLOY_MCP_APPS_DOMAIN: outputs.appsDomain,
        DEPLOY_MCP_REGISTRY: outputs.registryHost,
        DEPLOY_MCP_BUILDKIT_ADDRESS: outputs.buildkitAddress,
        DEPLOY_MCP_HEALTH_TIMEOUT_SECONDS: '90',
      },
    });
    client = await connectAgent(serve, 'platform@example.com');
    const git = agentGit(work.dir);
    const app = path.join(work.dir, 'app');
    const repo = await call(client, 'create_repo', { name: 'web' });
    const remote = (repo.structuredContent as { git_remote: string }).git_remote;
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps/node-hello'), app, { recursive: true });
    await pushNewRepo(git, app, remote);
    const t = Date.now();
    const res = await call(client, 'create_service', {
      name: 'web',
      repo: 'web',
      env_vars: { MESSAGE: 'hello platform' },
    });
    if (res.isError) throw new Error(`${text(res)}\n${serve.output().slice(-3000)}`);
    let view: ServiceView | undefined;
    const deadline = Date.now() + 300_000;
    while (Date.now() < deadline) {
      view = (await call(client, 'get_service', { name: 'web' })).structuredContent as ServiceView;
      if (['active', 'failed'].includes(view.deployment?.status ?? '')) break;
      await sleep(1000);
    }
    figures.deployMs = Date.now() - t;
    expect(
      view?.deployment?.reason ?? null,
      `${JSON.stringify(view)}\n${serve.output().slice(-3000)}`,
    ).toBeNull();
    expect(view?.status).toBe('active');
    expect(view?.url).toBe(`http://web-platform.localhost:${ports.web}`);
    // Served by the layer's Traefik DaemonSet (the only ingress controller of this cluster).
    expect(await httpGet(`http://127.0.0.1:${ports.web}/`, 'web-platform.localhost')).toMatchObject({
      status: 200,
      body: expect.stringMatching(/^hello platform \|/),
    });
    // Built by the in-cluster BuildKit into the in-cluster registry, pulled from it by the node.
    const db = await openDatabase(`file:${path.join(work.dir, 'data', 'deploy-mcp.db')}`);
    let namespace: string;
    try {
      namespace = tenantNamespace(
        (await db.prisma.user.findUniqueOrThrow({ where: { email: 'platform@example.com' } })).id,
      );
    } finally {
      await db.close();
    }
    const pods = (await json(['-n', namespace, 'get', 'pods'])).items as {
      spec: { containers: { image: string }[] };
    }[];
    expect(pods.map((p) => p.spec.containers[0]?.image)).toEqual([
      expect.stringMatching(new RegExp(`^127\\.0\\.0\\.1:${ports.registry}/.+@sha256:[0-9a-f]{64}$`)),
    ]);

    const del = await call(client, 'delete_service', { name: 'web' });
    if (del.isError) throw new Error(text(del));
    const gone = Date.now() + 120_000;
    let left = 'x';
    while (Date.now() < gone) {
      left = await admin(['get', 'namespace', namespace, '--ignore-not-found', '-o', 'name']);
      if (!left.trim()) break;
      await sleep(1000);
    }
    expect(left.trim()).toBe('');
  }, 420_000);

  it('destroy leaves nothing of the layer in the cluster', async () => {
    await client?.close();
    client = undefined;
    await serve?.stop();
    serve = undefined;
    const t = Date.now();
    await layer?.destroy();
    destroyed = true;
    figures.destroyMs = Date.now() - t;
    const namespaces = await admin(['get', 'namespaces', '-o', 'name']);
    expect(namespaces).not.toMatch(/deploy-mcp-system|namespace\/traefik|tenant-/);
    const clusterWide = await admin([
      'get',
      'clusterroles,clusterrolebindings,ingressclasses,validatingadmissionpolicies,validatingadmissionpolicybindings',
      '-o',
      'name',
    ]);
    expect(clusterWide).not.toMatch(/traefik|deploy-mcp/);
    // No pod, and nothing listening on the layer's addresses (bounded wait for pods' processes).
    const deadline = Date.now() + 90_000;
    let pods = 'x';
    let open: boolean[] = [];
    while (Date.now() < deadline) {
      pods = (await admin(['get', 'pods', '-A', '-o', 'name'])).trim();
      open = await Promise.all(Object.values(ports).map((p) => tcpOpen('127.0.0.1', p, 300)));
      if (!pods && !open.some(Boolean)) break;
      await sleep(500);
    }
    expect(pods).toBe('');
    expect(open).toEqual([false, false, false, false]);
  }, 300_000);
});
