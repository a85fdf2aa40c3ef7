import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type Cluster, clusterStatus, startCluster, stopCluster } from '../../core/cluster/cluster.ts';
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
  options: { dir?: string; registries?: string[]; ingressPort?: number } = {},
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
