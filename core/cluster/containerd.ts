import fs from 'node:fs';
import path from 'node:path';
import { socketAccepts } from '../daemons/probes.ts';
import { type Daemon, startDaemon } from '../daemons/supervise.ts';
import { run, SYSTEM_PATH } from './exec.ts';
import { writeIfChanged } from './layout.ts';

/** Where Debian's CNI plugins live. */
export const CNI_BIN_DIR = '/usr/lib/cni';
export const RUNC = '/usr/sbin/runc';
/** The containerd namespace of Kubernetes' containers (CRI). */
export const K8S_NAMESPACE = 'k8s.io';

export type ContainerdOptions = {
  /** Path to `containerd`. */
  bin: string;
  dir: string;
  /** The sandbox (pause) image reference. */
  sandboxImage: string;
  /** Directory of the CNI network config the CRI plugin reads. */
  cniConfDir: string;
  /** Registries pulled from over plain HTTP (host:port). */
  registries: string[];
};

export type ContainerdPaths = ReturnType<typeof containerdPaths>;

export function containerdPaths(dir: string) {
  return {
    socket: path.join(dir, 'containerd.sock'),
    config: path.join(dir, 'config.toml'),
    root: path.join(dir, 'root'),
    state: path.join(dir, 'state'),
    /** hosts.toml per registry (config_path). */
    registryHosts: path.join(dir, 'certs.d'),
  };
}

/**
 * containerd with a root, state dir, socket and config of its own (the machine's containerd, if
 * any, is not touched). runc with cgroupfs; `restrict_oom_score_adj` because this process lacks
 * CAP_SYS_RESOURCE (without it every sandbox fails: "can't get final child's PID from pipe");
 * network namespaces under its state dir; each given registry reachable over plain HTTP.
 */
export async function startContainerd(o: ContainerdOptions): Promise<Daemon & { socket: string }> {
  const p = containerdPaths(o.dir);
  writeRegistryHosts(p.registryHosts, o.registries);
  writeIfChanged(
    p.config,
    `version = 2
root = ${toml(p.root)}
state = ${toml(p.state)}

[grpc]
  address = ${toml(p.socket)}

[ttrpc]
  address = ${toml(`${p.socket}.ttrpc`)}

[debug]
  level = "warn"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = ${toml(path.join(o.dir, 'opt'))}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${toml(o.sandboxImage)}
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = ${toml(RUNC)}
        Root = ${toml(path.join(o.dir, 'runc'))}

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ${toml(CNI_BIN_DIR)}
    conf_dir = ${toml(o.cniConfDir)}
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ${toml(p.registryHosts)}
`,
  );
  const daemon = await startDaemon({
    name: 'containerd',
    command: o.bin,
    args: ['--config', p.config],
    configFiles: [p.config, ...o.registries.map((r) => path.join(p.registryHosts, r, 'hosts.toml'))],
    env: { PATH: SYSTEM_PATH },
    logFile: path.join(o.dir, 'containerd.log'),
    // A socket left by a containerd that is gone; an adopted one keeps serving on its socket.
    beforeSpawn: () => fs.rmSync(p.socket, { force: true }),
    ready: () => socketAccepts(p.socket),
    readyTimeoutMs: 60_000,
  });
  return { ...daemon, socket: p.socket };
}

/** `<registryHosts>/<host:port>/hosts.toml`: pull and resolve over plain HTTP. */
function writeRegistryHosts(dir: string, registries: string[]) {
  fs.mkdirSync(dir, { recursive: true });
  for (const entry of fs.readdirSync(dir)) {
    if (!registries.includes(entry)) fs.rmSync(path.join(dir, entry), { recursive: true, force: true });
  }
  for (const registry of registries) {
    writeIfChanged(
      path.join(dir, registry, 'hosts.toml'),
      `server = "http://${registry}"\n\n[host."http://${registry}"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n`,
      0o644,
    );
  }
}

/** `ctr` against this containerd, in the Kubernetes namespace. */
export function ctr(socket: string, args: string[], timeoutMs = 120_000): Promise<string> {
  return run('ctr', ['--address', socket, '--namespace', K8S_NAMESPACE, ...args], { timeoutMs });
}

/** Imports an OCI archive unless an image named `ref` is already there. */
export async function importImage(socket: string, ref: string, archive: string): Promise<boolean> {
  const present = (await ctr(socket, ['images', 'ls', '-q'])).split('\n').includes(ref);
  if (present) return false;
  await ctr(socket, ['images', 'import', archive]);
  return true;
}

/**
 * Removes the directories under /run/containerd that every containerd 1.6 shares (its shims'
 * sockets live in /run/containerd/s whatever the config) once they are empty: an empty one left
 * by another running containerd is recreated as it needs it.
 */
export function removeSharedRunDirs(): void {
  for (const dir of [
    '/run/containerd/s',
    '/run/containerd/runc/k8s.io',
    '/run/containerd/runc',
    '/run/containerd',
  ]) {
    try {
      fs.rmdirSync(dir);
    } catch {
      // not empty (another containerd uses it) or not there
    }
  }
}

function toml(s: string): string {
  return JSON.stringify(s);
}
