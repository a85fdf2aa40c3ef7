import path from 'node:path';
import type { Config } from '../core/config.ts';
import { startBuildkit } from '../core/daemons/buildkit.ts';
import { OnDemandDaemons } from '../core/daemons/on-demand.ts';
import { startPodmanService } from '../core/daemons/podman.ts';
import { embeddedPostgresOnDemand, type PostgresOnDemand } from '../core/daemons/postgres.ts';
import { startRegistry } from '../core/daemons/registry.ts';
import { type Daemon, recordedDaemon } from '../core/daemons/supervise.ts';
import { startTraefik } from '../core/daemons/traefik.ts';
import type { Logger } from '../core/log.ts';

export type EmbeddedRuntime = {
  registryHost: string;
  buildkitAddress: string;
  ingressPort: number;
  /** Where apps run on this machine (podman + Traefik); absent when they run on Kubernetes. */
  apps?: {
    engineSocket: string;
    routesDir: string;
    /** Traefik's API (embedded runtime only): route switches wait until Traefik applies them. */
    routesApiUrl?: string;
  };
  /** The embedded PostgreSQL `postgres` resources live on; absent with an admin URL or on Kubernetes. */
  postgres?: PostgresOnDemand;
  /**
   * Set when the registry, buildkitd and podman run on demand: every use of them (a build or
   * deploy activity) holds a lease (`daemons.use`); absent when they run all along.
   */
  daemons?: OnDemandDaemons;
};

/**
 * The daemons the embedded default deploys with, as child processes under the data dir: the OCI
 * registry, buildkitd, podman's Docker Engine API and Traefik. `onStop` receives each stopper.
 * With embedded apps and `DEPLOY_MCP_DAEMONS_IDLE_SECONDS` > 0 (the default), the registry,
 * buildkitd and podman start on the first build or deploy and stop when idle (`daemons`);
 * Traefik serves the apps all along.
 */
export async function startEmbeddedRuntime(
  config: Config,
  log: Logger,
  onStop: (name: string, fn: () => Promise<void>) => void,
): Promise<EmbeddedRuntime> {
  // On Kubernetes the cluster runs the apps: only the build side (registry, buildkitd) is ours.
  const apps = !config.runtime.kubernetes;
  const dir = (name: string) => path.join(config.dataDir, name);
  // The build and deploy side on demand (embedded apps only: a cluster pulls from the registry
  // whenever it reschedules a pod).
  const onDemand = apps && config.daemons.idleStopMs > 0;
  const [side, ...started] = await Promise.allSettled([
    onDemand ? Promise.resolve(undefined) : startBuildSide(config, apps, log),
    ...(apps
      ? [startTraefik({ bin: 'traefik', dir: dir('traefik'), port: config.runtime.ingressPort })]
      : []),
  ]);
  const buildSide = side.status === 'fulfilled' ? side.value : undefined;
  if (buildSide) onStop('build and deploy daemons', buildSide.stop);
  // Databases for the apps (issue 11): on this machine unless an admin URL names a server. It
  // starts with the runtime once it holds databases, else on the first create_resource.
  const postgres =
    apps && config.resources.postgres.kind === 'embedded'
      ? embeddedPostgresOnDemand({ dir: dir('postgres'), port: config.resources.postgres.port }, onStop)
      : undefined;
  const postgresFailed = postgres?.initialized
    ? await postgres.ensure().then(
        () => undefined,
        (err: unknown) => ({ err }),
      )
    : undefined;
  // Whatever started is stopped with the rest, even when a sibling failed.
  for (const s of started) if (s.status === 'fulfilled') onStop(s.value.name, s.value.stop);
  const failed = [side, ...started].find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  if (postgresFailed) throw postgresFailed.err;
  const traefik = started[0]?.status === 'fulfilled' ? started[0].value : undefined;
  const { daemons, adopted = [] } = onDemand ? await daemonsOnDemand(config, log, onStop) : {};
  log.info(
    {
      // Daemons found running (started by a server that died) and taken over.
      adopted: [...(buildSide?.daemons ?? adopted), traefik].filter((d) => d?.adopted).map((d) => d?.name),
      registry: buildSideAddresses(config).registryHost,
      ...(daemons
        ? { onDemand: ['registry', 'buildkitd', 'podman'], idleStopMs: config.daemons.idleStopMs }
        : {}),
      ...(apps ? { ingress: `http://*.${config.runtime.appsDomain}:${config.runtime.ingressPort}` } : {}),
    },
    'embedded runtime started',
  );
  const addresses = buildSideAddresses(config);
  return {
    registryHost: addresses.registryHost,
    buildkitAddress: addresses.buildkitAddress,
    ingressPort: config.runtime.ingressPort,
    ...(apps && traefik
      ? {
          apps: {
            engineSocket: addresses.engineSocket,
            routesDir: traefik.routesDir,
            routesApiUrl: traefik.apiUrl,
          },
        }
      : {}),
    ...(postgres ? { postgres } : {}),
    ...(daemons ? { daemons } : {}),
  };
}

