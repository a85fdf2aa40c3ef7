import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { issueGitToken } from '../../git/tokens.ts';
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

const run = promisify(execFile);

/** Lines of the build log kept on the deployment row. */
const LOG_TAIL_LINES = 500;

/** The build activity: clone, detect, build and push one deployment's image. */
export function buildActivities(deps: DeployDeps, rec: DeploymentRecords) {
  const { db } = deps;
  const { load, setStatus, addPhase, serviceEnv } = rec;
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
          buildPack: service.buildPack as 'auto' | 'railpack' | 'dockerfile' | 'static',
          installCommand: service.installCommand ?? undefined,
          buildCommand: service.buildCommand ?? undefined,
          startCommand: service.startCommand ?? undefined,
        });
        for (const note of plan.notes) record(note);
        const meta = path.join(work, 'meta');
        fs.mkdirSync(meta);
        // Published on first use; a user's Dockerfile may name them too (FROM deploy-mcp/node).
        const base = await deps.baseImages();
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
  };
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
