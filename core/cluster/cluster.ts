import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, tcpOpen } from '../daemons/probes.ts';
import { type Daemon, recordedDaemon, stopRecordedDaemon } from '../daemons/supervise.ts';
import { unmountUnder } from '../mounts.ts';
import { httpsOk, KubeApi } from './api.ts';
import { ensureCertificates, NODE_NAME, pkiPaths } from './certificates.ts';
import { cgroupPids, ensureCgroupRoot, removeCgroupRoot } from './cgroups.ts';
import { cniPaths, pickPodSubnet, removePodNetwork, writeCniConfig } from './cni.ts';
import { containerdPaths, importImage, removeSharedRunDirs, startContainerd } from './containerd.ts';
import { apiServerUrl, startApiServer, startControllerManager, startScheduler } from './control-plane.ts';
import { startEtcd } from './etcd.ts';
import { ensureIngressAccess, INGRESS_CLASS, INGRESS_NAMESPACE, startIngress } from './ingress.ts';
import { CONTEXT, writeKubeconfig } from './kubeconfig.ts';
import { removeKubeletHostFiles, startKubelet } from './kubelet.ts';
import {
  type ClusterLayout,
  type ClusterPorts,
  type ClusterState,
  clusterId,
  clusterLayout,
  hostNames,
  readState,
  writeState,
} from './layout.ts';
import { ensurePauseImage } from './pause-image.ts';
import { deleteAllPods, killPids, removeAllContainers, shimPids } from './sandboxes.ts';

export type ClusterOptions = {
  /** State directory (certificates, etcd data, configs, logs, pid files), e.g. `<data dir>/cluster`. */
  dir: string;
  /** Directory holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, traefik. */
  binDir: string;
  /** Tools cache the pause image is built into once; default ~/.cache/deploy-mcp. */
  cacheDir?: string;
  /** Traefik's plain-HTTP port for Ingresses; default: the one used before, else a free one. */
  ingressPort?: number;
  /** Registries containerd pulls from over plain HTTP (host:port); default: those used before. */
  registries?: string[];
  /** Called as each component is up (or found running). */
  onProgress?: (event: ClusterProgress) => void;
  /** How long the node may take to report Ready. */
  readyTimeoutMs?: number;
  /**
   * false: no Traefik on the host and none of its objects (namespace `traefik`, IngressClass
   * `traefik`): for the platform's in-cluster layer, which brings its own. Default true.
   */
  ingress?: boolean;
};

export type ClusterProgress = {
  component: string;
  /** "started", "adopted" (found running), "created", "present", "ready" … */
  outcome: string;
  ms: number;
};

export type Cluster = {
  /** Admin kubeconfig (JSON), context `context`. */
  kubeconfigPath: string;
  context: string;
  apiServerUrl: string;
  /** Traefik's plain-HTTP port: http://<host>:<ingressPort> for an Ingress rule on <host>. */
  ingressPort: number;
  ingressClass: string;
  /** Namespace of the ingress controller's ServiceAccount. */
  ingressNamespace: string;
  /** Registries containerd pulls from over plain HTTP. */
  registries: string[];
  /** True when every component was already running (a second `up`). */
  adopted: boolean;
  /** Milliseconds from the call to node Ready. */
  readyMs: number;
  /** `cluster down`: stops everything and removes what it made on the host. */
  stop: (options?: { purge?: boolean }) => Promise<StopReport>;
};

/** The components, in start order, with the directory of each one's log and pid file. */
const COMPONENTS = [
  { name: 'etcd', dir: 'etcd' },
  { name: 'kube-apiserver', dir: 'controlPlane' },
  { name: 'kube-controller-manager', dir: 'controlPlane' },
  { name: 'kube-scheduler', dir: 'controlPlane' },
  { name: 'containerd', dir: 'containerd' },
  { name: 'kubelet', dir: 'kubelet' },
  { name: 'traefik', dir: 'ingress' },
] as const satisfies { name: string; dir: keyof ClusterLayout }[];

