import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { DomainError } from '../../core/errors.ts';
import { BuildError, buildAndPush } from '../build/buildkit.ts';
import { DetectError, detectBuildPlan } from '../build/detect.ts';
import {
  BUILD_ENV_SECRET,
  buildEnvFile,
  DOCKERIGNORE,
  renderDockerfile,
  scopeBuildCache,
} from '../build/dockerfile.ts';
import { DEFAULT_NODE_MAJOR } from '../build/node-version.ts';
import { DEFAULT_PYTHON_VERSION } from '../build/python-version.ts';
import { addFileIfMissing, assertContained } from '../build/workspace.ts';
import type { DeployDeps } from './deploy.ts';
import { type DeploymentRecords, keepAlive } from './deployment-records.ts';
import { LiveLog } from './live-log.ts';

const run = promisify(execFile);

/** Lines of the build log kept on the deployment row. */
const LOG_TAIL_LINES = 500;
/** How often the build log tail is saved while the build runs (get_service shows it live). */
const LIVE_LOG_EVERY_MS = 2_000;

/** The build activity: clone, detect, build and push one deployment's image. */
export function buildActivities(deps: DeployDeps, rec: DeploymentRecords) {
  const { db } = deps;
  const { load, setStatus, addPhase, serviceEnv } = rec;
  return {
    /**
     * Clones the commit with a credential minted here for this clone alone (our git server's
     * `mlg_` token, or a GitHub installation token narrowed to the repo, contents:read), so it
     * never crosses the workflow's history; then detects the build pack, builds and pushes.
     */
    async buildImage(deploymentId: string): Promise<string> {
      using _ = keepAlive();
      const { deployment, service } = await load(deploymentId);
      if (!deployment.commitSha || !service.repo) {
        throw ApplicationFailure.nonRetryable('the service has no repo', 'InvalidService');
      }
      const imageRef = `${deps.registryHost}/t/${service.stackName}:${deployment.commitSha.slice(0, 12)}`;
      await setStatus(deploymentId, 'building');
      const work = fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-build-'));
      const live = new LiveLog(
        (tail) => db.deployment.update({ where: { id: deploymentId }, data: { buildLogTail: tail } }),
        LOG_TAIL_LINES,
        LIVE_LOG_EVERY_MS,
      );
      const record = (line: string) => live.record(line);
      let registryHold: { release: () => Promise<void> } | undefined;
      try {
        let t0 = Date.now();
        const credential = await deps.repoSources
          .for(service.repo)
          .pullCredential(service.repo)
          .catch((err: unknown) => {
            // "no longer in your installation" and the like: the agent can act on it, a retry cannot.
            if (err instanceof DomainError) throw ApplicationFailure.nonRetryable(err.message, 'BuildFailed');
            throw err;
          });
        const url = credential.url;
        const src = path.join(work, 'src');
        const git = (args: string[]) => run('git', args, { env: gitEnv(credential) });
        await git(['init', '-q', src]);
        await git(['-C', src, 'fetch', '-q', '--depth', '1', url, deployment.commitSha]);
        await git(['-C', src, 'checkout', '-q', deployment.commitSha]);
        fs.rmSync(path.join(src, '.git'), { recursive: true, force: true });
        // Before any of our code reads the checkout: no link may lead out of it.
        assertContained(src);
        record(`cloned ${service.repo.ownerName}/${service.repo.name} at ${deployment.commitSha}`);
        await addPhase(deploymentId, 'clone', Date.now() - t0);

        t0 = Date.now(); // the build phase includes publishing a base image on its first use
        // No registry restart (its garbage collection) while this build pushes: bounded wait.
        registryHold = await deps
          .registryLock?.((): void =>
            record(
              'waiting for the registry to finish its maintenance (garbage collection), at most 5 minutes',
            ),
          )
          .catch((err: unknown) => {
            // Not the repo's fault: a plain error, so Temporal retries the build.
            throw new Error(
              `the registry is under maintenance: ${err instanceof Error ? err.message : String(err)}`,
            );
          });
        const plan = detectBuildPlan(src, {
          buildPack: service.buildPack as 'auto' | 'railpack' | 'dockerfile' | 'static',
          installCommand: service.installCommand ?? undefined,
          buildCommand: service.buildCommand ?? undefined,
          startCommand: service.startCommand ?? undefined,
        });
        for (const note of plan.notes) record(note);
        const meta = path.join(work, 'meta');
        fs.mkdirSync(meta);
        // Published on first use; a user's Dockerfile may name them too (FROM deploy-mcp/node).
        const base = await deps.baseImages().catch((err: unknown) => {
          // Our base images failing to publish (a busy registry or BuildKit: "context deadline
          // exceeded") is no fault of the repo: a plain error, so Temporal retries the build.
          throw new Error(
            `publishing the base images failed: ${err instanceof Error ? err.message : String(err)}`,
          );
        });
        let nodeImage: string | undefined;
        if (plan.pack === 'node' && plan.nodeMajor !== DEFAULT_NODE_MAJOR) {
          if (!deps.nodeBaseImage) throw new DetectError(`Node.js ${plan.nodeMajor} is not offered here`);
          nodeImage = await deps.nodeBaseImage(base, plan.nodeMajor, record);
        }
        let pythonImage: string | undefined;
        if (plan.pack === 'python' && plan.pythonVersion !== DEFAULT_PYTHON_VERSION) {
          if (!deps.pythonBaseImage)
            throw new DetectError(`Python ${plan.pythonVersion} is not offered here`);
          pythonImage = await deps.pythonBaseImage(base, plan.pythonVersion);
        }
        if (plan.pack === 'dockerfile')
          fs.writeFileSync(
            path.join(meta, 'Dockerfile'),
            scopeBuildCache(fs.readFileSync(path.join(src, plan.dockerfile), 'utf8'), service.stackName),
          );
        else
          fs.writeFileSync(
            path.join(meta, 'Dockerfile'),
            renderDockerfile(plan, base, { cacheId: service.stackName, nodeImage, pythonImage }),
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
        await registryHold?.release();
        await addPhase(deploymentId, 'build', (pushStart ?? pushed) - t0);
        await addPhase(deploymentId, 'push', pushed - (pushStart ?? pushed));
        // Releases run the image by digest: a tag is rewritten when the commit is built again.
        const pinned = `${imageRef.slice(0, imageRef.lastIndexOf(':'))}@${digest}`;
        record(`pushed ${imageRef} (${digest})`);
        await live.close();
        await db.deployment.update({
          where: { id: deploymentId },
          data: { imageRef: pinned, buildLogTail: live.text() },
        });
        // The build is over: the deployment is deploying from now on (not once a release worker picks it up).
        await setStatus(deploymentId, 'deploying');
        return pinned;
      } catch (err) {
        await live.close();
        await db.deployment.update({ where: { id: deploymentId }, data: { buildLogTail: live.text() } });
        if (err instanceof DetectError || err instanceof BuildError) {
          throw ApplicationFailure.nonRetryable(err.message, 'BuildFailed');
        }
        throw err;
      } finally {
        await registryHold?.release();
        await live.close();
        fs.rmSync(work, { recursive: true, force: true });
      }
    },
  };
}

/**
 * The environment of the worker's git commands: only what git needs. The repo token travels as
 * an HTTP header through git's environment config, never on a command line (`ps` shows those
 * to every local user) nor in a URL git might print.
 */
function gitEnv(c: { username: string; password: string }): Record<string, string> {
  const basic = Buffer.from(`${c.username}:${c.password}`).toString('base64');
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
