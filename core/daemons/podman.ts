import fs from 'node:fs';
import path from 'node:path';
import { httpOk } from './probes.ts';
import { type Daemon, startDaemon } from './supervise.ts';

export type PodmanServiceOptions = {
  /** Path to `podman`. */
  bin: string;
  dir: string;
  /** Registries podman may pull from over plain HTTP (the local registry). */
  insecureRegistries: string[];
};

export type PodmanService = Daemon & { socketPath: string };

/** Serves the Docker Engine API from podman on a unix socket (`podman system service`). */
export async function startPodmanService(o: PodmanServiceOptions): Promise<PodmanService> {
  fs.mkdirSync(o.dir, { recursive: true });
  const socketPath = path.join(o.dir, 'podman.sock');
  const registriesConf = path.join(o.dir, 'registries.conf');
  fs.writeFileSync(
    registriesConf,
    'unqualified-search-registries = []\n' +
      o.insecureRegistries.map((r) => `[[registry]]\nlocation = "${r}"\ninsecure = true\n`).join(''),
  );
  fs.rmSync(socketPath, { force: true });
  const daemon = await startDaemon({
    name: 'podman',
    command: o.bin,
    args: ['system', 'service', '--time=0', `unix://${socketPath}`],
    env: { CONTAINERS_REGISTRIES_CONF: registriesConf },
    // conmon leaves files (e.g. "oom" after an out-of-memory kill) in its working directory.
    cwd: o.dir,
    logFile: path.join(o.dir, 'podman.log'),
    ready: () => httpOk({ socketPath, path: '/_ping' }),
  });
  return { ...daemon, socketPath };
}