type ComponentName = (typeof COMPONENTS)[number]['name'];

function pidFile(layout: ClusterLayout, name: ComponentName): string {
  const c = COMPONENTS.find((x) => x.name === name) as (typeof COMPONENTS)[number];
  return path.join(layout[c.dir], `${name}.pid`);
}

export const DEFAULT_CACHE_DIR = path.join(os.homedir(), '.cache', 'deploy-mcp');

/**
 * Starts a one-node Kubernetes cluster on 127.0.0.1 (or adopts the one running from `dir`) and
 * resolves once the node is Ready and Traefik serves Ingresses. Every process runs under the
 * daemon supervisor: a second call, from any process, takes the running cluster over.
 */
export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const t0 = Date.now();
  const layout = clusterLayout(o.dir);
  const bin = (name: string) => path.join(o.binDir, name);
  const outcomes: boolean[] = [];
  const timed = async <T>(component: string, work: Promise<T>, outcome?: (v: T) => string): Promise<T> => {
    const started = Date.now();
    const value = await work;
    const daemon = value as Partial<Daemon>;
    if (typeof daemon?.adopted === 'boolean') outcomes.push(daemon.adopted);
    const text =
      outcome?.(value) ??
      (typeof daemon?.adopted === 'boolean' ? (daemon.adopted ? 'adopted' : 'started') : 'done');
    o.onProgress?.({ component, outcome: text, ms: Date.now() - started });
    return value;
  };

  const state = await resolveState(layout, o);
  const names = hostNames(state.id);
  const { pki } = await timed('certificates', ensureCertificates(layout.pki), (r) =>
    r.created ? 'created' : 'present',
  );
  const server = apiServerUrl(state.ports.apiServer);
  writeKubeconfig(layout.adminKubeconfig, server, 'admin', pki.client('admin'));
  const kubeconfig = (name: 'controller-manager' | 'scheduler' | 'kubelet') => {
    const file = path.join(layout.kubeconfigs, `${name}.kubeconfig`);
    writeKubeconfig(file, server, name, pki.client(name));
    return file;
  };
  const cni = cniPaths(layout.cni);
  writeCniConfig(cni.confDir, {
    network: names.network,
    bridge: names.bridge,
    subnet: state.podSubnet,
    ipamDir: cni.ipamDir,
  });
  ensureCgroupRoot(names.cgroupRoot);

  const [pause] = await Promise.all([
    timed('pause image', ensurePauseImage(o.cacheDir ?? DEFAULT_CACHE_DIR), () => 'ready'),
    timed(
      'etcd',
      startEtcd({
        bin: bin('etcd'),
        dir: layout.etcd,
        pki,
        clientPort: state.ports.etcdClient,
        peerPort: state.ports.etcdPeer,
      }),
    ),
  ]);
  const [, containerd] = await Promise.all([
    timed(
      'kube-apiserver',
      startApiServer({
        bin: bin('kube-apiserver'),
        dir: layout.controlPlane,
        pki,
        port: state.ports.apiServer,
        etcdClientPort: state.ports.etcdClient,
      }),
    ),
    timed(
      'containerd',
      startContainerd({
        bin: 'containerd',
        dir: layout.containerd,
        sandboxImage: pause.ref,
        cniConfDir: cni.confDir,
        registries: state.registries,
      }),
    ),
  ]);
  await timed('sandbox image', importImage(containerd.socket, pause.ref, pause.archive), (imported) =>
    imported ? 'imported' : 'present',
  );
  const component = { dir: layout.controlPlane, pki };
  await Promise.all([
    timed(
      'kube-controller-manager',
      startControllerManager({
        ...component,
        bin: bin('kube-controller-manager'),
        kubeconfig: kubeconfig('controller-manager'),
        port: state.ports.controllerManager,
      }),
    ),
    timed(
      'kube-scheduler',
      startScheduler({
        ...component,
        bin: bin('kube-scheduler'),
        kubeconfig: kubeconfig('scheduler'),
        port: state.ports.scheduler,
      }),
    ),
    timed(
      'kubelet',
      startKubelet({
        bin: bin('kubelet'),
        dir: layout.kubelet,
        pki,
        kubeconfig: kubeconfig('kubelet'),
        containerdSocket: containerd.socket,
        cgroupRoot: names.cgroupRoot,
        port: state.ports.kubelet,
        healthzPort: state.ports.kubeletHealthz,
      }),
    ),
  ]);
  const api = new KubeApi(server, pki.client('admin'));
  if (o.ingress !== false) {
    const token = await timed('ingress access', ensureIngressAccess(api), () => 'ready');
    await timed(
      'traefik',
      startIngress({
        bin: bin('traefik'),
        dir: layout.ingress,
        apiServerUrl: server,
        caFile: pki.caCert,
        token,
        port: state.ports.ingress,
        pingPort: state.ports.ingressPing,
      }),
    );
  }
  await timed(`node ${NODE_NAME}`, waitNodeReady(api, o.readyTimeoutMs ?? 120_000), () => 'Ready');

  return {
    kubeconfigPath: layout.adminKubeconfig,
    context: CONTEXT,
    apiServerUrl: server,
    ingressPort: state.ports.ingress,
    ingressClass: INGRESS_CLASS,
    ingressNamespace: INGRESS_NAMESPACE,
    registries: state.registries,
    adopted: outcomes.every(Boolean),
    readyMs: Date.now() - t0,
    stop: (options) => stopCluster({ dir: o.dir, ...options }),
  };
}

