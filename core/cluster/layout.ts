import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Where a cluster keeps each part of its state, all below one directory. */
export type ClusterLayout = ReturnType<typeof clusterLayout>;

export function clusterLayout(dir: string) {
  const root = path.resolve(dir);
  return {
    dir: root,
    /** What the first `up` chose (ports, pod subnet), reused by every later one. */
    stateFile: path.join(root, 'cluster.json'),
    pki: path.join(root, 'pki'),
    /** The admin kubeconfig handed to people and tests. */
    adminKubeconfig: path.join(root, 'admin.kubeconfig'),
    /** Kubeconfigs of the components (controller-manager, scheduler, kubelet). */
    kubeconfigs: path.join(root, 'kubeconfigs'),
    etcd: path.join(root, 'etcd'),
    controlPlane: path.join(root, 'control-plane'),
    containerd: path.join(root, 'containerd'),
    kubelet: path.join(root, 'kubelet'),
    cni: path.join(root, 'cni'),
    ingress: path.join(root, 'traefik'),
  };
}

/** The cluster's choices, made at its first start and kept in `cluster.json`. */
export type ClusterState = {
  /** Short id derived from the state dir: names the bridge, the CNI network, the cgroup root. */
  id: string;
  ports: ClusterPorts;
  /** The node's pod range, a /24 of 10.244.0.0/16. */
  podSubnet: string;
  /** Registries containerd pulls from over plain HTTP (host:port). */
  registries: string[];
};

export type ClusterPorts = {
  etcdClient: number;
  etcdPeer: number;
  apiServer: number;
  controllerManager: number;
  scheduler: number;
  kubelet: number;
  kubeletHealthz: number;
  /** Traefik's plain-HTTP entry point for Ingresses. */
  ingress: number;
  /** Traefik's ping (readiness) entry point. */
  ingressPing: number;
};

export function clusterId(dir: string): string {
  return createHash('sha256').update(path.resolve(dir)).digest('hex').slice(0, 8);
}

/** Names of the host objects a cluster creates, unique per state dir. */
export function hostNames(id: string) {
  return {
    /** Linux bridge of the pod network (at most 15 characters). */
    bridge: `dmk8s-${id.slice(0, 6)}`,
    /** CNI network name: it labels the NAT rules and cached results the bridge plugin makes. */
    network: `deploy-mcp-k8s-${id}`,
    /** Parent cgroup (every hierarchy) of the kubelet's `kubepods`. */
    cgroupRoot: `deploy-mcp-k8s-${id}`,
  };
}

export function readState(layout: ClusterLayout): ClusterState | undefined {
  try {
    return JSON.parse(fs.readFileSync(layout.stateFile, 'utf8')) as ClusterState;
  } catch {
    return undefined;
  }
}

export function writeState(layout: ClusterLayout, state: ClusterState): void {
  fs.mkdirSync(layout.dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(layout.stateFile, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

/** Writes `content` only when it differs, so a daemon's config file keeps its mtime and fingerprint. */
export function writeIfChanged(file: string, content: string, mode = 0o600): void {
  try {
    if (fs.readFileSync(file, 'utf8') === content) return;
  } catch {
    // not there yet
  }
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, content, { mode });
}
