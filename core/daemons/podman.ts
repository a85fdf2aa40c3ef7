import fs from 'node:fs';
import path from 'node:path';
import { ContainerEngine } from '../container-engine.ts';
import { ensureEgressRules } from '../network/egress.ts';
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

/**
 * Tenants' networks take their subnets from this pool (a /26 each: 1024 networks), machine-wide:
 * one podman network per tenant, made by the container provider (tenant-stacks/local/).
 */
export const APPS_SUBNET_POOL = { base: '10.214.0.0/16', size: 26 };

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
  const containersConf = path.join(o.dir, 'containers.conf');
  fs.writeFileSync(
    containersConf,
    `[network]\ndefault_subnet_pools = [{"base" = "${APPS_SUBNET_POOL.base}", "size" = ${APPS_SUBNET_POOL.size}}]\n`,
  );
  // Apps reach the internet and DNS, never the machine's services or another tenant's apps.
  await ensureEgressRules({ name: 'APPS', source: APPS_SUBNET_POOL.base });
  const daemon = await startDaemon({
    name: 'podman',
    command: o.bin,
    args: ['system', 'service', '--time=0', `unix://${socketPath}`],
    env: { CONTAINERS_REGISTRIES_CONF: registriesConf, CONTAINERS_CONF: containersConf },
    configFiles: [registriesConf, containersConf],
    // A socket left by a daemon that is gone; an adopted one keeps serving on its socket.
    beforeSpawn: () => fs.rmSync(socketPath, { force: true }),
    // conmon leaves files (e.g. "oom" after an out-of-memory kill) in its working directory.
    cwd: o.dir,
    logFile: path.join(o.dir, 'podman.log'),
    ready: () => httpOk({ socketPath, path: '/_ping' }),
  });
  await removeIdleTenantNetworks(socketPath);
  return { ...daemon, socketPath };
}

/**
 * Tenants' networks without containers (their last container went some other way than
 * through its stack, e.g. a crash): removed. The engine refuses to remove one in use, so a
 * network another server is about to use survives, or is made again by the provider.
 */
async function removeIdleTenantNetworks(socketPath: string): Promise<void> {
  const engine = new ContainerEngine(socketPath);
  for (const n of await engine.listNetworks({ 'deploy-mcp.network': 'tenant' }).catch(() => []))
    if (n.containers === 0) await engine.removeNetwork(n.name).catch(() => undefined);
}