/**
 * The state of the first start, updated with what the caller asks for now. Ports picked
 * earlier are kept while any component runs (they are in its config); on a cold start a port
 * that something else took meanwhile is replaced.
 */
async function resolveState(layout: ClusterLayout, o: ClusterOptions): Promise<ClusterState> {
  const previous = readState(layout);
  const running = COMPONENTS.some((c) => recordedDaemon(pidFile(layout, c.name)));
  const id = clusterId(layout.dir);
  const taken = new Set<number>();
  const port = async (name: keyof ClusterPorts, wanted?: number): Promise<number> => {
    let p = wanted ?? previous?.ports[name];
    if (
      p !== undefined &&
      !running &&
      wanted === undefined &&
      (taken.has(p) || (await tcpOpen('127.0.0.1', p, 300)))
    )
      p = undefined;
    while (p === undefined || taken.has(p)) p = await freePort();
    taken.add(p);
    return p;
  };
  const state: ClusterState = {
    id,
    ports: {
      etcdClient: await port('etcdClient'),
      etcdPeer: await port('etcdPeer'),
      apiServer: await port('apiServer'),
      controllerManager: await port('controllerManager'),
      scheduler: await port('scheduler'),
      kubelet: await port('kubelet'),
      kubeletHealthz: await port('kubeletHealthz'),
      ingress: await port('ingress', o.ingressPort),
      ingressPing: await port('ingressPing'),
    },
    podSubnet: previous?.podSubnet ?? (await pickPodSubnet(id)),
    registries: o.registries ?? previous?.registries ?? [],
  };
  writeState(layout, state);
  return state;
}

async function waitNodeReady(api: KubeApi, timeoutMs: number): Promise<void> {
  type Node = { status?: { conditions?: { type: string; status: string; message?: string }[] } };
  const deadline = Date.now() + timeoutMs;
  let last = 'not registered';
  while (Date.now() < deadline) {
    const node = await api.get<Node>(`/api/v1/nodes/${NODE_NAME}`).catch(() => undefined);
    const ready = node?.status?.conditions?.find((c) => c.type === 'Ready');
    if (ready?.status === 'True') return;
    if (ready) last = ready.message ?? ready.status;
    await sleep(250);
  }
  throw new Error(`node ${NODE_NAME} not Ready within ${timeoutMs} ms: ${last}`);
}

