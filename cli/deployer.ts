import fs from 'node:fs';
import path from 'node:path';
import { Context as activityContext } from '@temporalio/activity';
import type { Config } from '../core/config.ts';
import { ContainerEngine } from '../core/container-engine.ts';
import type { OnDemandDaemons } from '../core/daemons/on-demand.ts';
import type { Db } from '../core/db/client.ts';
import { registryLockForBuilds } from '../core/db/maintenance-lock.ts';
import type { Logger } from '../core/log.ts';
import type { RepoSources } from '../core/repo-sources/repo-source.ts';
import type { SecretBox } from '../core/secrets.ts';
import { tenantStackRunner } from '../tenant-stacks/from-config.ts';
import { parseServiceAccount } from '../tenant-stacks/kubernetes/deployer-access.ts';
import type { TenantStackRunner } from '../tenant-stacks/runner.ts';
import { createDeployActivities } from '../workers/activities/index.ts';
import { ensureBaseImages, ensureNodeMajor, ensurePythonVersion } from '../workers/build/base-images.ts';
import type { BaseImages } from '../workers/build/dockerfile.ts';
import { KubernetesRuntime } from '../workers/runtimes/kubernetes.ts';
import { LocalRuntime } from '../workers/runtimes/local.ts';
import type { Runtime } from '../workers/runtimes/runtime.ts';
import { type EmbeddedRuntime, startEmbeddedRuntime } from './embedded-runtime.ts';
import { resourceServers } from './resources.ts';

/**
 * The deployer-worker's activities: on the runtime the configuration names
 * (DEPLOY_MCP_BUILDKIT_ADDRESS, …), or on the embedded runtime's daemons, started here.
 */
export async function createDeployerActivities(
  config: Config,
  deps: { db: Db; secrets: SecretBox; log: Logger; repoSources: RepoSources },
  onStop: (name: string, fn: () => Promise<void>) => void,
) {
  const external = config.runtime.external;
  const rt: EmbeddedRuntime = external
    ? {
        registryHost: external.registryHost,
        buildkitAddress: external.buildkitAddress,
        ingressPort: config.runtime.ingressPort,
        apps: external.apps,
      }
    : await startEmbeddedRuntime(config, deps.log, onStop);
  const runner = tenantStackRunner(config, deps.secrets, deps.db);
  if (external) deps.log.info({ registry: external.registryHost }, 'using the configured runtime');
  let baseImages: Promise<BaseImages> | undefined;
  const baseImagePrefix = config.runtime.baseImagePrefix ?? `${rt.registryHost}/deploy-mcp`;
  const activities = createDeployActivities({
    db: deps.db,
    secrets: deps.secrets,
    runner,
    runtime: appRuntime(config, rt, runner),
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
    repoSources: deps.repoSources,
    nodeBaseImage: (base, major, onLog) =>
      ensureNodeMajor(
        {
          buildkitAddress: rt.buildkitAddress,
          registryHost: rt.registryHost,
          prefix: baseImagePrefix,
          imagesDir: path.join(config.toolsDir, 'images'),
          onLog,
        },
        base,
        major,
      ),
    pythonBaseImage: (base, version) =>
      ensurePythonVersion(
        {
          buildkitAddress: rt.buildkitAddress,
          registryHost: rt.registryHost,
          prefix: baseImagePrefix,
          imagesDir: path.join(config.toolsDir, 'images'),
        },
        base,
        version,
      ),
    buildTimeoutMs: config.runtime.buildTimeoutMs,
    registryLock: registryLockForBuilds(config),
    healthTimeoutMs: config.runtime.healthTimeoutMs,
    dataDir: config.dataDir,
    keepReleases: config.disk.keepReleases,
    resources: await resourceServers(config, rt, onStop),
  });
  return rt.daemons ? leasedActivities(activities, rt.daemons, deps.log) : activities;
}

/**
 * With the registry, buildkitd and podman on demand: every activity runs holding a lease on
 * them (started first if they are not running), so none stops under a build or deploy. The
 * sweep of stray releases runs after each start instead of at the server's (where it would
 * start them for nothing); the server's call answers 0 until then.
 */
function leasedActivities<T extends Record<string, unknown>>(
  activities: T,
  daemons: OnDemandDaemons,
  log: Logger,
): T {
  const leased: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities))
    leased[name] =
      typeof fn === 'function'
        ? async (...args: unknown[]) => {
            const release = await heartbeatWhile(daemons.acquire());
            try {
              return await fn.apply(activities, args);
            } finally {
              release();
            }
          }
        : fn;
  const sweep = activities.sweepStrayReleases;
  if (typeof sweep === 'function') {
    daemons.onStart = async () => {
      const removed = (await sweep.apply(activities)) as number;
      if (removed) log.info({ removed }, 'removed containers of releases that do not serve');
    };
    leased.sweepStrayReleases = async () => 0;
  }
  return leased as T;
}

/**
 * Heartbeats every 5 s while `p` is pending (the daemons starting, the registry's garbage
 * collection first) when called in an activity: a slow start must not pass for a dead worker
 * (the activities' heartbeat timeout is 20 s).
 */
async function heartbeatWhile<T>(p: Promise<T>): Promise<T> {
  let inActivity = true;
  try {
    activityContext.current();
  } catch {
    inActivity = false; // called outside an activity (e.g. by the server itself)
  }
  if (!inActivity) return p;
  const timer = setInterval(() => activityContext.current().heartbeat(), 5_000);
  try {
    return await p;
  } finally {
    clearInterval(timer);
  }
}

/** Where the deployer runs services: the Kubernetes cluster configured, else podman + Traefik here. */
function appRuntime(config: Config, rt: EmbeddedRuntime, runner: TenantStackRunner): Runtime {
  const k8s = config.runtime.kubernetes;
  if (k8s)
    return new KubernetesRuntime({
      cluster: { kubeconfig: fs.readFileSync(k8s.kubeconfigPath, 'utf8'), context: k8s.context },
      runner,
      ingressClass: k8s.ingressClass,
      ingressNamespace: k8s.ingressNamespace,
      appsDomain: config.runtime.appsDomain,
      ingressPort: config.runtime.ingressPort,
      tls: k8s.tlsSecret ? { kind: 'secret', secretName: k8s.tlsSecret } : undefined,
      clusterRegistry: k8s.clusterRegistry,
      registryHost: rt.registryHost,
      deployer: k8s.serviceAccount ? parseServiceAccount(k8s.serviceAccount) : undefined,
      nodeCidr: k8s.nodeCidr,
      podCidr: k8s.podCidr,
    });
  if (!rt.apps) throw new Error('the embedded runtime was started without podman and Traefik');
  return new LocalRuntime({
    engine: new ContainerEngine(rt.apps.engineSocket),
    engineSocket: rt.apps.engineSocket,
    routesDir: rt.apps.routesDir,
    routesApiUrl: rt.apps.routesApiUrl,
    ingressPort: rt.ingressPort,
    appsDomain: config.runtime.appsDomain,
  });
}
