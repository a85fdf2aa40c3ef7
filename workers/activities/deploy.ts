import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import type { Db } from '../../core/db/client.ts';
import type { RepoSources } from '../../core/repo-sources/repo-source.ts';
import { OUT_OF_DISK_SPACE, outOfDiskSpace } from '../../core/resource-faults.ts';
import type { SecretBox } from '../../core/secrets.ts';
import type { TenantStackRunner } from '../../tenant-stacks/runner.ts';
import type { BaseImages } from '../build/dockerfile.ts';
import type { Runtime } from '../runtimes/runtime.ts';
import { buildActivities } from './build-image.ts';
import { deploymentRecords } from './deployment-records.ts';
import { pruneActivities } from './prune-images.ts';
import { releaseActivities } from './release-image.ts';
import { type ResourceDeps, resourceActivities } from './resources.ts';

export type DeployDeps = {
  db: Db;
  secrets: SecretBox;
  runner: TenantStackRunner;
  /** Where services run (the embedded podman + Traefik runtime, or Kubernetes). */
  runtime: Runtime;
  buildkitAddress: string;
  registryHost: string;
  /** Where base images live (`host:port/path`), for `FROM deploy-mcp/<name>` in user Dockerfiles. */
  baseImagePrefix: string;
  /** Base images in the registry (published once, on first use). */
  baseImages: () => Promise<BaseImages>;
  /** Where each repo is cloned from (our git server, GitHub), with a credential minted per clone. */
  repoSources: RepoSources;
  /** The node base image of another Node.js major, published on first use (base-images.ts). */
  nodeBaseImage?: (base: BaseImages, major: number, onLog: (line: string) => void) => Promise<string>;
  /** The python base image of another Python version, published on first use (base-images.ts). */
  pythonBaseImage?: (base: BaseImages, version: string) => Promise<string>;
  buildTimeoutMs: number;
  /**
   * The shared side of the registry's maintenance lock (core/db/maintenance-lock.ts), held by a
   * build from its first push to its last, so the clean-up job's registry restart (and garbage
   * collection) never cuts one; `onWait` is called when the build has to wait. Absent: no lock
   * (the embedded registry collects at its own start only).
   */
  registryLock?: (onWait: () => void) => Promise<{ release: () => Promise<void> }>;
  healthTimeoutMs: number;
  /** The data dir (embedded database, stack state, daemons), named in "out of disk space on …". */
  dataDir?: string;
  /** Images of the newest this-many releases per live service stay in the registry (default 10). */
  keepReleases?: number;
  /** Where resources (databases) live; absent: none is offered (resource activities fail). */
  resources?: Pick<ResourceDeps, 'postgres' | 'backupsDir' | 'backupRetentionDays' | 'volumesDir' | 'turso'>;
};

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
    ...resourceActivities({
      db: deps.db,
      secrets: deps.secrets,
      runner: deps.runner,
      postgres: deps.resources?.postgres,
      backupsDir: deps.resources?.backupsDir ?? path.join(deps.dataDir ?? os.tmpdir(), 'backups'),
      backupRetentionDays: deps.resources?.backupRetentionDays ?? 7,
      volumesDir: deps.resources?.volumesDir,
      turso: deps.resources?.turso,
    }),
    buildImage: (deploymentId: string) =>
      buildImage(deploymentId).catch(onFullDisk('the build work dir', build)),
    releaseImage: (deploymentId: string, imageRef: string) =>
      releaseImage(deploymentId, imageRef).catch(onFullDisk('the temp dir', runtime)),
    destroyService: (serviceId: string) =>
      destroyService(serviceId).catch(onFullDisk('the temp dir', runtime)),
  };
}

function deployActivities(deps: DeployDeps) {
  const records = deploymentRecords(deps.db, deps.secrets, deps.resources?.volumesDir);
  return Object.assign(
    buildActivities(deps, records),
    releaseActivities(deps, records),
    pruneActivities(deps),
  );
}
