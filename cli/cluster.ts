import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  type ClusterProgress,
  clusterStatus,
  DEFAULT_CACHE_DIR,
  startCluster,
  stopCluster,
} from '../core/cluster/cluster.ts';
import type { Config } from '../core/config.ts';
import { invalidInput } from '../core/errors.ts';
import { CLUSTER_PLATFORM_USAGE, clusterPlatform } from './cluster-platform.ts';

export const CLUSTER_USAGE = `cluster up [--dir D] [--ingress-port P | --no-ingress] [--registry host:port]…
  cluster down [--dir D] [--purge]
  cluster status [--dir D]
  ${CLUSTER_PLATFORM_USAGE}`;

/** Traefik's port for the cluster's Ingresses unless --ingress-port (the local runtime has 8080). */
export const DEFAULT_CLUSTER_INGRESS_PORT = 8090;

/** `deploy-mcp cluster up|down|status`: the one-node Kubernetes cluster on loopback. */
export async function cluster(config: Config, args: string[]): Promise<number> {
  const [action, ...rest] = args;
  // The in-cluster layer (platform/) on this cluster: cli/cluster-platform.ts.
  if (action === 'platform') return clusterPlatform(config, rest);
  const { values } = parseArgs({
    args: rest,
    allowNegative: true,
    options: {
      // --no-ingress: no host Traefik (the in-cluster layer brings its own).
      ingress: { type: 'boolean', default: true },
      dir: { type: 'string' },
      'ingress-port': { type: 'string' },
      registry: { type: 'string', multiple: true },
      purge: { type: 'boolean', default: false },
    },
  });
  const dir = path.resolve(values.dir ?? path.join(config.dataDir, 'cluster'));
  const progress = (e: ClusterProgress) =>
    console.log(
      `  ${e.component.padEnd(24)} ${e.outcome.padEnd(12)} ${(e.ms / 1000).toFixed(1).padStart(6)} s`,
    );

  if (action === 'up') {
    const ingressPort = Number(values['ingress-port'] ?? DEFAULT_CLUSTER_INGRESS_PORT);
    if (!Number.isInteger(ingressPort) || ingressPort < 1 || ingressPort > 65535)
      throw invalidInput('--ingress-port must be a port number');
    const registries = values.registry ?? [
      config.runtime.external?.registryHost ?? `127.0.0.1:${config.runtime.registryPort}`,
    ];
    console.log(`cluster in ${dir}`);
    const c = await startCluster({
      dir,
      binDir: path.join(config.toolsDir, 'bin'),
      cacheDir: DEFAULT_CACHE_DIR,
      ingressPort,
      ingress: values.ingress,
      registries,
      onProgress: progress,
    });
    console.log(
      c.adopted
        ? `the cluster is already up (checked in ${(c.readyMs / 1000).toFixed(1)} s)`
        : `the cluster is up: node Ready ${(c.readyMs / 1000).toFixed(1)} s after start`,
    );
    console.log(
      `kubeconfig: ${c.kubeconfigPath} (context ${c.context}; kubectl --kubeconfig ${c.kubeconfigPath} get nodes)`,
    );
    console.log(`API server: ${c.apiServerUrl}`);
    if (values.ingress)
      console.log(`ingress:    http://<host>.localhost:${c.ingressPort} (IngressClass ${c.ingressClass})`);
    console.log(`registries: ${c.registries.join(', ') || 'none'} (plain HTTP)`);
    return 0;
  }
  if (action === 'down') {
    const t0 = Date.now();
    const report = await stopCluster({ dir, purge: values.purge, onProgress: progress });
    console.log(
      `the cluster is down (${((Date.now() - t0) / 1000).toFixed(1)} s)${values.purge ? '; state removed' : ''}`,
    );
    return report.cgroupsLeft.length ? 1 : 0;
  }
  if (action === 'status') {
    const s = await clusterStatus(dir);
    if (!s.exists) {
      console.log(`no cluster in ${dir}`);
      return 1;
    }
    for (const c of s.components)
      console.log(
        `  ${c.name.padEnd(32)} ${c.pid ? `pid ${c.pid}`.padEnd(12) : 'not running '} ${c.rssMb !== undefined ? `${c.rssMb} MiB` : ''}`,
      );
    console.log(`node Ready: ${s.nodeReady ? 'yes' : 'no'}; memory (RSS): ${s.rssMb} MiB`);
    console.log(`kubeconfig: ${s.kubeconfigPath}`);
    if (s.ingressPort) console.log(`ingress:    http://<host>.localhost:${s.ingressPort}`);
    return s.nodeReady ? 0 : 1;
  }
  throw invalidInput(`unknown cluster command "${action ?? ''}"; expected: ${CLUSTER_USAGE}`);
}
