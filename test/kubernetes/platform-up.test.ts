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
import { startTemporalDevServer, type TemporalDevServer } from '../../core/daemons/temporal.ts';
import { openDatabase } from '../../core/db/client.ts';
import { acquireRegistryLock } from '../../core/db/maintenance-lock.ts';
import { DEPLOYER_ENV_SECRET } from '../../platform/cluster/deployer.ts';
import { type DeployerImage, importDeployerImage } from '../../platform/local/deployer-image.ts';
import { importPlatformImages, type PlatformImages } from '../../platform/local/images.ts';
import type { ClusterLayerOutputs, ClusterLayerStack } from '../../platform/local/stack.ts';
import { ALL_POOLS, POOL_LABEL } from '../../platform/pools.ts';
import { tenantNamespace } from '../../tenant-stacks/kubernetes/names.ts';
import { ensureBaseImages } from '../../workers/build/base-images.ts';
import { BUILD_TASK_QUEUE, DEPLOY_TASK_QUEUE } from '../../workers/task-queues.ts';
import { kubectl, oneNodeLayer, type TestCluster, useTestCluster } from '../support/cluster.ts';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { eventually, httpGet } from '../support/http.ts';
import { call, connectClient, text } from '../support/mcp.ts';
import { startTestPostgres, type TestPostgres } from '../support/postgres.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { CLI } from '../support/serve.ts';

const exec = promisify(execFile);
const BIN = path.join(repoRoot, '.tools/bin');

type ServiceView = {
  status: string;
  url: string | null;
  deployment: { status: string; reason: string | null; build_log: { lines: string[] } } | null;
};

type Pod = {
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    containers: { image: string }[];
    serviceAccountName?: string;
    automountServiceAccountToken?: boolean;
    volumes?: { name: string; secret?: unknown; projected?: unknown }[];
  };
  status: { phase: string };
};

/**
 * Issue 13's in-cluster layer for real: `platform/cluster` (the same `clusterLayer` the platform
 * program runs) goes `up` through the Automation API on a one-node cluster of its own, with
 * Traefik, the registry, BuildKit and the deployer images built here from what setup has (nothing
 * is pulled), the deployer's settings in the `deployer-env` Secret made first, as the SRE would
 * (a PostgreSQL and a Temporal of the test's own on loopback, the master key, ports). An MCP
 * client talks to the deployer-server pod; the deployer-worker pod, with its projected
 * ServiceAccount token, builds node-hello through the in-cluster BuildKit into the in-cluster
 * registry and deploys it; the layer's Traefik serves it. `destroy` leaves nothing.
 */
