import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { mountsUnder } from '../mounts.ts';
import { ensureEgressRules } from '../network/egress.ts';
import { socketAccepts } from './probes.ts';
import { type Daemon, startDaemon } from './supervise.ts';

export type BuildkitOptions = {
  /** Path to `buildkitd`. */
  bin: string;
  /** State directory (snapshots, cache, socket, log). */
  dir: string;
  /** Registries reached over plain HTTP, e.g. the local registry "127.0.0.1:5000". */
  insecureRegistries: string[];
  /** Memory the build steps of this daemon may use together, in MiB; 0: no cap. Default 2048. */
  memoryLimitMb?: number;
  /**
   * The build cache is garbage-collected down to this size (MiB), and also while the disk has
   * less than 10% free. Default 10240.
   */
  cacheLimitMb?: number;
  /**
   * Address range of the build steps' own network (default BUILD_SUBNET); "host" runs them in
   * the host's network namespace, for trusted builds only (tests of the daemon itself).
   */
  network?: string;
  /**
   * Pull-through caches, registry → mirror (`host[:port][/path]`), e.g. docker.io →
   * mirror.internal:5000 (DEPLOY_MCP_REGISTRY_MIRRORS). BuildKit pulls from the mirror first.
   */
  mirrors?: Record<string, string>;
};

/**
 * Build steps get addresses from this range, one network namespace each, machine-wide (every
 * buildkitd of the product shares the range and its address allocations, so concurrent
 * daemons never hand out the same address).
 */
export const BUILD_SUBNET = '10.213.0.0/16';
const execFileAsync = promisify(execFile);

/** Directory of the CNI plugins (Debian: containernetworking-plugins). */
export const CNI_BIN_DIR = '/usr/lib/cni';

export type Buildkit = Daemon & { address: string };

/** The worker label that tells clients the memory cap (workers/build/buildkit.ts reads it). */
export const MEMORY_LABEL = 'deploy-mcp.memory-mb';

/**
 * Starts a rootful buildkitd with the OCI (runc) worker, listening on a unix socket. Build steps
 * run in a cgroup of their own whose memory limit caps all of them together, so a runaway build
 * is killed by the kernel instead of starving the host.
 */
export async function startBuildkit(o: BuildkitOptions): Promise<Buildkit> {
  fs.mkdirSync(o.dir, { recursive: true });
  const socket = path.join(o.dir, 'buildkitd.sock');
  const configFile = path.join(o.dir, 'buildkitd.toml');
  const memoryLimitMb = o.memoryLimitMb ?? 2048;
  const cgroup = memoryLimitMb > 0 ? memoryCgroup(o.dir, memoryLimitMb) : undefined;
  const subnet = o.network ?? BUILD_SUBNET;
  const networkConfig = subnet === 'host' ? '  networkMode = "host"\n' : await buildNetwork(o.dir, subnet);
  const registries = registryConfig(o.insecureRegistries, o.mirrors ?? {});
  fs.writeFileSync(
    configFile,
    `[worker.oci]\n  enabled = true\n  snapshotter = "overlayfs"\n  gc = true\n${cacheGcConfig(o.cacheLimitMb ?? 10_240)}${networkConfig}` +
      (cgroup
        ? `  defaultCgroupParent = "${cgroup.name}"\n  labels = { "${MEMORY_LABEL}" = "${memoryLimitMb}" }\n`
        : '') +
      `[worker.containerd]\n  enabled = false\n${registries}`,
  );
  const daemon = await startDaemon({
    name: 'buildkitd',
    command: o.bin,
    args: ['--config', configFile, '--root', path.join(o.dir, 'state'), '--addr', `unix://${socket}`],
    configFiles: [configFile],
    // A socket left by a daemon that is gone; an adopted one keeps serving on its socket.
    beforeSpawn: () => fs.rmSync(socket, { force: true }),
    logFile: path.join(o.dir, 'buildkitd.log'),
    ready: () => socketAccepts(socket),
  });
  const stop = async () => {
    await daemon.stop();
    cgroup?.remove();
    // A daemon that was killed leaves its pooled network namespaces mounted (and their
    // addresses allocated): release them, so its state dir can be removed.
    if (subnet !== 'host')
      await releaseNamespaces(path.join(o.dir, 'state'), path.join(o.dir, 'cni', 'build.conflist'));
  };
  return { ...daemon, stop, address: `unix://${socket}` };
}

/** buildkitd.toml's [registry] sections: plain-HTTP registries and mirrors. */
export function registryConfig(insecure: string[], mirrors: Record<string, string>): string {
  const sections = new Map<string, string[]>();
  const add = (host: string, line: string) => sections.set(host, [...(sections.get(host) ?? []), line]);
  for (const r of insecure) {
    add(r, 'http = true');
    add(r, 'insecure = true');
  }
  for (const [registry, mirror] of Object.entries(mirrors))
    add(registry, `mirrors = [${JSON.stringify(mirror)}]`);
  return [...sections]
    .map(([host, lines]) => `[registry."${host}"]\n${lines.map((l) => `  ${l}\n`).join('')}`)
    .join('');
}

/**
 * BuildKit's cache bound: collected down to `mb` in all, and also whenever the disk has less than
 * 10% free (maxUsedSpace and minFreeSpace, both honoured by every GC policy BuildKit derives).
 */
export function cacheGcConfig(mb: number): string {
  return `  maxUsedSpace = "${mb}MB"\n  minFreeSpace = "10%"\n`;
}

