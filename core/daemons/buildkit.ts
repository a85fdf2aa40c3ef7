import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
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
};

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
  const registries = o.insecureRegistries
    .map((r) => `[registry."${r}"]\n  http = true\n  insecure = true\n`)
    .join('');
  fs.writeFileSync(
    configFile,
    `[worker.oci]\n  enabled = true\n  snapshotter = "overlayfs"\n  gc = true\n` +
      (cgroup
        ? `  defaultCgroupParent = "${cgroup.name}"\n  labels = { "${MEMORY_LABEL}" = "${memoryLimitMb}" }\n`
        : '') +
      `[worker.containerd]\n  enabled = false\n${registries}`,
  );
  fs.rmSync(socket, { force: true });
  const daemon = await startDaemon({
    name: 'buildkitd',
    command: o.bin,
    args: ['--config', configFile, '--root', path.join(o.dir, 'state'), '--addr', `unix://${socket}`],
    logFile: path.join(o.dir, 'buildkitd.log'),
    ready: () => socketAccepts(socket),
  });
  const stop = async () => {
    await daemon.stop();
    cgroup?.remove();
  };
  return { ...daemon, stop, address: `unix://${socket}` };
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

function socketAccepts(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path: socketPath });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
