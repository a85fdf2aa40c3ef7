import fs from 'node:fs';
import path from 'node:path';
import { ApiKeyAuthenticator } from '../core/api-keys.ts';
import type { Config } from '../core/config.ts';
import { startTemporalDevServer } from '../core/daemons/temporal.ts';
import { openDatabase } from '../core/db/client.ts';
import { migrate } from '../core/db/migrate.ts';
import { GitHubApp } from '../core/github/app.ts';
import { GitHubRepos } from '../core/github/repos.ts';
import { diskSpaceCheck } from '../core/health.ts';
import { listen } from '../core/http.ts';
import type { Logger } from '../core/log.ts';
import { Metrics } from '../core/metrics.ts';
import { GitHubRepoSource } from '../core/repo-sources/github.ts';
import { InternalRepoSource } from '../core/repo-sources/internal.ts';
import { RepoSources } from '../core/repo-sources/repo-source.ts';
import { loadMasterKey, SecretBox } from '../core/secrets.ts';
import { createGitServer } from '../git/git-server.ts';
import { pruneExpiredGitTokens } from '../git/tokens.ts';
import { createMcpApp } from '../mcp/app.ts';
import { signInMethodsFor } from '../mcp/auth/sign-in-methods.ts';
import { createSelfCheckActivities } from '../workers/activities/index.ts';
import { connectTemporal } from '../workers/client.ts';
import { registerDeployMetrics } from '../workers/deploy/deploy-metrics.ts';
import { DeployStarter } from '../workers/deploy/start-deploy.ts';
import { createDeployerApp } from '../workers/deployer-app.ts';
import { ResourceManager } from '../workers/resources/manager.ts';
import { installTemporalRuntime } from '../workers/runtime.ts';
import { BUILD_TASK_QUEUE, DEPLOY_TASK_QUEUE, PRODUCT_TASK_QUEUE } from '../workers/task-queues.ts';
import { connectWorkers, createWorker } from '../workers/worker.ts';
import { createDeployerActivities } from './deployer.ts';
import { offeredResources } from './resources.ts';

export const ROLES = ['all', 'server', 'worker', 'deployer-server', 'deployer-worker'] as const;
export type Role = (typeof ROLES)[number];

/**
 * Runs the given roles in this process (`all`: every role, the embedded default) until SIGINT or
 * SIGTERM, then stops everything it started in reverse order.
 */
