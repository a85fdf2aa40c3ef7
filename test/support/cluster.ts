import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type Cluster, clusterStatus, startCluster, stopCluster } from '../../core/cluster/cluster.ts';
import type { ClusterLayerConfig, SingleNodeConfig } from '../../platform/config.ts';
import { type ClusterLayerStack, clusterLayerStack } from '../../platform/local/stack.ts';
import {
  deployerAccessManifests,
  type ServiceAccountRef,
} from '../../tenant-stacks/kubernetes/deployer-access.ts';
import { repoRoot } from './scratch.ts';

/** The cluster test files share unless they ask for their own dir (files run one after another). */
export const SHARED_CLUSTER_DIR = path.join(repoRoot, '.data/test/cluster');

const BIN_DIR = path.join(repoRoot, '.tools/bin');
const BINARIES = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubelet',
  'kubectl',
  'traefik',
];

export type TestCluster = Cluster & {
  /** True when this call started it (then `release` stops it); false when it was running already. */
  owned: boolean;
  /** Stops the cluster if this test file started it; leaves one it found running. */
  release: () => Promise<void>;
};

/**
 * A one-node cluster for a test file: the one running from `dir` (default: the shared one) is
 * reused, else one is started. Call `release` in afterAll. `registries` are the registries its
 * containerd pulls from over plain HTTP (a change restarts containerd only; pods keep running).
 */
export async function useTestCluster(
  options: { dir?: string; registries?: string[]; ingressPort?: number; ingress?: boolean } = {},
): Promise<TestCluster> {
  const missing = BINARIES.filter((b) => !fs.existsSync(path.join(BIN_DIR, b)));
  if (missing.length) {
    throw new Error(
      `the Kubernetes toolchain is missing (${missing.join(', ')}): run npm run setup:kubernetes`,
    );
  }
  const dir = options.dir ?? SHARED_CLUSTER_DIR;
  const wasRunning = (await clusterStatus(dir)).components.some((c) => c.pid !== undefined);
  let cluster: Cluster;
  try {
    cluster = await startCluster({
      dir,
      binDir: BIN_DIR,
      registries: options.registries,
      ingressPort: options.ingressPort,
      ingress: options.ingress,
    });
  } catch (err) {
    // Leave nothing half-started behind a failed start.
    if (!wasRunning) await stopCluster({ dir }).catch(() => undefined);
    throw err;
  }
  return {
    ...cluster,
    owned: !wasRunning,
    release: async () => {
      if (!wasRunning) await cluster.stop();
    },
  };
}

/** `kubectl` against the cluster as admin: resolves with stdout, rejects with an Error carrying stderr. */
export function kubectl(
  cluster: Pick<Cluster, 'kubeconfigPath' | 'context'>,
  args: string[],
  input?: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      path.join(BIN_DIR, 'kubectl'),
      ['--kubeconfig', cluster.kubeconfigPath, '--context', cluster.context, ...args],
      { timeout: 180_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** The ServiceAccount the platform runs the deployer-worker as (platform/cluster/deployer.ts). */
export const DEPLOYER_SA: ServiceAccountRef = { namespace: 'deploy-mcp-system', name: 'deployer' };

export type DeployerAccess = {
  /** A kubeconfig acting as DEPLOYER_SA, its token read from a file (as in a pod). */
  kubeconfigPath: string;
  /** DEPLOY_MCP_KUBERNETES_SERVICE_ACCOUNT's value. */
  serviceAccount: string;
};

/**
 * Applies the deployer's narrow access (tenant-stacks/kubernetes/deployer-access.ts: the same
 * objects the platform program declares) as admin, mints a token for its ServiceAccount and
 * writes a kubeconfig under `dir` that uses it. Resolves once the admission policy is in force.
 */
export async function deployerAccess(cluster: Cluster, dir: string): Promise<DeployerAccess> {
  const items = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: DEPLOYER_SA.namespace } },
    ...deployerAccessManifests(DEPLOYER_SA),
  ];
  await kubectl(
    cluster,
    ['apply', '--server-side', '--force-conflicts', '--field-manager=deploy-mcp-test', '-f', '-'],
    JSON.stringify({ apiVersion: 'v1', kind: 'List', items }),
  );
  const kubeconfigPath = await serviceAccountKubeconfig(cluster, DEPLOYER_SA, dir);
  const access = { kubeconfigPath, serviceAccount: `${DEPLOYER_SA.namespace}/${DEPLOYER_SA.name}` };
  await deployerPolicyInForce(kubeconfigPath);
  return access;
}

