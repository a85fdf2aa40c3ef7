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
};

export type Buildkit = Daemon & { address: string };

/** Starts a rootful buildkitd with the OCI (runc) worker, listening on a unix socket. */
export async function startBuildkit(o: BuildkitOptions): Promise<Buildkit> {
  fs.mkdirSync(o.dir, { recursive: true });
  const socket = path.join(o.dir, 'buildkitd.sock');
  const configFile = path.join(o.dir, 'buildkitd.toml');
  const registries = o.insecureRegistries
    .map((r) => `[registry."${r}"]\n  http = true\n  insecure = true\n`)
    .join('');
  fs.writeFileSync(
    configFile,
    `[worker.oci]\n  enabled = true\n  snapshotter = "overlayfs"\n  gc = true\n` +
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
  return { ...daemon, address: `unix://${socket}` };
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