/** Where the registry, buildkitd and podman serve: fixed by the settings, so known before they start. */
function buildSideAddresses(config: Config) {
  return {
    registryHost: `127.0.0.1:${config.runtime.registryPort}`,
    buildkitAddress: `unix://${path.join(config.dataDir, 'buildkit', 'buildkitd.sock')}`,
    engineSocket: path.join(config.dataDir, 'podman', 'podman.sock'),
  };
}

/**
 * The registry, then buildkitd and (with embedded apps) podman's API service; `stop()` stops
 * every one that started, also when a sibling failed (then the start throws).
 */
async function startBuildSide(config: Config, apps: boolean, log: Logger) {
  const dir = (name: string) => path.join(config.dataDir, name);
  const registry = await startRegistry({
    bin: 'docker-registry',
    dir: dir('registry'),
    port: config.runtime.registryPort,
  });
  const started = await Promise.allSettled([
    startBuildkit({
      bin: 'buildkitd',
      dir: dir('buildkit'),
      insecureRegistries: [registry.host],
      memoryLimitMb: config.runtime.buildMemoryMb,
      cacheLimitMb: config.disk.buildCacheMb,
      mirrors: config.runtime.registryMirrors,
    }),
    ...(apps
      ? [startPodmanService({ bin: 'podman', dir: dir('podman'), insecureRegistries: [registry.host] })]
      : []),
  ]);
  const daemons: Daemon[] = [
    registry,
    ...started.flatMap((s) => (s.status === 'fulfilled' ? [s.value as Daemon] : [])),
  ];
  const stop = async () => {
    // Reverse order: buildkitd and podman before the registry they push to and pull from.
    for (const d of [...daemons].reverse())
      await d.stop().catch((err: unknown) => log.error({ err, component: d.name }, 'error while stopping'));
  };
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  const [buildkit, podman] = started.map((s) => (s as PromiseFulfilledResult<unknown>).value) as [
    Awaited<ReturnType<typeof startBuildkit>>,
    Awaited<ReturnType<typeof startPodmanService>> | undefined,
  ];
  // The addresses handed out before the start must be the ones the daemons serve on.
  const expected = buildSideAddresses(config);
  const actual = {
    registryHost: registry.host,
    buildkitAddress: buildkit.address,
    engineSocket: podman?.socketPath,
  };
  if (
    actual.registryHost !== expected.registryHost ||
    actual.buildkitAddress !== expected.buildkitAddress ||
    (podman && actual.engineSocket !== expected.engineSocket)
  ) {
    await stop();
    throw new Error(`the daemons serve elsewhere than expected: ${JSON.stringify({ actual, expected })}`);
  }
  return { daemons, stop };
}

/** Pid files of the daemons started on demand (an earlier server's may still run them). */
const ON_DEMAND_PID_FILES = [
  ['registry', 'registry.pid'],
  ['buildkit', 'buildkitd.pid'],
  ['podman', 'podman.pid'],
] as const;

/**
 * The registry, buildkitd and podman started on the first lease (a build or deploy activity)
 * and stopped after `DEPLOY_MCP_DAEMONS_IDLE_SECONDS` with none. Ones an earlier server left
 * running are adopted now and stopped after the idle period like any other.
 */
async function daemonsOnDemand(
  config: Config,
  log: Logger,
  onStop: (name: string, fn: () => Promise<void>) => void,
): Promise<{ daemons: OnDemandDaemons; adopted: Daemon[] }> {
  const dlog = log.child({ component: 'daemons-on-demand' });
  let adopted: Daemon[] = [];
  const daemons = new OnDemandDaemons({
    start: async () => {
      const side = await startBuildSide(config, true, log);
      adopted = side.daemons.filter((d) => d.adopted);
      return side;
    },
    idleMs: config.daemons.idleStopMs,
    onEvent: (e) =>
      e.kind === 'started'
        ? dlog.info({ ms: e.ms }, 'registry, buildkitd and podman started')
        : dlog.info({ reason: e.reason }, 'registry, buildkitd and podman stopped'),
    onStopError: (err) => dlog.error({ err }, 'stopping the idle daemons failed'),
    onHookError: (err) => dlog.warn({ err }, 'after-start task failed'),
  });
  onStop('build and deploy daemons', () => daemons.shutdown());
  // Taken over (or replaced) now, so the idle period stops them like any other.
  if (ON_DEMAND_PID_FILES.some(([d, f]) => recordedDaemon(path.join(config.dataDir, d, f)))) {
    const release = await daemons.acquire();
    release();
  }
  return { daemons, adopted };
}
