import path from 'node:path';
import type { Config } from '../core/config.ts';
import { startBuildkit } from '../core/daemons/buildkit.ts';
import { startPodmanService } from '../core/daemons/podman.ts';
import { embeddedPostgresOnDemand, type PostgresOnDemand } from '../core/daemons/postgres.ts';
import { startRegistry } from '../core/daemons/registry.ts';
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
};

/**
 * The daemons the embedded default deploys with, as child processes under the data dir: the OCI
 * registry, buildkitd, podman's Docker Engine API and Traefik. `onStop` receives each stopper.
 */
export async function startEmbeddedRuntime(
  config: Config,
  log: Logger,
  onStop: (name: string, fn: () => Promise<void>) => void,
): Promise<EmbeddedRuntime> {
  // On Kubernetes the cluster runs the apps: only the build side (registry, buildkitd) is ours.
  const apps = !config.runtime.kubernetes;
  const dir = (name: string) => path.join(config.dataDir, name);
  const registry = await startRegistry({
    bin: 'docker-registry',
    dir: dir('registry'),
    port: config.runtime.registryPort,
  });
  onStop('registry', registry.stop);
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
      ? [
          startPodmanService({ bin: 'podman', dir: dir('podman'), insecureRegistries: [registry.host] }),
          startTraefik({ bin: 'traefik', dir: dir('traefik'), port: config.runtime.ingressPort }),
        ]
      : []),
  ]);
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
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  if (postgresFailed) throw postgresFailed.err;
  const [buildkit, podman, traefik] = started.map((s) => (s as PromiseFulfilledResult<unknown>).value) as [
    Awaited<ReturnType<typeof startBuildkit>>,
    Awaited<ReturnType<typeof startPodmanService>> | undefined,
    Awaited<ReturnType<typeof startTraefik>> | undefined,
  ];
  log.info(
    {
      // Daemons found running (started by a server that died) and taken over.
      adopted: [registry, buildkit, podman, traefik].filter((d) => d?.adopted).map((d) => d?.name),
      registry: registry.host,
      ...(apps ? { ingress: `http://*.${config.runtime.appsDomain}:${config.runtime.ingressPort}` } : {}),
    },
    'embedded runtime started',
  );
  return {
    registryHost: registry.host,
    buildkitAddress: buildkit.address,
    ingressPort: config.runtime.ingressPort,
    ...(podman && traefik
      ? {
          apps: {
            engineSocket: podman.socketPath,
            routesDir: traefik.routesDir,
            routesApiUrl: traefik.apiUrl,
          },
        }
      : {}),
    ...(postgres ? { postgres } : {}),
  };
}
