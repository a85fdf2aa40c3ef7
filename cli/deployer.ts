import path from 'node:path';
import type { Config } from '../core/config.ts';
import { ContainerEngine } from '../core/container-engine.ts';
import type { Db } from '../core/db/client.ts';
import type { Logger } from '../core/log.ts';
import type { SecretBox } from '../core/secrets.ts';
import { tenantStackRunner } from '../tenant-stacks/from-config.ts';
import { createDeployActivities } from '../workers/activities/index.ts';
import { ensureBaseImages } from '../workers/build/base-images.ts';
import type { BaseImages } from '../workers/build/dockerfile.ts';
import { type EmbeddedRuntime, startEmbeddedRuntime } from './embedded-runtime.ts';

/**
 * The deployer-worker's activities: on the runtime the configuration names
 * (DEPLOY_MCP_BUILDKIT_ADDRESS, …), or on the embedded runtime's daemons, started here.
 */
export async function createDeployerActivities(
  config: Config,
  deps: { db: Db; secrets: SecretBox; log: Logger },
  onStop: (name: string, fn: () => Promise<void>) => void,
) {
  const external = config.runtime.external;
  const rt: EmbeddedRuntime = external
    ? { ...external, ingressPort: config.runtime.ingressPort }
    : await startEmbeddedRuntime(config, deps.log, onStop);
  if (external) deps.log.info({ registry: external.registryHost }, 'using the configured runtime');
  let baseImages: Promise<BaseImages> | undefined;
  const baseImagePrefix = config.runtime.baseImagePrefix ?? `${rt.registryHost}/deploy-mcp`;
  return createDeployActivities({
    db: deps.db,
    secrets: deps.secrets,
    runner: tenantStackRunner(config, deps.secrets),
    engine: new ContainerEngine(rt.engineSocket),
    engineSocket: rt.engineSocket,
    buildkitAddress: rt.buildkitAddress,
    registryHost: rt.registryHost,
    baseImagePrefix,
    baseImages: () => {
      // Published once per process; a failed attempt is retried by the next build.
      baseImages ??= ensureBaseImages({
        buildkitAddress: rt.buildkitAddress,
        registryHost: rt.registryHost,
        prefix: baseImagePrefix,
        imagesDir: path.join(config.toolsDir, 'images'),
      }).catch((err: unknown) => {
        baseImages = undefined;
        throw err;
      });
      return baseImages;
    },
    gitBaseUrl: `${config.publicUrl}/git`,
    routesDir: rt.routesDir,
    routesApiUrl: rt.routesApiUrl,
    ingressPort: rt.ingressPort,
    appsDomain: config.runtime.appsDomain,
    buildTimeoutMs: config.runtime.buildTimeoutMs,
    healthTimeoutMs: config.runtime.healthTimeoutMs,
    dataDir: config.dataDir,
  });
}
