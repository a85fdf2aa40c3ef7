import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure, CancelledFailure, Context, heartbeat } from '@temporalio/activity';
import type { ContainerEngine } from '../../core/container-engine.ts';
import type { Db } from '../../core/db/client.ts';
import { OUT_OF_DISK_SPACE, outOfDiskSpace } from '../../core/resource-faults.ts';
import type { SecretBox } from '../../core/secrets.ts';
import { issueGitToken } from '../../git/tokens.ts';
import { localServiceProgram, type ReleaseSpec, tenantNetwork } from '../../tenant-stacks/local/program.ts';
import type { TenantStackRunner } from '../../tenant-stacks/runner.ts';
import { BuildError, buildAndPush } from '../build/buildkit.ts';
import { DetectError, detectBuildPlan } from '../build/detect.ts';
import {
  type BaseImages,
  BUILD_ENV_SECRET,
  buildEnvFile,
  DOCKERIGNORE,
  renderDockerfile,
  scopeBuildCache,
} from '../build/dockerfile.ts';
import { addFileIfMissing, assertContained } from '../build/workspace.ts';
import { waitUntilServing } from '../deploy/health.ts';
import { IN_FLIGHT_STATUSES } from '../deploy/statuses.ts';

const run = promisify(execFile);

export type DeployDeps = {
  db: Db;
  secrets: SecretBox;
  runner: TenantStackRunner;
  engine: ContainerEngine;
  engineSocket: string;
  buildkitAddress: string;
  registryHost: string;
  /** Where base images live (`host:port/path`), for `FROM deploy-mcp/<name>` in user Dockerfiles. */
  baseImagePrefix: string;
  /** Base images in the registry (published once, on first use). */
  baseImages: () => Promise<BaseImages>;
  /** Base URL of our git server, for token clones. */
  gitBaseUrl: string;
  routesDir: string;
  /** Traefik's API, to confirm a route switch before the old release goes (optional). */
  routesApiUrl?: string | undefined;
  /** Traefik's web entry point on this host, and the domain apps get names under. */
  ingressPort: number;
  appsDomain: string;
  buildTimeoutMs: number;
  healthTimeoutMs: number;
  /** The data dir (embedded database, stack state, daemons), named in "out of disk space on …". */
  dataDir?: string;
};

/** Lines of build and runtime logs kept on the deployment row. */
const LOG_TAIL_LINES = 500;

/**
 * The deploy activities. A step that runs out of disk space (the database, the build work dir,
 * BuildKit, Pulumi) fails at once with "out of disk space on <what>": retrying cannot help until
 * someone frees space. Recording a deployment's end (finishUnsuccessful) keeps Temporal's retries:
 * the workflow gives it a bounded schedule, and space may be freed meanwhile.
 */
export function createDeployActivities(deps: DeployDeps) {
  const { buildImage, releaseImage, destroyService, ...others } = deployActivities(deps);
  const dataDir = `the data dir (${deps.dataDir})`;
  /** Rethrows `err`, as "out of disk space on …" when it is that; `elsewhere` names a disk we cannot check. */
  const onFullDisk =
    (tmp: string, elsewhere: (err: unknown) => string) =>
    async (err: unknown): Promise<never> => {
      // Our own verdicts stand (an app's log may mention a full disk of its own); a build's is BuildKit's.
      const ours = err instanceof ApplicationFailure && err.type !== 'BuildFailed';
      const fault = ours ? undefined : await outOfDiskSpace(err, [deps.dataDir, os.tmpdir()]);
      if (!fault) throw err;
      const what = fault.full
        ? fault.full === deps.dataDir
          ? dataDir
          : `${tmp} (${fault.full})`
        : fault.source === 'database'
          ? fault.engine === 'postgresql'
            ? 'the database server'
            : deps.dataDir
              ? dataDir
              : 'the database'
          : elsewhere(err);
      throw ApplicationFailure.create({
        message: `out of disk space on ${what}`,
        type: OUT_OF_DISK_SPACE,
        nonRetryable: true,
        cause: err instanceof Error ? err : undefined,
      });
    };
  const runtime = () => (deps.dataDir ? dataDir : 'the runtime');
  // BuildKit's failures arrive as BuildFailed; anything else in a build wrote to its work dir.
  const build = (err: unknown) =>
    err instanceof ApplicationFailure ? 'the build cache' : `the build work dir (${os.tmpdir()})`;
  return {
    ...others,
    buildImage: (deploymentId: string) =>
      buildImage(deploymentId).catch(onFullDisk('the build work dir', build)),
    releaseImage: (deploymentId: string, imageRef: string) =>
      releaseImage(deploymentId, imageRef).catch(onFullDisk('the temp dir', runtime)),
    destroyService: (serviceId: string) =>
      destroyService(serviceId).catch(onFullDisk('the temp dir', runtime)),
  };
}