export async function serve(config: Config, roles: Role[], log: Logger): Promise<void> {
  const role = roles.includes('all') ? 'all' : roles.join(',');
  const has = (r: Role) => role === 'all' || roles.includes(r);
  const cleanups: { name: string; fn: () => Promise<void> }[] = [];
  const onStop = (name: string, fn: () => Promise<void>) => cleanups.push({ name, fn });
  const stopSignal = waitForStopSignal();
  const running: Promise<void>[] = [];

  try {
    // Keys, the database, repos and stack state live here: only the server's user may enter.
    fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    fs.chmodSync(config.dataDir, 0o700);
    if (role === 'all') {
      const result = await migrate(config.databaseUrl);
      log.info({ applied: result.applied, alreadyApplied: result.alreadyApplied }, 'database migrated');
    }
    const db = await openDatabase(config.databaseUrl);
    onStop('database', () => db.close());

    let temporalAddress = config.temporal.address;
    if (!temporalAddress) {
      if (role !== 'all') throw new Error(`role ${role} needs DEPLOY_MCP_TEMPORAL_ADDRESS`);
      const dir = path.join(config.dataDir, 'temporal');
      const server = await startTemporalDevServer({
        bin: path.join(config.toolsDir, 'bin', 'temporal'),
        dir,
        port: config.temporal.devServerPort,
        namespace: config.temporal.namespace,
      });
      onStop('temporal dev server', () => server.stop());
      temporalAddress = server.address;
      log.info(
        { address: temporalAddress, dir, adopted: server.adopted },
        server.adopted ? 'temporal dev server adopted' : 'temporal dev server started',
      );
    }
    const temporal = await connectTemporal(temporalAddress, config.temporal.namespace);
    onStop('temporal client', () => temporal.close());

    const health = {
      database: () => db.ping(),
      temporal: async () => {
        await temporal.connection.healthService.check({});
      },
      disk: diskSpaceCheck({ path: config.dataDir, minFreeMb: config.minFreeDiskMb }),
    };

    const secrets = new SecretBox(loadMasterKey(config.dataDir, config.secretKey));
    const git = createGitServer({
      db: db.prisma,
      log,
      root: path.join(config.dataDir, 'git'),
      baseUrl: `${config.publicUrl}/git`,
      tokenTtlSeconds: config.git.tokenTtlSeconds,
      maxReposPerUser: config.git.maxReposPerUser,
      limits: { maxPushBytes: config.git.maxPushBytes, maxRepoBytes: config.git.maxRepoBytes },
      onDeployRequested: (ids) => {
        void deploys
          .startRequested(ids)
          .catch((err: unknown) => log.error({ err }, 'starting pushed deploys failed'));
      },
    });
    // Where code comes from: our git server, and GitHub when an App is configured.
    const github = config.github ? GitHubApp.fromSettings(config.github) : undefined;
    const repoSources = new RepoSources({
      internal: new InternalRepoSource({
        db: db.prisma,
        root: git.store.root,
        baseUrl: `${config.publicUrl}/git`,
      }),
      github: github && new GitHubRepoSource(db.prisma, github),
    });
    const deploys = new DeployStarter(db.prisma, temporal.client, repoSources);

    if (has('worker') || has('deployer-worker')) installTemporalRuntime(log);
    const deployActivities = has('deployer-worker')
      ? await createDeployerActivities(config, { db: db.prisma, secrets, log, repoSources }, onStop)
      : undefined;
    // Builds have a task queue of their own with at most DEPLOY_MCP_MAX_BUILDS running at once.
    const buildQueue = deployActivities && { buildImage: deployActivities.buildImage };
    const workers: [Role, string, boolean, object | undefined, number?][] = [
      ['worker', PRODUCT_TASK_QUEUE, true, createSelfCheckActivities({ pingDatabase: () => db.ping() })],
      ['deployer-worker', DEPLOY_TASK_QUEUE, false, deployActivities],
      ['deployer-worker', BUILD_TASK_QUEUE, false, buildQueue, config.runtime.maxBuilds],
    ];
    // One Temporal connection shared by this process's workers (closed after the last one stops).
    let workerConnection: Awaited<ReturnType<typeof connectWorkers>> | undefined;
    for (const [r, taskQueue, workflows, activities, maxConcurrentActivities] of workers) {
      if (!has(r)) continue;
      if (!workerConnection) {
        workerConnection = await connectWorkers(temporalAddress);
        onStop('worker connection', workerConnection.close);
      }
      const { worker, close } = await createWorker({
        connection: workerConnection.connection,
        address: temporalAddress,
        namespace: config.temporal.namespace,
        taskQueue,
        workflows,
        ...(activities ? { activities } : {}),
        ...(maxConcurrentActivities ? { maxConcurrentActivities } : {}),
      });
      const run = worker.run();
      running.push(run);
      onStop(`${r} connection`, close);
      onStop(r, async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await run;
      });
      log.info(
        { role: r, taskQueue, ...(maxConcurrentActivities ? { maxConcurrentActivities } : {}) },
        'worker running',
      );
    }
    // Containers of releases that never served (their deployment died with an earlier process).
    if (deployActivities)
      void deployActivities.sweepStrayReleases().then(
        (removed) => removed && log.info({ removed }, 'removed containers of releases that do not serve'),
        (err: unknown) => log.warn({ err }, 'sweeping stray releases failed'),
      );

    // One registry per process (GET /metrics on the server and deployer ports), only when served.
    const metrics = config.metrics.mode === 'off' ? undefined : new Metrics();
    if (metrics && has('deployer-server')) registerDeployMetrics(metrics, db.prisma, log);

    if (has('server')) {
      const app = createMcpApp({
        db: db.prisma,
        log,
        authenticator: new ApiKeyAuthenticator(db.prisma, (err) =>
          log.warn({ err }, 'last_used_at update failed'),
        ),
        secrets,
        publicUrl: config.publicUrl,
        allowedOrigins: config.allowedOrigins,
        health,
        git,
        github: new GitHubRepos(db.prisma, github),
        deploys,
        maxServicesPerUser: config.runtime.maxServicesPerUser,
        dataDir: config.dataDir,
        oauth: { signInMethods: signInMethodsFor(config.signIn) },
        ...(metrics ? { metrics, metricsAccess: config.metrics } : {}),
        resources: new ResourceManager({
          db: db.prisma,
          temporal: temporal.client,
          maxPerUser: config.resources.maxPerUser,
          regions: offeredResources(config),
          deploys,
        }),
      });
      const http = await listen(app, config.host, config.port);
      onStop('server', http.close);
      log.info(
        { url: `http://${config.host}:${http.port}`, publicUrl: config.publicUrl },
        'server listening',
      );
    }
    if (has('deployer-server')) {
      const webhooks = { db: db.prisma, log, secret: config.githubWebhookSecret, github, deploys };
      const http = await listen(
        createDeployerApp({
          health,
          github: webhooks,
          ...(metrics ? { metrics: { metrics, access: config.metrics, log } } : {}),
        }),
        config.host,
        config.deployerPort,
      );
      onStop('deployer-server', http.close);
      log.info({ url: `http://${config.host}:${http.port}` }, 'deployer-server listening');
    }

    if (has('server')) {
      // Expired git tokens are kept a day (for audits), then deleted: the table stays bounded.
      const prune = () =>
        pruneExpiredGitTokens(db.prisma).then(
          (count) => count && log.info({ count }, 'pruned expired git tokens'),
          (err: unknown) => log.warn({ err }, 'pruning git tokens failed'),
        );
      void prune();
      const timer = setInterval(prune, 3_600_000);
      timer.unref();
      onStop('git token pruning', async () => clearInterval(timer));
    }

    log.info({ role }, 'ready');
    // Run until a signal arrives or a worker dies (a dead worker must not look healthy).
    const reason = await Promise.race([stopSignal.then((s) => `signal ${s}`), ...running.map(workerEnded)]);
    log.info({ reason }, 'stopping');
  } finally {
    for (const { name, fn } of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        log.error({ err, component: name }, 'error while stopping');
      }
    }
    log.info('stopped');
  }
}

function waitForStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    // `on`, not `once`: a second signal while stopping must not fall through to the default
    // action (Temporal's runtime removes its own listener after the first signal), which would
    // kill the process before its daemons are stopped.
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, () => resolve(s));
  });
}

function workerEnded(run: Promise<void>): Promise<string> {
  return run.then(
    () => 'worker stopped',
    (err: Error) => {
      throw new Error(`worker failed: ${err.message}`);
    },
  );
}