/**
 * Mints a token (6 h) for a ServiceAccount as admin and writes a kubeconfig under `dir` that
 * acts as it, the token read from a file (as in a pod). Resolves with the kubeconfig's path.
 */
export async function serviceAccountKubeconfig(
  cluster: Cluster,
  sa: ServiceAccountRef,
  dir: string,
): Promise<string> {
  const token = (
    await kubectl(cluster, ['create', 'token', sa.name, '-n', sa.namespace, '--duration=6h'])
  ).trim();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tokenFile = path.join(dir, 'deployer.token');
  fs.writeFileSync(tokenFile, token, { mode: 0o600 });
  const admin = JSON.parse(fs.readFileSync(cluster.kubeconfigPath, 'utf8')) as {
    clusters: { cluster: { 'certificate-authority-data': string } }[];
  };
  const kubeconfigPath = path.join(dir, 'deployer.kubeconfig');
  fs.writeFileSync(
    kubeconfigPath,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'c',
          cluster: {
            server: cluster.apiServerUrl,
            'certificate-authority-data': admin.clusters[0]?.cluster['certificate-authority-data'],
          },
        },
      ],
      users: [{ name: 'deployer', user: { tokenFile } }],
      contexts: [{ name: 'deployer', context: { cluster: 'c', user: 'deployer' } }],
      'current-context': 'deployer',
    }),
    { mode: 0o600 },
  );
  return kubeconfigPath;
}

/**
 * Resolves once the deployer's admission policy is in force for the kubeconfig's identity.
 */
export async function deployerPolicyInForce(kubeconfigPath: string): Promise<void> {
  // The API server picks policies and bindings up from a watch: wait (bounded) until a
  // namespace outside tenants is refused (a server-side dry run: nothing is created).
  const deadline = Date.now() + 30_000;
  for (;;) {
    const refused = await kubectl({ kubeconfigPath, context: 'deployer' }, [
      'create',
      'namespace',
      'deploy-mcp-probe',
      '--dry-run=server',
    ]).then(
      () => false,
      (err: Error) => err.message.includes('tenant namespaces'),
    );
    if (refused) return;
    if (Date.now() > deadline)
      throw new Error("the deployer's admission policy did not take effect within 30 s");
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * The in-cluster layer on a test's one-node cluster: every pool on its node, listening on
 * `127.0.0.1` at `ports`, its state under `dir`; `config` gives what the test varies (images,
 * cert-manager, the deployer, the apps domain). Not yet up: call `up()`.
 */
export function oneNodeLayer(o: {
  cluster: Cluster;
  dir: string;
  ports: SingleNodeConfig['ports'];
  config: Pick<ClusterLayerConfig, 'images' | 'certManager' | 'deployer'> & Partial<ClusterLayerConfig>;
}): Promise<ClusterLayerStack> {
  const api = new URL(o.cluster.apiServerUrl);
  const local = { count: 1, serverType: 'local' };
  return clusterLayerStack({
    config: {
      pools: { ctrl: local, ops: local, build: local, run: local },
      appsDomain: 'localhost',
      acmeEmail: 'sre@example.com',
      cloudflareToken: '',
      keepImagesPerService: 5,
      singleNode: {
        bindAddress: '127.0.0.1',
        ports: o.ports,
        apiServer: { host: api.hostname, port: Number(api.port) },
        stateDir: path.join(o.dir, 'node-state'),
      },
      ...o.config,
    },
    kubeconfig: fs.readFileSync(o.cluster.kubeconfigPath, 'utf8'),
    stackName: 'local',
    dir: path.join(o.dir, 'layer'),
    passphrase: randomBytes(24).toString('hex'),
    pulumiRoot: path.join(repoRoot, '.tools'),
    awaitTimeout: '4m',
  });
}