function deployActivities(deps: DeployDeps) {
  const { db } = deps;

  async function load(deploymentId: string) {
    const d = await db.deployment.findUniqueOrThrow({
      where: { id: deploymentId },
      include: {
        service: {
          include: { repo: true, project: { select: { name: true } }, user: { select: { ownerName: true } } },
        },
      },
    });
    return { deployment: d, service: d.service };
  }

  async function setStatus(deploymentId: string, status: string, reason?: string) {
    // A deployment superseded meanwhile is not moved back into flight.
    const inFlight = status === 'building' || status === 'deploying';
    await db.$transaction(async (tx) => {
      const { count } = await tx.deployment.updateMany({
        where: {
          id: deploymentId,
          ...(inFlight ? { status: { in: IN_FLIGHT_STATUSES } } : {}),
        },
        data: {
          status,
          statusReason: reason ?? null,
          ...(status === 'building' ? { startedAt: new Date() } : {}),
          ...(['active', 'failed', 'cancelled', 'superseded'].includes(status)
            ? { finishedAt: new Date() }
            : {}),
        },
      });
      if (count)
        await tx.deploymentStatusChange.create({ data: { deploymentId, status, reason: reason ?? null } });
    });
  }

  async function addPhase(deploymentId: string, phase: string, ms: number) {
    const d = await db.deployment.findUniqueOrThrow({
      where: { id: deploymentId },
      select: { phaseTimings: true },
    });
    const timings = {
      ...(d.phaseTimings ? (JSON.parse(d.phaseTimings) as Record<string, number>) : {}),
      [phase]: Math.round(ms),
    };
    await db.deployment.update({
      where: { id: deploymentId },
      data: { phaseTimings: JSON.stringify(timings) },
    });
  }

  function serviceEnv(service: { id: string; envEncrypted: string | null }): Record<string, string> {
    return service.envEncrypted
      ? deps.secrets.openJson(service.envEncrypted, `service:${service.id}:env`)
      : {};
  }

  function releaseSpec(
    key: string,
    image: string,
    service: {
      id: string;
      envEncrypted: string | null;
      port: number | null;
      memoryMb: number;
      cpuMillis: number;
    },
  ): ReleaseSpec {
    return {
      key,
      image,
      env: serviceEnv(service),
      port: service.port ?? 3000,
      memoryMb: service.memoryMb,
      cpuMillis: service.cpuMillis,
    };
  }

  type LoadedService = Awaited<ReturnType<typeof load>>['service'];

  function program(
    service: LoadedService,
    active: ReleaseSpec | undefined,
    candidate: ReleaseSpec | undefined,
  ) {
    return localServiceProgram({
      slug: service.stackName,
      host: hostFor(service),
      active,
      candidate,
      engineSocket: deps.engineSocket,
      routesDir: deps.routesDir,
      routesApiUrl: deps.routesApiUrl,
      labels: { 'deploy-mcp.service': service.id, 'deploy-mcp.user': service.userId },
      network: tenantNetwork(service.userId),
    });
  }

  /** The hostname reserved for the service (DeployStarter reserves it before any deployment). */
  function hostFor(service: LoadedService) {
    if (!service.hostLabel)
      throw ApplicationFailure.nonRetryable(
        'the service has no hostname reserved: redeploy it',
        'InvalidService',
      );
    return `${service.hostLabel}.${deps.appsDomain}`;
  }

  /** The release currently serving (its key and image), if any. */
  async function currentRelease(service: { currentReleaseId: string | null }) {
    if (!service.currentReleaseId) return undefined;
    const r = await db.release.findUnique({ where: { id: service.currentReleaseId } });
    return r ? { key: r.deploymentId.slice(-12), image: r.imageRef } : undefined;
  }

  return {
    /** Clones the commit with a short-lived token, detects the build pack, builds and pushes. */
    async buildImage(deploymentId: string): Promise<string> {
      using _ = keepAlive();
      const { deployment, service } = await load(deploymentId);
      if (!deployment.commitSha || !service.repo) {
        throw ApplicationFailure.nonRetryable('the service has no repo on our git server', 'InvalidService');
      }
      const imageRef = `${deps.registryHost}/t/${service.stackName}:${deployment.commitSha.slice(0, 12)}`;
      await setStatus(deploymentId, 'building');
      const work = fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-build-'));
      const log: string[] = [];
      const record = (line: string) => {
        log.push(line);
        if (log.length > LOG_TAIL_LINES) log.shift();
      };
      try {
        let t0 = Date.now();
        const { token } = await issueGitToken(db, {
          repoId: service.repo.id,
          userId: service.userId,
          scope: 'pull',
          ttlSeconds: 600,
        });
        const url = `${deps.gitBaseUrl}/${service.repo.ownerName}/${service.repo.name}.git`;
        const src = path.join(work, 'src');
        const git = (args: string[]) => run('git', args, { env: gitEnv(token) });
        await git(['init', '-q', src]);
        await git(['-C', src, 'fetch', '-q', '--depth', '1', url, deployment.commitSha]);
        await git(['-C', src, 'checkout', '-q', deployment.commitSha]);
        fs.rmSync(path.join(src, '.git'), { recursive: true, force: true });
        // Before any of our code reads the checkout: no link may lead out of it.
        assertContained(src);
        record(`cloned ${service.repo.ownerName}/${service.repo.name} at ${deployment.commitSha}`);
        await addPhase(deploymentId, 'clone', Date.now() - t0);

        t0 = Date.now(); // the build phase includes publishing a base image on its first use
        const plan = detectBuildPlan(src, {
          buildPack: service.buildPack as 'railpack' | 'dockerfile' | 'static',
          installCommand: service.installCommand ?? undefined,
          buildCommand: service.buildCommand ?? undefined,
          startCommand: service.startCommand ?? undefined,
        });
        for (const note of plan.notes) record(note);
        const meta = path.join(work, 'meta');
        fs.mkdirSync(meta);
        // Published on first use; a user's Dockerfile may name them too (FROM deploy-mcp/node).
        const base = await deps.baseImages();
        if (plan.pack === 'dockerfile')
          fs.writeFileSync(
            path.join(meta, 'Dockerfile'),
            scopeBuildCache(fs.readFileSync(path.join(src, plan.dockerfile), 'utf8'), service.stackName),
          );
        else
          fs.writeFileSync(
            path.join(meta, 'Dockerfile'),
            renderDockerfile(plan, base, { cacheId: service.stackName }),
          );
        addFileIfMissing(path.join(src, '.dockerignore'), DOCKERIGNORE);
        const secretFile = path.join(meta, 'build.env');
        fs.writeFileSync(secretFile, buildEnvFile(serviceEnv(service)), { mode: 0o600 });

        let pushStart: number | undefined;
        const digest = await buildAndPush({
          address: deps.buildkitAddress,
          contextDir: src,
          dockerfileDir: meta,
          imageRef,
          secrets: { [BUILD_ENV_SECRET]: secretFile },
          baseImagePrefix: deps.baseImagePrefix,
          timeoutMs: deps.buildTimeoutMs,
          signal: Context.current().cancellationSignal, // a newer deployment superseded this one
          onLog: (line) => {
            record(line);
            // BuildKit's last step exports the layers and pushes them: the "push" phase.
            if (pushStart === undefined && / exporting to image$/.test(line)) pushStart = Date.now();
          },
        });
        const pushed = Date.now();
        await addPhase(deploymentId, 'build', (pushStart ?? pushed) - t0);
        await addPhase(deploymentId, 'push', pushed - (pushStart ?? pushed));
        // Releases run the image by digest: a tag is rewritten when the commit is built again.
        const pinned = `${imageRef.slice(0, imageRef.lastIndexOf(':'))}@${digest}`;
        record(`pushed ${imageRef} (${digest})`);
        await db.deployment.update({
          where: { id: deploymentId },
          data: { imageRef: pinned, buildLogTail: log.join('\n') },
        });
        return pinned;
      } catch (err) {
        await db.deployment.update({ where: { id: deploymentId }, data: { buildLogTail: log.join('\n') } });
        if (err instanceof DetectError || err instanceof BuildError) {
          throw ApplicationFailure.nonRetryable(err.message, 'BuildFailed');
        }
        throw err;
      } finally {
        fs.rmSync(work, { recursive: true, force: true });
      }
    },

    /**
     * Starts the new release beside the current one, waits until it answers, then moves the
     * route to it and removes the old one. If it never becomes healthy it is removed and the
     * current release keeps serving.
     */
    async releaseImage(deploymentId: string, imageRef: string): Promise<{ url: string }> {
      using _ = keepAlive();
      const { service } = await load(deploymentId);
      await setStatus(deploymentId, 'deploying');
      const current = await currentRelease(service);
      const activeSpec = current && releaseSpec(current.key, current.image, service);
      const candidate = releaseSpec(deploymentId.slice(-12), imageRef, service);

      let t0 = Date.now();
      stopIfCancelled();
      const up = await deps.runner.up(service.stackName, program(service, activeSpec, candidate));
      await addPhase(deploymentId, 'stackUp', Date.now() - t0);
      const containerId = up.outputs.candidateContainerId?.value as string;
      const hostPort = up.outputs.candidateHostPort?.value as number;

      t0 = Date.now();
      const health = await waitUntilServing({
        engine: deps.engine,
        containerId,
        hostPort,
        port: candidate.port,
        memoryMb: candidate.memoryMb,
        timeoutMs: deps.healthTimeoutMs,
        onWait: () => heartbeat(),
      });
      await addPhase(deploymentId, 'health', Date.now() - t0);
      const runtimeLog = await deps.engine.logs(containerId, 200).catch(() => []);
      await db.deployment.update({
        where: { id: deploymentId },
        data: { runtimeLogTail: runtimeLog.join('\n') },
      });
      if (!health.healthy) {
        await db.deployment.update({
          where: { id: deploymentId },
          data: { runtimeLogTail: health.logTail.join('\n') },
        });
        await deps.runner.up(service.stackName, program(service, activeSpec, undefined)); // drop the candidate
        throw ApplicationFailure.nonRetryable(health.reason, 'Unhealthy');
      }

      // Promote: the route moves to the new release and the old container goes. A superseded
      // deployment stops here; the next stack update removes its candidate.
      stopIfCancelled();
      t0 = Date.now();
      await deps.runner.up(service.stackName, program(service, candidate, undefined));
      const host = hostFor(service);
      await waitForRoute(deps.ingressPort, host, () => heartbeat());
      await addPhase(deploymentId, 'promote', Date.now() - t0);
      const url = `http://${host}${deps.ingressPort === 80 ? '' : `:${deps.ingressPort}`}`;

      await db.$transaction(async (tx) => {
        const last = await tx.release.findFirst({
          where: { serviceId: service.id },
          orderBy: { version: 'desc' },
        });
        const release = await tx.release.create({
          data: {
            serviceId: service.id,
            deploymentId,
            version: (last?.version ?? 0) + 1,
            imageRef,
            configDigest: configDigest(imageRef, candidate),
          },
        });
        await tx.deployment.updateMany({
          where: { serviceId: service.id, status: 'active', id: { not: deploymentId } },
          data: { status: 'superseded', finishedAt: new Date() },
        });
        await tx.service.update({
          where: { id: service.id },
          data: { status: 'active', url, currentReleaseId: release.id },
        });
      });
      await setStatus(deploymentId, 'active');
      return { url };
    },

    /**
     * Destroys a service's stack (its containers and route) and the stack itself, then marks the
     * service deleted. Its deployments and releases stay as history.
     */
    async destroyService(serviceId: string): Promise<void> {
      const service = await db.service.findUniqueOrThrow({ where: { id: serviceId } });
      await deps.runner.destroy(service.stackName, () => heartbeat());
      await db.deployment.updateMany({
        where: { serviceId, status: { in: IN_FLIGHT_STATUSES } },
        data: { status: 'cancelled', statusReason: 'the service was deleted', finishedAt: new Date() },
      });
      await db.service.update({
        where: { id: serviceId },
        data: { deletedAt: new Date(), liveKey: null, hostLabel: null, status: 'deleted', url: null },
      });
    },

    /** Marks a deployment failed (or cancelled); the service keeps any release still serving. */
    async finishUnsuccessful(
      deploymentId: string,
      status: 'failed' | 'cancelled',
      reason: string,
    ): Promise<void> {
      const { deployment, service } = await load(deploymentId);
      // A deployment a newer one replaced keeps "superseded" (set when the newer one started).
      if (!(status === 'cancelled' && deployment.status === 'superseded'))
        await setStatus(deploymentId, status, reason);
      if (!service.currentReleaseId) await db.service.update({ where: { id: service.id }, data: { status } });
    },

    /**
     * Removes containers of releases that do not serve (a candidate left by a deployment that
     * failed, was superseded, or died with its worker), by converging the service's stack to its
     * current release. Nothing happens while another deployment of the service is in flight
     * (that one's stack update converges it). Returns how many stray containers there were.
     */
    async removeStrayReleases(deploymentId: string): Promise<number> {
      const { serviceId } = await db.deployment.findUniqueOrThrow({
        where: { id: deploymentId },
        select: { serviceId: true },
      });
      using _ = keepAlive();
      return removeStray(serviceId);
    },

    /** removeStrayReleases for every live service: run when a deployer worker starts. */
    async sweepStrayReleases(): Promise<number> {
      let removed = 0;
      for (const { id } of await db.service.findMany({ where: { deletedAt: null }, select: { id: true } }))
        removed += await removeStray(id);
      return removed;
    },
  };

  async function removeStray(serviceId: string): Promise<number> {
    const service = await db.service.findUnique({
      where: { id: serviceId },
      include: { repo: true, project: { select: { name: true } }, user: { select: { ownerName: true } } },
    });
    if (!service || service.deletedAt) return 0;
    const inFlight = await db.deployment.count({
      where: { serviceId, status: { in: IN_FLIGHT_STATUSES } },
    });
    if (inFlight) return 0;
    const current = await currentRelease(service);
    const stray = (await deps.engine.listContainers({ 'deploy-mcp.service': serviceId })).filter(
      (c) => c.labels['deploy-mcp.release'] !== current?.key,
    );
    if (!stray.length) return 0;
    const active = current && releaseSpec(current.key, current.image, service);
    await deps.runner.up(service.stackName, program(service, active, undefined));
    return stray.length;
  }
}

