import path from 'node:path';
import type { Config } from '../core/config.ts';
import { APPS_SUBNET_POOL } from '../core/daemons/podman.ts';
import { POSTGRES_SUPERUSER, postgresBinDir } from '../core/daemons/postgres.ts';
import { allowHostPort, revokeHostPort } from '../core/network/egress.ts';
import { EMBEDDED_REGIONS, LOCAL_REGION, type RegionCatalog } from '../core/resources/catalog.ts';
import type { DeployDeps } from '../workers/activities/deploy.ts';
import type { EmbeddedRuntime } from './embedded-runtime.ts';

/** Host name apps' containers reach this machine by (podman adds it to every container). */
export const CONTAINER_HOST_ALIAS = 'host.containers.internal';

/**
 * The resource types (and regions) this configuration offers: PostgreSQL on the embedded server
 * (podman runtime) or on the admin URL's; SQLite as a file on a volume (podman runtime), or in
 * Turso when it is configured (any runtime).
 */
export function offeredResources(config: Config): Partial<RegionCatalog> {
  const pg = config.resources.postgres;
  const embeddedApps = !config.runtime.kubernetes;
  const turso = config.resources.turso;
  return {
    ...(embeddedApps ? { sqlite: EMBEDDED_REGIONS.sqlite } : {}),
    // Turso, when configured, takes sqlite over: its regions are the configured locations.
    ...(turso ? { sqlite: turso.regions } : {}),
    ...(pg.kind === 'external' || embeddedApps
      ? { postgres: pg.kind === 'external' ? [LOCAL_REGION] : EMBEDDED_REGIONS.postgres }
      : {}),
  };
}

/**
 * Where the deployer's resource activities find their servers: the embedded PostgreSQL the
 * embedded runtime started (apps reach it through the firewall's one open host port), or the
 * admin URL's server.
 */
export async function resourceServers(
  config: Config,
  rt: EmbeddedRuntime,
  onStop: (name: string, fn: () => Promise<void>) => void,
): Promise<NonNullable<DeployDeps['resources']>> {
  const common = {
    backupsDir: path.join(config.dataDir, 'backups'),
    backupRetentionDays: config.resources.backupRetentionDays,
    turso: config.resources.turso,
    // Embedded SQLite: directories mounted into the apps' containers (podman runtime only).
    volumesDir: rt.apps && !config.runtime.kubernetes ? path.join(config.dataDir, 'volumes') : undefined,
  };
  const pg = config.resources.postgres;
  if (pg.kind === 'external') {
    const [host, port] = pg.appHost.split(':');
    return {
      ...common,
      postgres: {
        admin: { url: pg.adminUrl },
        appHost: host ?? pg.appHost,
        appPort: Number(port ?? new URL(pg.adminUrl).port ?? 5432) || 5432,
        binDir: postgresBinDir(),
      },
    };
  }
  const server = rt.postgres;
  if (!server) return { ...common, postgres: undefined };
  await allowHostPort({ name: 'APPS', source: APPS_SUBNET_POOL.base }, server.port);
  onStop('postgres firewall opening', () => revokeHostPort('APPS', server.port));
  return {
    ...common,
    postgres: {
      admin: { socketDir: server.socketDir, port: server.port, user: POSTGRES_SUPERUSER },
      appHost: CONTAINER_HOST_ALIAS,
      appPort: server.port,
      binDir: server.binDir,
      ensureStarted: async () => {
        await server.ensure();
      },
    },
  };
}
