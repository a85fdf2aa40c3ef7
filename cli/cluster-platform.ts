import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { clusterStatus, DEFAULT_CACHE_DIR } from '../core/cluster/cluster.ts';
import type { Config } from '../core/config.ts';
import { invalidInput } from '../core/errors.ts';
import type { ClusterLayerConfig } from '../platform/config.ts';
import { importDeployerImage } from '../platform/local/deployer-image.ts';
import { importPlatformImages } from '../platform/local/images.ts';
import { ALL_POOLS } from '../platform/pools.ts';

export const CLUSTER_PLATFORM_USAGE =
  'cluster platform up|destroy [--dir D] [--web-port P] [--websecure-port P] [--registry-port P] [--buildkit-port P] [--deployer]';

const ACTIONS = ['up', 'destroy'] as const;
/** Defaults clear of the embedded runtime's (8080, 5000) and the product's (8081, 8082). */
export const CLUSTER_PLATFORM_PORTS = { web: 8090, websecure: 8453, registry: 5050, buildkit: 1235 };

export type ClusterPlatformArgs = {
  action: (typeof ACTIONS)[number];
  /** The cluster's dir (default `<data dir>/cluster`). */
  dir: string | undefined;
  ports: typeof CLUSTER_PLATFORM_PORTS;
  /** Run the deployer-server/-worker Deployments (they need the `deployer-env` Secret first). */
  deployer: boolean;
};

/** Parses `cluster platform up|destroy [--dir D] [--<name>-port P]… [--deployer]`. */
export function parseClusterPlatformArgs(args: string[]): ClusterPlatformArgs {
  const [action, ...rest] = args;
  if (!ACTIONS.includes(action as ClusterPlatformArgs['action']))
    throw invalidInput(`usage: deploy-mcp ${CLUSTER_PLATFORM_USAGE} (unknown action "${action ?? ''}")`);
  const { values } = parseArgs({
    args: rest,
    options: {
      dir: { type: 'string' },
      'web-port': { type: 'string' },
      'websecure-port': { type: 'string' },
      'registry-port': { type: 'string' },
      'buildkit-port': { type: 'string' },
      deployer: { type: 'boolean', default: false },
    },
  });
  const port = (name: keyof typeof CLUSTER_PLATFORM_PORTS) => {
    const given = values[`${name}-port`];
    if (given === undefined) return CLUSTER_PLATFORM_PORTS[name];
    const n = Number(given);
    if (!/^\d+$/.test(given) || n < 1 || n > 65535)
      throw invalidInput(`--${name}-port must be a port number`);
    return n;
  };
  const ports = {
    web: port('web'),
    websecure: port('websecure'),
    registry: port('registry'),
    buildkit: port('buildkit'),
  };
  if (new Set(Object.values(ports)).size !== 4) throw invalidInput('the four ports must differ');
  return {
    action: action as ClusterPlatformArgs['action'],
    dir: values.dir,
    ports,
    deployer: values.deployer,
  };
}

/**
 * `deploy-mcp cluster platform up|destroy`: the in-cluster layer (`platform/cluster`) on the
 * one-node cluster of `cluster up --no-ingress --registry 127.0.0.1:<registry port>`, with the
 * images built here (`platform/local/`), as `test/kubernetes/platform-up.test.ts` runs it. The
 * stack's state and its passphrase live in `<cluster dir>/platform-layer` (0700).
 */
export async function clusterPlatform(config: Config, args: string[]): Promise<number> {
  const a = parseClusterPlatformArgs(args);
  const dir = path.resolve(a.dir ?? path.join(config.dataDir, 'cluster'));
  const status = await clusterStatus(dir);
  if (!status.exists || !status.nodeReady)
    throw invalidInput(`no cluster is up in ${dir}: run deploy-mcp cluster up --no-ingress first`);
  if (a.action === 'up' && status.components.some((c) => c.name === 'traefik' && c.pid))
    throw invalidInput(
      'the cluster runs its own Traefik, whose objects the layer would collide with: restart it with cluster up --no-ingress',
    );
  const kubeconfig = fs.readFileSync(status.kubeconfigPath, 'utf8');
  const api = new URL(
    (JSON.parse(kubeconfig) as { clusters: { cluster: { server: string } }[] }).clusters[0]?.cluster.server ??
      '',
  );
  const stateDir = path.join(dir, 'platform-layer');
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const passphraseFile = path.join(stateDir, 'passphrase');
  if (!fs.existsSync(passphraseFile))
    fs.writeFileSync(passphraseFile, randomBytes(24).toString('hex'), { mode: 0o600, flag: 'wx' });
  const binDir = path.join(config.toolsDir, 'bin');
  // Destroy runs no program: the images are needed to go up only.
  const images =
    a.action === 'up'
      ? await importPlatformImages({ binDir, cacheDir: DEFAULT_CACHE_DIR, clusterDir: dir })
      : { traefik: 'none', registry: 'none', buildkit: 'none' };
  const deployerRef =
    a.deployer && a.action === 'up'
      ? (
          await importDeployerImage({
            repoRoot: path.resolve(import.meta.dirname, '..'),
            toolsDir: config.toolsDir,
            cacheDir: DEFAULT_CACHE_DIR,
            clusterDir: dir,
          })
        ).ref
      : 'localhost/deploy-mcp/deployer:none';
  const layerConfig: ClusterLayerConfig = {
    pools: {
      ctrl: { count: 1, serverType: 'local' },
      ops: { count: 1, serverType: 'local' },
      build: { count: 1, serverType: 'local' },
      run: { count: 1, serverType: 'local' },
    },
    appsDomain: config.runtime.appsDomain,
    acmeEmail: 'sre@example.com',
    cloudflareToken: '',
    images: { ...images, deployer: deployerRef },
    keepImagesPerService: config.disk.keepReleases,
    certManager: false,
    deployer: a.deployer,
    singleNode: {
      bindAddress: '127.0.0.1',
      ports: a.ports,
      apiServer: { host: api.hostname, port: Number(api.port) },
      stateDir: path.join(stateDir, 'node-state'),
    },
  };
  // Loaded here, not with the CLI: Pulumi and its Kubernetes SDK cost every `serve` about
  // 100 MiB of memory (bench memory) for a command it never runs.
  const { clusterLayerStack } = await import('../platform/local/stack.ts');
  const layer = await clusterLayerStack({
    config: layerConfig,
    kubeconfig,
    stackName: 'local',
    dir: stateDir,
    passphrase: fs.readFileSync(passphraseFile, 'utf8').trim(),
    pulumiRoot: config.toolsDir,
    // The one node is every pool: the layer labels it (and takes the label back on destroy), as
    // it keeps the pools' labels and taints on production's nodes.
    poolNodes: [{ name: 'localhost', pool: ALL_POOLS }],
  });
  if (a.action === 'destroy') {
    await layer.destroy();
    console.log('the in-cluster layer is destroyed');
    return 0;
  }
  const { kubeconfig: _secret, ...outputs } = await layer.up();
  console.log('the in-cluster layer is up; configure the kubernetes runtime with:');
  for (const [k, v] of Object.entries(outputs)) console.log(`  ${k.padEnd(24)} ${v}`);
  return 0;
}