export type StopReport = {
  /** Pods deleted through the API. */
  pods: number;
  /** Containers removed through containerd (left over when the kubelet could not stop them). */
  containers: number;
  stopped: string[];
  unmounted: number;
  /** cgroup directories that could not be removed (still busy). */
  cgroupsLeft: string[];
  network: string[];
  ms: number;
};

/**
 * `cluster down`: pods first (through the API while the kubelet runs, else straight through
 * containerd), then kubelet, containerd, control plane, etcd and Traefik, each by the pid in its
 * pid file; then every mount below the state dir, the cgroups, the bridge and its NAT rules.
 * The state dir stays (certificates, etcd data) unless `purge`.
 */
export async function stopCluster(o: {
  dir: string;
  purge?: boolean;
  onProgress?: (event: ClusterProgress) => void;
}): Promise<StopReport> {
  const t0 = Date.now();
  const layout = clusterLayout(o.dir);
  const report: StopReport = {
    pods: 0,
    containers: 0,
    stopped: [],
    unmounted: 0,
    cgroupsLeft: [],
    network: [],
    ms: 0,
  };
  const state = readState(layout);
  if (!state) {
    // Not a cluster's state dir: touch nothing in it.
    report.ms = Date.now() - t0;
    return report;
  }
  const step = async (component: string, work: () => Promise<string>) => {
    const started = Date.now();
    const outcome = await work();
    o.onProgress?.({ component, outcome, ms: Date.now() - started });
  };
  const stop = async (name: ComponentName) => {
    await step(name, async () => {
      const was = await stopRecordedDaemon(pidFile(layout, name), name === 'kubelet' ? 30_000 : 10_000);
      if (was) report.stopped.push(name);
      return was ? 'stopped' : 'not running';
    });
  };
  const names = hostNames(state.id);
  const pki = pkiPaths(layout.pki);
  const api = new KubeApi(apiServerUrl(state.ports.apiServer), pki.client('admin'));

  const apiUp = fs.existsSync(pki.caCert) && (await httpsOk(`${api.server}/readyz`, pki.client('admin')));
  if (apiUp && recordedDaemon(pidFile(layout, 'kubelet'))) {
    // Nothing may recreate or reschedule the pods being deleted.
    await stop('kube-controller-manager');
    await stop('kube-scheduler');
    await step('pods', async () => {
      try {
        report.pods = await deleteAllPods(api, 60_000);
        return `${report.pods} deleted`;
      } catch (err) {
        return `not all deleted (${(err as Error).message}); removing their containers`;
      }
    });
  }
  await stop('kubelet');
  const containerd = containerdPaths(layout.containerd);
  if (recordedDaemon(pidFile(layout, 'containerd'))) {
    await step('containers', async () => {
      const ids = await removeAllContainers(
        containerd.socket,
        path.join(cniPaths(layout.cni).confDir, '10-deploy-mcp.conflist'),
      );
      report.containers = ids.length;
      return `${ids.length} removed`;
    });
  }
  await stop('containerd');
  // Shims whose containers could not be deleted, then any process still in the cluster's cgroups.
  await killPids(shimPids(containerd.state));
  await killPids(cgroupPids(names.cgroupRoot));
  // Traefik before the API server, which otherwise waits for Traefik's watches to end.
  for (const name of [
    'traefik',
    'kube-controller-manager',
    'kube-scheduler',
    'kube-apiserver',
    'etcd',
  ] as const)
    await stop(name);

  await step('mounts', async () => {
    report.unmounted = (await unmountUnder(layout.dir)).length;
    return `${report.unmounted} unmounted`;
  });
  await step('cgroups', async () => {
    report.cgroupsLeft = removeCgroupRoot(names.cgroupRoot);
    return report.cgroupsLeft.length
      ? `left: ${report.cgroupsLeft.join(', ')}`
      : `/${names.cgroupRoot} removed`;
  });
  await step('host files', async () => {
    removeSharedRunDirs();
    const removed = removeKubeletHostFiles(layout.dir);
    return removed.length ? `${removed.length} removed` : 'nothing left';
  });
  await step('pod network', async () => {
    report.network = await removePodNetwork(names);
    // Every pod is gone: no address is in use any more.
    fs.rmSync(cniPaths(layout.cni).ipamDir, { recursive: true, force: true });
    return report.network.length ? report.network.join(', ') : 'nothing left';
  });
  if (o.purge) {
    await step('state dir', async () => {
      fs.rmSync(layout.dir, { recursive: true, force: true });
      return `${layout.dir} removed`;
    });
  }
  report.ms = Date.now() - t0;
  return report;
}