/**
 * The environment of the worker's git commands: only what git needs. The repo token travels as
 * an HTTP header through git's environment config, never on a command line (`ps` shows those
 * to every local user) nor in a URL git might print.
 */
function gitEnv(token: string): Record<string, string> {
  const basic = Buffer.from(`deployer:${token}`).toString('base64');
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: os.tmpdir(),
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: 'http.extraHeader',
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
  };
}

/** Ends the activity when its workflow was cancelled (a newer deployment superseded it). */
function stopIfCancelled() {
  if (Context.current().cancellationSignal.aborted) throw new CancelledFailure('superseded');
}

/**
 * Heartbeats every few seconds while an activity works, so a silent build step or a slow
 * `pulumi up` is not mistaken for a dead worker, and a dead one is noticed within the
 * heartbeat timeout.
 */
function keepAlive(): Disposable {
  const timer = setInterval(() => heartbeat(), 5_000);
  return { [Symbol.dispose]: () => clearInterval(timer) };
}

/** SHA-256 of what a release runs: image digest, env names (not values), port and limits. */
function configDigest(image: string, r: ReleaseSpec): string {
  const config = {
    image,
    env: Object.keys(r.env).sort(),
    port: r.port,
    memoryMb: r.memoryMb,
    cpuMillis: r.cpuMillis,
  };
  return createHash('sha256').update(JSON.stringify(config)).digest('hex');
}

/**
 * Waits until Traefik routes `host` to the app. Only Traefik's own answers mean "not yet": its
 * 404 page (no router) and 502/503 (no reachable server); an app may answer 404 itself.
 */
async function waitForRoute(port: number, host: string, onWait: () => void, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    onWait();
    const status = await new Promise<number>((resolve) => {
      const req = http.get(
        { host: '127.0.0.1', port, path: '/', headers: { host }, timeout: 2000 },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(0));
    });
    if (status && status !== 404 && status !== 502 && status !== 503) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw ApplicationFailure.nonRetryable(
    `the route for ${host} did not start serving within ${timeoutMs / 1000} s`,
    'RouteTimeout',
  );
}