/**
 * Each build step in a network namespace of its own, joined to the host by a point-to-point
 * link (CNI ptp: no bridge, so steps cannot reach one another below IP), with its address
 * masqueraded for the public internet. The egress rules (core/network/egress.ts) then keep
 * steps away from the machine itself (every product service: MCP, deployer, git, registry,
 * Temporal, Traefik) and from private ranges (other tenants' apps and builds), DNS excepted.
 */
async function buildNetwork(dir: string, subnet: string): Promise<string> {
  const conflist = path.join(dir, 'cni', 'build.conflist');
  fs.mkdirSync(path.dirname(conflist), { recursive: true });
  fs.writeFileSync(conflist, buildConflist('deploy-mcp-build', subnet));
  await ensureEgressRules({ name: 'BUILD', source: subnet });
  return cniWorkerConfig(conflist, CNI_BIN_DIR);
}

/**
 * The CNI network of build steps (see buildNetwork): ptp links, addresses of `subnet`, masqueraded,
 * and no IPv6 on the step's link (the `tuning` plugin; go-cni names it eth1, after the loopback
 * network): otherwise the link has an IPv6 link-local address, and the step reaches the other
 * end's link-local address, i.e. whatever listens on `::` in the namespace buildkitd runs in (the
 * host, for the product's own buildkitd), past every IPv4 rule.
 */
export function buildConflist(name: string, subnet: string): string {
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name,
      plugins: [
        {
          type: 'ptp',
          ipMasq: true,
          ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
        { type: 'tuning', sysctl: { 'net.ipv6.conf.eth1.disable_ipv6': '1' } },
      ],
    },
    null,
    2,
  );
}

/** buildkitd.toml's [worker.oci] lines that put each step in a namespace of the conflist's network. */
export function cniWorkerConfig(conflist: string, binDir: string): string {
  return `  networkMode = "cni"\n  cniConfigPath = "${conflist}"\n  cniBinaryPath = "${binDir}"\n  cniPoolSize = 4\n`;
}

/**
 * Undoes what a stopped daemon left of its build networks: each CNI namespace is deleted
 * through the plugin (its address and masquerading rule are released), then every namespace
 * under `<root>/net` is unmounted and removed.
 */
async function releaseNamespaces(root: string, conflist: string): Promise<void> {
  const netDir = path.join(root, 'net');
  const mounts = mountsUnder(netDir).filter((m) => m !== netDir);
  let plugin: Record<string, unknown> | undefined;
  try {
    const list = JSON.parse(fs.readFileSync(conflist, 'utf8')) as {
      cniVersion: string;
      name: string;
      plugins: Record<string, unknown>[];
    };
    plugin = { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] };
  } catch {
    // no network config: nothing to release through CNI
  }
  for (const ns of mounts) {
    if (plugin && path.dirname(ns) === path.join(netDir, 'cni')) {
      const env = {
        CNI_COMMAND: 'DEL',
        CNI_CONTAINERID: path.basename(ns),
        CNI_NETNS: ns,
        CNI_IFNAME: 'eth1', // go-cni names them eth<index>; index 0 is the loopback network
        CNI_PATH: CNI_BIN_DIR,
        PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      };
      await new Promise<void>((resolve) => {
        const child = spawn(path.join(CNI_BIN_DIR, String(plugin?.type)), [], {
          env,
          stdio: ['pipe', 'ignore', 'ignore'],
        });
        child.once('error', () => resolve());
        child.once('close', () => resolve());
        child.stdin.end(JSON.stringify(plugin));
      });
    }
    await execFileAsync('umount', [ns]).catch(() => undefined);
    fs.rmSync(ns, { force: true });
  }
}

/**
 * A memory cgroup named after the state dir (several daemons may run side by side), limited to
 * `mb`; runc puts each step at <name>/buildkit/<id> below it. cgroup v2, or v1's memory
 * hierarchy (this machine's hybrid layout).
 */
function memoryCgroup(dir: string, mb: number) {
  const name = `deploy-mcp-buildkit-${createHash('sha256').update(path.resolve(dir)).digest('hex').slice(0, 12)}`;
  const v2 = fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
  const memoryDir = v2 ? path.join('/sys/fs/cgroup', name) : path.join('/sys/fs/cgroup/memory', name);
  try {
    fs.mkdirSync(memoryDir, { recursive: true });
    fs.writeFileSync(
      path.join(memoryDir, v2 ? 'memory.max' : 'memory.limit_in_bytes'),
      String(mb * 1024 * 1024),
    );
  } catch (err) {
    throw new Error(
      `cannot cap build memory at ${mb} MiB (${(err as Error).message}); ` +
        'set DEPLOY_MCP_BUILD_MEMORY_MB=0 to build without a cap',
    );
  }
  return {
    name,
    /** Removes the cgroup from every hierarchy runc created it in (once its steps are gone). */
    remove: () => {
      const roots = v2
        ? ['/sys/fs/cgroup']
        : fs.readdirSync('/sys/fs/cgroup').map((h) => `/sys/fs/cgroup/${h}`);
      for (const root of roots) removeCgroupTree(path.join(root, name));
    },
  };
}

function removeCgroupTree(dir: string) {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  try {
    fs.rmdirSync(dir);
  } catch {
    // still in use (a step outlived the daemon) or not ours to remove: leave it
  }
}