export type ClusterStatus = {
  dir: string;
  /** False when `dir` holds no cluster. */
  exists: boolean;
  components: { name: string; pid?: number; rssMb?: number }[];
  /** Resident memory of every process of the cluster (daemons, shims, containers), MiB. */
  rssMb: number;
  nodeReady: boolean;
  kubeconfigPath: string;
  ingressPort?: number;
};

/** Which components run, their memory, and whether the node is Ready. */
export async function clusterStatus(dir: string): Promise<ClusterStatus> {
  const layout = clusterLayout(dir);
  const state = readState(layout);
  const status: ClusterStatus = {
    dir: layout.dir,
    exists: state !== undefined,
    components: [],
    rssMb: 0,
    nodeReady: false,
    kubeconfigPath: layout.adminKubeconfig,
    ingressPort: state?.ports.ingress,
  };
  if (!state) return status;
  const procs = processTable();
  let total = 0;
  for (const c of COMPONENTS) {
    const d = recordedDaemon(pidFile(layout, c.name));
    if (!d) {
      status.components.push({ name: c.name });
      continue;
    }
    const kb = treeRss(
      procs,
      [...procs.values()].filter((p) => p.pgrp === d.pid).map((p) => p.pid),
    );
    total += kb;
    status.components.push({ name: c.name, pid: d.pid, rssMb: round(kb / 1024) });
  }
  const shims = shimPids(containerdPaths(layout.containerd).state);
  if (shims.length) {
    const kb = treeRss(procs, shims);
    total += kb;
    status.components.push({ name: `shims and containers (${shims.length})`, rssMb: round(kb / 1024) });
  }
  status.rssMb = round(total / 1024);
  const pki = pkiPaths(layout.pki);
  if (fs.existsSync(pki.caCert)) {
    const api = new KubeApi(apiServerUrl(state.ports.apiServer), pki.client('admin'));
    type Node = { status?: { conditions?: { type: string; status: string }[] } };
    const node = await api.get<Node>(`/api/v1/nodes/${NODE_NAME}`).catch(() => undefined);
    status.nodeReady =
      node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  }
  return status;
}

type Proc = { pid: number; ppid: number; pgrp: number; rssKb: number };

function processTable(): Map<number, Proc> {
  const table = new Map<number, Proc>();
  const page = 4;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const statm = fs.readFileSync(`/proc/${entry}/statm`, 'utf8').split(' ');
      table.set(Number(entry), {
        pid: Number(entry),
        ppid: Number(fields[1]),
        pgrp: Number(fields[2]),
        rssKb: Number(statm[1]) * page,
      });
    } catch {
      // gone meanwhile
    }
  }
  return table;
}

/** RSS of `roots` and all their descendants, in KiB. */
function treeRss(procs: Map<number, Proc>, roots: number[]): number {
  const seen = new Set<number>(roots);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of procs.values()) {
      if (!seen.has(p.pid) && seen.has(p.ppid)) {
        seen.add(p.pid);
        grew = true;
      }
    }
  }
  let kb = 0;
  for (const pid of seen) kb += procs.get(pid)?.rssKb ?? 0;
  return kb;
}

const round = (n: number) => Math.round(n * 10) / 10;