describe('the in-cluster platform layer, up on the one-node cluster with the deployer as pods', () => {
  const work = scratchDir('k8s-platform', path.join(repoRoot, '.data', 'test'));
  let cluster: TestCluster;
  let layer: ClusterLayerStack | undefined;
  let outputs: ClusterLayerOutputs;
  let images: PlatformImages;
  let deployer: DeployerImage;
  let destroyed = false;
  let client: Client | undefined;
  let temporal: TemporalDevServer | undefined;
  let postgres: TestPostgres | undefined;
  let databaseUrl: string;
  let ports: { web: number; websecure: number; registry: number; buildkit: number };
  let product: { server: number; deployer: number };
  const figures: Record<string, number> = {};
  const admin = (args: string[], input?: string) => kubectl(cluster, args, input);
  const json = async (args: string[]) => JSON.parse(await admin([...args, '-o', 'json']));
  /** The deployer pods' logs, for a failure's message. */
  const deployerLogs = async () => {
    const out: string[] = [];
    for (const app of ['deployer-server', 'deployer-worker'])
      out.push(
        `--- ${app}\n${await admin([
          '-n',
          'deploy-mcp-system',
          'logs',
          `deployment/${app}`,
          '--tail=40',
        ]).catch((e: Error) => e.message)}`,
      );
    return out.join('\n');
  };

  beforeAll(async () => {
    ports = {
      web: await freePort(),
      websecure: await freePort(),
      registry: await freePort(),
      buildkit: await freePort(),
    };
    product = { server: await freePort(), deployer: await freePort() };
    // A cluster of its own (its objects would collide with the shared cluster's host Traefik),
    // without that Traefik: the layer brings its own. containerd pulls from the layer's registry.
    cluster = await useTestCluster({
      dir: path.join(work.dir, 'cluster'),
      registries: [`127.0.0.1:${ports.registry}`],
      ingress: false,
    });
    // The one node is every pool (as k3s would label it at registration), and untainted.
    await admin(['label', 'node', 'localhost', `${POOL_LABEL}=${ALL_POOLS}`, '--overwrite']);
    // What the deployer runs against, on this machine's loopback: PostgreSQL (migrated) and Temporal.
    postgres = await startTestPostgres();
    databaseUrl = await postgres.createDatabase(`deploy_mcp_${process.pid}`);
    await exec(CLI, ['migrate'], { env: { ...process.env, DEPLOY_MCP_DATABASE_URL: databaseUrl } });
    temporal = await startTemporalDevServer({
      bin: path.join(BIN, 'temporal'),
      dir: path.join(work.dir, 'temporal'),
      port: await freePort(),
      namespace: 'default',
    });
    let t = Date.now();
    images = await importPlatformImages({
      binDir: BIN,
      cacheDir: DEFAULT_CACHE_DIR,
      clusterDir: path.join(work.dir, 'cluster'),
    });
    figures.imagesMs = Date.now() - t;
    t = Date.now();
    deployer = await importDeployerImage({
      repoRoot,
      toolsDir: path.join(repoRoot, '.tools'),
      cacheDir: DEFAULT_CACHE_DIR,
      clusterDir: path.join(work.dir, 'cluster'),
    });
    figures.deployerImageMs = Date.now() - t;
    figures.deployerImageMiB = Math.round(deployer.layers.reduce((n, l) => n + l.size, 0) / 1048576);
    // The SRE's Secret, before the layer's Deployments need it (the layer adopts the namespace).
    await admin(['create', 'namespace', 'deploy-mcp-system']);
    await admin(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: DEPLOYER_ENV_SECRET, namespace: 'deploy-mcp-system' },
        stringData: {
          DEPLOY_MCP_DATABASE_URL: databaseUrl,
          DEPLOY_MCP_SECRET_KEY: randomBytes(32).toString('base64'),
          DEPLOY_MCP_TEMPORAL_ADDRESS: temporal.address,
          DEPLOY_MCP_PORT: String(product.server),
          DEPLOY_MCP_DEPLOYER_PORT: String(product.deployer),
          DEPLOY_MCP_PUBLIC_URL: `http://127.0.0.1:${product.server}`,
          DEPLOY_MCP_INGRESS_PORT: String(ports.web),
          DEPLOY_MCP_HEALTH_TIMEOUT_SECONDS: '90',
        },
      }),
    );
    layer = await oneNodeLayer({
      cluster,
      dir: work.dir,
      ports,
      config: { images: { ...images, deployer: deployer.ref }, certManager: false, deployer: true },
    });
    t = Date.now();
    try {
      outputs = await layer.up();
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await deployerLogs()}`);
    }
    figures.upMs = Date.now() - t;
  }, 600_000);

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    if (layer && !destroyed) await layer.destroy().catch(() => undefined);
    await cluster?.release();
    await temporal?.stop().catch(() => undefined);
    await postgres?.stop().catch(() => undefined);
    console.log('platform-up figures:', JSON.stringify(figures));
    work.cleanup();
  }, 300_000);

  it('brings Traefik, the registry, BuildKit and the deployer up Ready, from images built here', async () => {
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
    for (const name of ['registry', 'buildkitd', 'deployer-server', 'deployer-worker']) {
      const d = await json(['-n', 'deploy-mcp-system', 'get', 'deployment', name]);
      expect(d.status.readyReplicas, name).toBe(1);
    }
    // Every pod runs an image imported here, never one pulled from outside.
    const pods = (await json(['get', 'pods', '-A'])).items as Pod[];
    expect(pods.map((p) => p.status.phase)).toEqual(Array(5).fill('Running'));
    expect(pods.flatMap((p) => p.spec.containers.map((c) => c.image)).sort()).toEqual(
      [images.buildkit, images.registry, images.traefik, deployer.ref, deployer.ref].sort(),
    );
    // Only the worker talks to the cluster, with its projected ServiceAccount token; no Secret
    // volume (no admin kubeconfig) in either pod, and the settings Secret holds no credential for it.
    const app = (name: string) => pods.find((p) => p.metadata.labels?.app === name) as Pod;
    expect(app('deployer-worker').spec.serviceAccountName).toBe('deployer');
    expect(app('deployer-server').spec.automountServiceAccountToken).toBe(false);
    for (const name of ['deployer-server', 'deployer-worker'])
      expect(app(name).spec.volumes?.filter((v) => v.secret) ?? []).toEqual([]);
    const env = await json(['-n', 'deploy-mcp-system', 'get', 'secret', DEPLOYER_ENV_SECRET]);
    expect(Object.keys(env.data).filter((k) => /KUBE/.test(k))).toEqual([]);

    expect(await httpGet(`http://127.0.0.1:${ports.web}/ping`)).toEqual({ status: 200, body: 'OK' });
    expect((await httpGet(`http://${outputs.registryHost}/v2/`)).status).toBe(200);
    const { stdout } = await exec(
      path.join(BIN, 'buildctl'),
      ['--addr', outputs.buildkitAddress, 'debug', 'workers', '-v'],
      { timeout: 60_000 },
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

  it('deploys an app end to end through the deployer pods: MCP on deployer-server, built and deployed by deployer-worker', async () => {
    const publicUrl = `http://127.0.0.1:${product.server}`;
    // The server pod answers once it is connected to PostgreSQL and Temporal (bounded).
    await eventually(
      () => httpGet(`${publicUrl}/healthz`),
      (r) => r.status === 200,
      120_000,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await deployerLogs()}`);
    });
    // Base images are the SRE's to publish (the image carries no tarballs): from this machine's
    // tarballs, through the in-cluster BuildKit into the in-cluster registry.
    let t = Date.now();
    await ensureBaseImages({
      buildkitAddress: outputs.buildkitAddress,
      registryHost: outputs.registryHost,
      imagesDir: path.join(repoRoot, '.tools/images'),
    });
    figures.baseImagesMs = Date.now() - t;
    // An account and a key, made on the shared database by the CLI as an operator would.
    const cliEnv = { ...process.env, DEPLOY_MCP_DATABASE_URL: databaseUrl };
    await exec(CLI, ['users', 'create', 'platform@example.com'], { env: cliEnv });
    const { stdout: keyOut } = await exec(CLI, ['keys', 'create', 'platform@example.com'], { env: cliEnv });
    client = await connectClient(`${publicUrl}/mcp`, keyOut.trim().split('\n').at(-1) ?? '');

    const git = agentGit(work.dir);
    const app = path.join(work.dir, 'app');
    const repo = await call(client, 'create_repo', { name: 'web' });
    if (repo.isError) throw new Error(`${text(repo)}\n${await deployerLogs()}`);
    const remote = (repo.structuredContent as { git_remote: string }).git_remote;
    // The deployer-server pod's own git (its node-local repos), at the public URL.
    expect(new URL(remote)).toMatchObject({
      host: `127.0.0.1:${product.server}`,
      pathname: expect.stringMatching(/^\/git\//),
    });
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps/node-hello'), app, { recursive: true });
    await pushNewRepo(git, app, remote);
    // The registry under maintenance (the clean-up job's side of the lock, taken here): the
    // worker pod's build waits for it and says so in its log, then goes on once it is released.
    // create_service answers at once (wait: false): waiting, it would hold the answer for its
    // whole 50 s (the deployment cannot end while the lock is held), and only then could the
    // log be read; that wait was the 50 s before the line showed (platform/README.md).
    const maintenance = await acquireRegistryLock(databaseUrl, 'exclusive', { timeoutMs: 30_000 });
    const waitLine = 'waiting for the registry to finish its maintenance';
    let waiting: ServiceView | undefined;
    t = Date.now();
    try {
      const res = await call(client, 'create_service', {
        name: 'web',
        repo: 'web',
        env_vars: { MESSAGE: 'hello platform' },
        wait: false,
      });
      if (res.isError) throw new Error(`${text(res)}\n${await deployerLogs()}`);
      figures.createMs = Date.now() - t;
      // The answer came before any wait of the tool's: the deployment still runs, no "after 50 s".
      const created = res.structuredContent as ServiceView & { note: string };
      expect(created.note).toMatch(/^Deployment \S+ is still (queued|building); it goes on/);
      // Followed as an agent does: get_service's build log, while the lock is still held.
      const until = Date.now() + 240_000;
      while (!waiting && Date.now() < until) {
        const view = (await call(client, 'get_service', { name: 'web' })).structuredContent as ServiceView;
        if (view.deployment?.build_log.lines.some((l) => l.includes(waitLine))) waiting = view;
        else await sleep(1000);
      }
    } finally {
      figures.lockSeenMs = Date.now() - t;
      await maintenance.release();
    }
    expect(waiting?.deployment?.build_log.lines ?? [], await deployerLogs()).toContainEqual(
      expect.stringContaining(waitLine),
    );
    // Seen while the build waits: it has cloned, and nothing of the build ran yet.
    expect(waiting?.deployment?.status).toBe('building');
    expect(waiting?.deployment?.build_log.lines.at(-1)).toContain(waitLine);
    let view: ServiceView | undefined;
    const deadline = Date.now() + 300_000;
    while (Date.now() < deadline) {
      view = (await call(client, 'get_service', { name: 'web' })).structuredContent as ServiceView;
      if (['active', 'failed'].includes(view.deployment?.status ?? '')) break;
      await sleep(1000);
    }
    figures.deployMs = Date.now() - t;
    if (view?.deployment?.reason) throw new Error(`${JSON.stringify(view)}\n${await deployerLogs()}`);
    expect(view?.status).toBe('active');
    expect(view?.url).toBe(`http://web-platform.localhost:${ports.web}`);
    // Served by the layer's Traefik DaemonSet (the only ingress controller of this cluster).
    expect(await httpGet(`http://127.0.0.1:${ports.web}/`, 'web-platform.localhost')).toMatchObject({
      status: 200,
      body: expect.stringMatching(/^hello platform \|/),
    });
    // Built by the in-cluster BuildKit into the in-cluster registry, pulled from it by the node.
    const db = await openDatabase(databaseUrl);
    let namespace: string;
    try {
      namespace = tenantNamespace(
        (await db.prisma.user.findUniqueOrThrow({ where: { email: 'platform@example.com' } })).id,
      );
    } finally {
      await db.close();
    }
    const pods = (await json(['-n', namespace, 'get', 'pods'])).items as Pod[];
    const image = pods[0]?.spec.containers[0]?.image ?? '';
    expect(pods.map((p) => p.spec.containers[0]?.image)).toEqual([
      expect.stringMatching(new RegExp(`^127\\.0\\.0\\.1:${ports.registry}/.+@sha256:[0-9a-f]{64}$`)),
    ]);
    // Nothing of the product runs on this machine (only CLI commands): the builds and stack
    // updates ran in the worker pod, the one process serving the deploy and build task queues,
    // and the only one with a cluster credential (its ServiceAccount token, checked above).
    const logOf = (app: string) => admin(['-n', 'deploy-mcp-system', 'logs', `deployment/${app}`]);
    const workerLog = await logOf('deployer-worker');
    for (const queue of [DEPLOY_TASK_QUEUE, BUILD_TASK_QUEUE])
      expect(workerLog).toContain(`"taskQueue":"${queue}"`);
    expect(await logOf('deployer-server')).not.toContain(`"taskQueue":"${DEPLOY_TASK_QUEUE}"`);

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

    // The layer's registry clean-up, run now from its CronJob, works in the cluster (the deployer
    // image, its settings, its ServiceAccount and the registry on the node's loopback): the
    // deleted service's image is gone from the registry (delete_service prunes it already; the
    // job finds nothing left), and the job restarts the registry under the maintenance lock, whose
    // init container's garbage collection frees the image's blobs on the node's volume.
    const digest = image.slice(image.indexOf('@') + 1);
    const repoPath = image.slice(image.indexOf('/') + 1, image.indexOf('@'));
    const blobsDir = path.join(work.dir, 'node-state/registry/docker/registry/v2/blobs/sha256');
    const blobDirs = () =>
      fs.readdirSync(blobsDir).flatMap((p) => fs.readdirSync(path.join(blobsDir, p)).map((d) => `${p}/${d}`));
    const manifestBlob = `${digest.slice(7, 9)}/${digest.slice(7)}`;
    const before = blobDirs();
    expect(before).toContain(manifestBlob);
    const registryPod = async () =>
      ((await json(['-n', 'deploy-mcp-system', 'get', 'pods', '-l', 'app=registry'])).items as Pod[]).map(
        (p) => p.metadata.name,
      );
    const podsBefore = await registryPod();
    const job = `prune-now-${process.pid}`;
    t = Date.now();
    await admin(['-n', 'deploy-mcp-system', 'create', 'job', job, '--from=cronjob/registry-cleanup']);
    const done = await eventually(
      () => json(['-n', 'deploy-mcp-system', 'get', 'job', job]),
      (j: { status: { succeeded?: number; failed?: number } }) => !!(j.status.succeeded || j.status.failed),
      300_000,
    );
    figures.pruneJobMs = Date.now() - t;
    const pruneLog = await admin(['-n', 'deploy-mcp-system', 'logs', `job/${job}`]);
    expect(done.status.succeeded, pruneLog).toBe(1);
    expect(pruneLog).toMatch(
      new RegExp(`^pruned \\d+ image\\(s\\) from 127\\.0\\.0\\.1:${ports.registry},`, 'm'),
    );
    expect(pruneLog).toMatch(/^restarted deploy-mcp-system\/registry \(its blobs collected\)/m);
    const head = await fetch(`http://${outputs.registryHost}/v2/${repoPath}/manifests/${digest}`, {
      method: 'HEAD',
      headers: {
        accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json',
      },
    });
    expect(head.status).toBe(404);
    // A new registry pod, whose garbage collection deleted the image's blobs from the volume.
    const podsAfter = await registryPod();
    expect(podsAfter).toHaveLength(1);
    expect(podsAfter).not.toEqual(podsBefore);
    const gcLog = await admin([
      '-n',
      'deploy-mcp-system',
      'logs',
      `pod/${podsAfter[0]}`,
      '-c',
      'garbage-collect',
    ]);
    const swept = Number(/^garbage-collect: exit 0, (\d+) blob\(s\) deleted$/m.exec(gcLog)?.[1] ?? -1);
    expect(swept, gcLog).toBeGreaterThan(0);
    const after = blobDirs();
    expect(after).not.toContain(manifestBlob);
    expect(before.length - after.length).toBe(swept);
    figures.blobsBefore = before.length;
    figures.blobsAfter = after.length;
    // The registry serves again, and takes a push (BuildKit's, as a build's).
    expect((await httpGet(`http://${outputs.registryHost}/v2/`)).status).toBe(200);
    const ctx = path.join(work.dir, 'after-gc');
    fs.mkdirSync(ctx);
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /\n');
    fs.writeFileSync(path.join(ctx, 'hello.txt'), `after gc ${process.pid}\n`);
    const pushed = `${outputs.registryHost}/t/after-gc-${process.pid}:1`;
    await exec(
      path.join(BIN, 'buildctl'),
      [
        '--addr',
        outputs.buildkitAddress,
        'build',
        '--frontend',
        'dockerfile.v0',
        '--local',
        `context=${ctx}`,
        '--local',
        `dockerfile=${ctx}`,
        '--output',
        `type=image,name=${pushed},push=true,registry.insecure=true`,
      ],
      { timeout: 180_000 },
    );
    const pushedHead = await fetch(
      `http://${outputs.registryHost}/v2/t/after-gc-${process.pid}/manifests/1`,
      {
        method: 'HEAD',
        headers: {
          accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json',
        },
      },
    );
    expect(pushedHead.status).toBe(200);
  }, 600_000);

  it('destroy leaves nothing of the layer in the cluster', async () => {
    await client?.close();
    client = undefined;
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
    // No pod, and nothing listening on the layer's or the deployer's addresses (bounded wait).
    const addresses = [...Object.values(ports), product.server, product.deployer];
    const deadline = Date.now() + 90_000;
    let pods = 'x';
    let open: boolean[] = [];
    while (Date.now() < deadline) {
      pods = (await admin(['get', 'pods', '-A', '-o', 'name'])).trim();
      open = await Promise.all(addresses.map((p) => tcpOpen('127.0.0.1', p, 300)));
      if (!pods && !open.some(Boolean)) break;
      await sleep(500);
    }
    expect(pods).toBe('');
    expect(open).toEqual(addresses.map(() => false));
  }, 300_000);
});
