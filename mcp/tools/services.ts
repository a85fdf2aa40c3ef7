import { randomUUID } from 'node:crypto';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { type Caller, callerActor } from '../../core/api-keys.ts';
import { hostnameTaken, serviceHostLabel } from '../../core/app-hosts.ts';
import type { Service } from '../../core/db/client.ts';
import { isUniqueViolation } from '../../core/db/unique-violation.ts';
import { conflict, invalidInput, notAvailableYet, notFound } from '../../core/errors.ts';
import type { GitHubRepos } from '../../core/github/repos.ts';
import { resolveProject } from '../../core/projects.ts';
import type { SecretBox } from '../../core/secrets.ts';
import { listServicePage } from '../../core/service-list.ts';
import { ensureOwnerName } from '../../git/owner-names.ts';
import { type ServiceState, serviceState, statesOf } from '../../workers/deploy/service-status.ts';
import type { DeployStarter } from '../../workers/deploy/start-deploy.ts';
import { IN_FLIGHT_STATUSES } from '../../workers/deploy/statuses.ts';
import type { ResourceManager } from '../../workers/resources/manager.ts';
import { firstLine, fitPage } from '../answer-size.ts';
import { nextProgress, type ProgressState } from '../deploy-progress.ts';
import { fitServiceView } from '../fit-service-view.ts';
import { DEFAULT_LOG_LINES, logTail } from '../log-tail.ts';
import { DEFAULT_PAGE_SIZE, decodeCursor } from '../pagination.ts';
import {
  BUILD_PACKS,
  branch,
  buildPack,
  CPU_SIZES,
  command,
  cpu,
  cursor,
  envVars,
  gitHost,
  isGitHub,
  logLines,
  MAX_LOG_LINES,
  MEMORY_SIZES,
  memory,
  pageSize,
  port,
  projectName,
  repoRef,
  resourceName,
  serviceName,
} from '../schemas.ts';
import {
  CHANGES,
  CREATES,
  DESTROYS,
  READ_ONLY,
  runTool,
  type ToolContext,
  type ToolExtra,
} from '../tool-kit.ts';

export const SERVICE_STATUSES = [
  'queued',
  'building',
  'deploying',
  'active',
  'failed',
  'cancelled',
  'superseded',
] as const;
const STATUS_HELP =
  "A service's status: while a deployment runs, that deployment's status: queued (waiting for a " +
  'builder; queue_position is its place in line, 1: next), building (building the image; build_log shows it live), deploying (the new release is ' +
  'starting and must answer health_check_path below 500); else active (serving at url), failed (the ' +
  'newest deployment failed and no release serves: see deployment.reason and the logs), cancelled ' +
  '(stopped before any release served), deleting (delete_service is removing it). serving_release is ' +
  'the release version serving url now (null: none): during a redeploy the status is the new ' +
  "deployment's while serving_release keeps serving. A deployment's status: queued, building, " +
  'deploying, active (went live; serving says whether it still serves, retired_at when it stopped), ' +
  'failed (reason says why), cancelled, superseded (a newer deployment started before it went live). ' +
  "A deployment's status and times never change once it ended.";

/** health_check_path: an absolute URL path, no spaces or control characters. */
const healthCheckPath = z
  .string({ error: 'health_check_path must be a path such as "/" or "/healthz"' })
  .max(200, { error: 'health_check_path must be at most 200 characters' })
  .regex(/^\/[\x21-\x7e]*$/, { error: 'health_check_path must be a path such as "/" or "/healthz"' })
  .optional()
  .describe(
    'Path a new release must answer with a status below 500 before it takes traffic (default "/"); ' +
      '5xx for 10 s fails the deploy.',
  );

const serviceSummary = z.object({
  name: z.string(),
  project: z.string(),
  status: z.string(),
  serving_release: z.number().nullable().describe('Release version serving url now; null: none.'),
  queue_position: z
    .number()
    .nullable()
    .describe('While queued: place among the deployments waiting for a builder (1: next); else null.'),
  url: z.string().nullable(),
  repo: z.string(),
  branch: z.string(),
  updated_at: z.string(),
  resources: z.array(z.string()).optional().describe('Attached resources (databases), by name.'),
});

const logTailShape = z.object({ lines: z.array(z.string()), truncated: z.boolean(), note: z.string() });

const serviceDetail = {
  ...serviceSummary.shape,
  build_pack: z.enum(BUILD_PACKS),
  port: z.number().nullable(),
  memory: z.string(),
  cpu: z.string(),
  install_command: z.string().nullable(),
  build_command: z.string().nullable(),
  start_command: z.string().nullable(),
  health_check_path: z.string(),
  env: z.record(z.string(), z.string()).describe('Values masked unless include_env is true.'),
  created_at: z.string(),
  deployment: z
    .object({
      id: z.string(),
      status: z.string(),
      reason: z.string().nullable(),
      trigger: z.string(),
      commit: z.string().nullable(),
      release: z.number().nullable().describe('Release version it produced (see list_deployments).'),
      created_at: z.string(),
      finished_at: z.string().nullable(),
      phase_ms: z.record(z.string(), z.number()),
      build_log: logTailShape,
      runtime_log: logTailShape,
    })
    .nullable(),
  note: z
    .string()
    .optional()
    .describe('What still runs after a wait ended, or why nothing was started, and what to call next.'),
};

const deploymentSummary = z.object({
  id: z.string(),
  status: z.string(),
  reason: z
    .string()
    .nullable()
    .describe("The reason's first line; get_service with deployment shows it whole."),
  trigger: z.string().describe('create, redeploy, push or rollback'),
  commit: z.string().nullable(),
  message: z.string().nullable().describe("The commit's subject line."),
  release: z.number().nullable().describe('Release version this deployment produced (for rollback_service).'),
  serving: z.boolean().describe('This release serves the URL now.'),
  created_at: z.string(),
  finished_at: z.string().nullable(),
  retired_at: z.string().nullable().describe('When a later release replaced the one it produced.'),
});

const memoryName = (mb: number) => Object.entries(MEMORY_SIZES).find(([, v]) => v === mb)?.[0] ?? `${mb}Mi`;
const cpuName = (millis: number) =>
  Object.entries(CPU_SIZES).find(([, v]) => v === millis)?.[0] ?? String(millis / 1000);

function summary(
  s: Pick<Service, 'name' | 'url' | 'repoUrl' | 'branch' | 'updatedAt'> & {
    project: { name: string };
    resources?: { resource: { name: string } }[];
  },
  state: ServiceState,
) {
  return {
    ...(s.resources ? { resources: s.resources.map((r) => r.resource.name).sort() } : {}),
    name: s.name,
    project: s.project.name,
    status: state.status,
    serving_release: state.servingRelease,
    queue_position: state.queuePosition,
    url: s.url,
    repo: s.repoUrl,
    branch: s.branch,
    updated_at: s.updatedAt.toISOString(),
  };
}

export type ServiceToolDeps = {
  secrets: SecretBox;
  deploys?: DeployStarter;
  maxServicesPerUser?: number;
  /** GitHub repos through the App (host "github"). */
  github?: GitHubRepos;
  /** Databases attached at create (resources, database); absent: those arguments are refused. */
  resources?: ResourceManager;
};

/** create_service and redeploy_service return by then, with the deployment still running if need be. */
const WAIT_MS = 50_000;
const wait = z
  .boolean({ error: 'wait must be true or false' })
  .optional()
  .describe(
    `Wait (up to ${WAIT_MS / 1000} s, with progress notifications) until the deploy is active or failed; default true.`,
  );

type ProgressExtra = {
  _meta?: { progressToken?: string | number };
  sendNotification: (n: {
    method: 'notifications/progress';
    params: { progressToken: string | number; progress: number; total: number; message: string };
  }) => Promise<void>;
};

export function registerServiceTools(server: McpServer, ctx: ToolContext, deps: ServiceToolDeps) {
  const { db } = ctx;

  /** The caller's live service `name` in `project`; another tenant's is simply not found. */
  async function findService(caller: Caller, name: string, project: string | undefined) {
    const p = await resolveProject(db, caller.userId, project);
    const service = await db.service.findFirst({
      where: { userId: caller.userId, projectId: p.id, name, deletedAt: null },
      include: {
        project: { select: { name: true } },
        resources: { include: { resource: { select: { name: true } } } },
      },
    });
    if (!service) {
      throw notFound(`service "${name}" in project "${p.name}"`, 'Call list_services to see your services.');
    }
    return service;
  }

  /**
   * The env ciphertext to store: the current one when the variables are unchanged (each seal
   * uses a fresh IV, and deployments are keyed on the stored settings), else a new seal.
   */
  function sealEnv(
    service: { id: string; envEncrypted: string | null },
    env: Record<string, string> | undefined,
  ) {
    const aad = `service:${service.id}:env`;
    if (!env || Object.keys(env).length === 0) return null;
    const current = service.envEncrypted
      ? deps.secrets.openJson<Record<string, string>>(service.envEncrypted, aad)
      : {};
    const same =
      Object.keys(current).length === Object.keys(env).length &&
      Object.entries(env).every(([k, v]) => current[k] === v);
    return same ? service.envEncrypted : deps.secrets.sealJson(env, aad);
  }

  /** The caller's repo `ref` ("name" or "<owner>/name") on our git server. */
  async function internalRepo(userId: string, owner: string, ref: string) {
    const [repoOwner, repoName] = ref.includes('/') ? ref.split('/') : [owner, ref];
    const repo =
      repoOwner === owner
        ? await db.repo.findFirst({ where: { userId, host: 'internal', name: repoName } })
        : null;
    if (!repo) throw notFound(`repo "${ref}"`, 'Create it with create_repo and push your code first.');
    return repo;
  }

  /** A GitHub repo the caller's own App installation covers (anyone else's is not found). */
  async function gitHubRepo(userId: string, ref: string) {
    if (!deps.github)
      throw invalidInput('GitHub is not configured on this server; use host "internal" (our git server)');
    const { owner, name } = await deps.github.authorize(userId, ref);
    return deps.github.row(userId, owner, name);
  }

  /** The service view get_service, create_service and redeploy_service return. */
  async function detail(
    s: Awaited<ReturnType<typeof findService>>,
    o: {
      include_env?: boolean | undefined;
      deploy_log_lines?: number | undefined;
      runtime_log_lines?: number | undefined;
      deployment?: string | undefined;
    },
  ) {
    const env = s.envEncrypted
      ? deps.secrets.openJson<Record<string, string>>(s.envEncrypted, `service:${s.id}:env`)
      : {};
    const d = await db.deployment.findFirst({
      where: { serviceId: s.id, ...(o.deployment ? { id: o.deployment } : {}) },
      include: { release: { select: { version: true } } },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
    });
    if (o.deployment && !d)
      throw notFound(
        `deployment "${o.deployment}" of service "${s.name}"`,
        'Call list_deployments to see them.',
      );
    const more = (field: string) => `call get_service with ${field} up to ${MAX_LOG_LINES} for more.`;
    return {
      ...summary(s, await serviceState(db, s)),
      build_pack: s.buildPack as (typeof BUILD_PACKS)[number],
      port: s.port,
      memory: memoryName(s.memoryMb),
      cpu: cpuName(s.cpuMillis),
      install_command: s.installCommand,
      build_command: s.buildCommand,
      start_command: s.startCommand,
      health_check_path: s.healthCheckPath ?? '/',
      env: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, o.include_env ? v : '********'])),
      created_at: s.createdAt.toISOString(),
      deployment: d && {
        id: d.id,
        status: d.status,
        reason: d.statusReason,
        trigger: d.trigger,
        commit: d.commitSha,
        release: d.release?.version ?? null,
        created_at: d.createdAt.toISOString(),
        finished_at: d.finishedAt?.toISOString() ?? null,
        phase_ms: d.phaseTimings ? (JSON.parse(d.phaseTimings) as Record<string, number>) : {},
        build_log: logTail(d.buildLogTail, o.deploy_log_lines ?? DEFAULT_LOG_LINES, more('deploy_log_lines')),
        runtime_log: logTail(
          d.runtimeLogTail,
          o.runtime_log_lines ?? DEFAULT_LOG_LINES,
          more('runtime_log_lines'),
        ),
      },
    };
  }

  /**
   * Waits (at most WAIT_MS, to answer within an MCP client's usual timeout) until the deployment
   * ends, sending progress notifications when the client asked for them: at each status change
   * and for the build log's newest line (mcp/deploy-progress.ts).
   */
  async function waitForDeployment(
    deploymentId: string,
    extra: ToolExtra & ProgressExtra,
    waitMs = WAIT_MS,
  ): Promise<boolean> {
    const token = extra._meta?.progressToken;
    const deadline = Date.now() + waitMs;
    let progress: ProgressState | undefined;
    while (Date.now() < deadline) {
      const d = await db.deployment.findUniqueOrThrow({
        where: { id: deploymentId },
        select: { status: true, ...(token !== undefined ? { buildLogTail: true } : {}) },
      });
      if (token !== undefined) {
        const next = nextProgress(
          progress,
          { status: d.status, buildLogTail: d.buildLogTail ?? null },
          Date.now(),
        );
        progress = next.state;
        if (next.notify)
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken: token, ...next.notify },
          });
      }
      if (!IN_FLIGHT_STATUSES.includes(d.status)) return true;
      await new Promise((r) => setTimeout(r, 500));
    }
    return false;
  }

  /**
   * The answer of a tool that started (or found) a deployment: the service view after waiting
   * (unless told not to), with a note saying what still runs and how to follow it, or, when the
   * same commit and settings already failed, that nothing was started and why.
   */
  async function answerDeploy(
    caller: Caller,
    args: { name: string; project?: string | undefined; wait?: boolean | undefined },
    started: {
      deployment: { id: string; status: string; statusReason: string | null; commitSha: string | null };
      started: boolean;
    },
    extra: ToolExtra & ProgressExtra,
    /** The wait left (create_service: making a database counts against it). */
    waitMs = WAIT_MS,
  ) {
    const { deployment } = started;
    if (!started.started && deployment.status === 'failed') {
      const view = await detail(await findService(caller, args.name, args.project), {
        deployment: deployment.id,
      });
      const reason = firstLine(deployment.statusReason ?? 'no reason recorded');
      return fitServiceView({
        ...view,
        note:
          `Nothing was started: commit ${deployment.commitSha?.slice(0, 12) ?? '?'} with these settings already ` +
          `failed (deployment ${deployment.id}): ${reason} Push a fix or change the settings, then call again; ` +
          `get_service with deployment "${deployment.id}" shows its logs.`,
      });
    }
    const ended = args.wait !== false && (await waitForDeployment(deployment.id, extra, waitMs));
    const view = await detail(await findService(caller, args.name, args.project), {});
    if (ended) return fitServiceView(view);
    const now = await db.deployment.findUniqueOrThrow({
      where: { id: deployment.id },
      select: { status: true },
    });
    if (!IN_FLIGHT_STATUSES.includes(now.status)) return fitServiceView(view);
    const serving =
      view.serving_release !== null
        ? `release v${view.serving_release} keeps serving ${view.url} meanwhile`
        : 'nothing serves yet';
    return fitServiceView({
      ...view,
      note:
        `Deployment ${deployment.id} is still ${now.status}${args.wait === false ? '' : ` after ${Math.round(waitMs / 1000)} s`}; ` +
        `it goes on in the background and ${serving}. Call get_service with name "${args.name}" to follow it ` +
        '(status, deployment.build_log) until status is active or failed.',
    });
  }

  server.registerTool(
    'create_service',
    {
      title: 'Create (deploy) a service',
      description:
        'Deploys a git repo as a web service and returns its status and URL. repo is a repo on our git server ' +
        '(see create_repo), or with host "github" a GitHub repo ("owner/name") your installation of our GitHub ' +
        'App covers (a push to its branch then redeploys); the build pack is detected unless given. The URL is live only ' +
        `when status is "active". Calling again with the same name and settings is safe. ${STATUS_HELP} ` +
        'Next: get_service to follow the deploy and read its logs.',
      inputSchema: {
        name: serviceName.describe(
          'Service name (DNS label); becomes part of the URL hostname, which no other service may hold.',
        ),
        repo: repoRef.describe('Repo name on the host, "owner/name", or an https:// clone URL.'),
        host: gitHost,
        branch,
        project: projectName,
        build_pack: buildPack,
        port,
        env_vars: envVars,
        memory,
        cpu,
        install_command: command('install_command').describe('Overrides the detected install command.'),
        build_command: command('build_command').describe('Overrides the detected build command.'),
        start_command: command('start_command').describe('Overrides the detected start command.'),
        health_check_path: healthCheckPath,
        resources: serviceResources,
        database: serviceDatabase,
        wait,
      },
      outputSchema: serviceDetail,
      annotations: { title: 'Create (deploy) a service', ...CREATES },
    },
    (args, extra) =>
      runTool(ctx, extra, 'create_service', async (caller) => {
        const began = Date.now(); // making a database counts against the wait
        const project = await resolveProject(db, caller.userId, args.project);
        if (!deps.deploys) throw notAvailableYet('Deploying services (create_service)');
        if (args.repo.includes('://')) {
          throw notAvailableYet(
            'Deploying from clone URLs (use a repo on our git server, create_repo, or host "github")',
          );
        }
        const owner = await ensureOwnerName(db, caller.userId);
        const repo = isGitHub(args.host)
          ? await gitHubRepo(caller.userId, args.repo)
          : await internalRepo(caller.userId, owner, args.repo);
        // Before anything is written: a branch without commits cannot deploy ("push first").
        const commit = await deps.deploys.headOf(repo, args.branch ?? 'main');
        // Named resources must exist (and be ready) before anything is written, too.
        const attach = await wantedResources(deps.resources, caller, project.id, args);
        const settings = {
          repoUrl:
            repo.host === 'github' ? `github.com/${repo.ownerName}/${repo.name}` : `${owner}/${repo.name}`,
          repoId: repo.id,
          branch: args.branch ?? 'main',
          buildPack: args.build_pack ?? 'auto',
          port: args.port ?? null,
          memoryMb: MEMORY_SIZES[args.memory ?? '512Mi'],
          cpuMillis: CPU_SIZES[args.cpu ?? '0.5'],
          installCommand: args.install_command ?? null,
          buildCommand: args.build_command ?? null,
          startCommand: args.start_command ?? null,
          healthCheckPath: args.health_check_path ?? null,
        };
        const existing = await db.service.findFirst({
          where: { userId: caller.userId, projectId: project.id, name: args.name, deletedAt: null },
        });
        const max = deps.maxServicesPerUser ?? 50;
        if (!existing) {
          const count = await db.service.count({ where: { userId: caller.userId, deletedAt: null } });
          if (count >= max)
            throw conflict(
              `service limit reached: you have ${count} services (the limit is ${max}). ` +
                'Delete one with delete_service, or update an existing one with create_service and its name.',
            );
        }
        const liveKey = `${project.id}/${args.name}`;
        // The hostname is reserved in the write that creates the row: a taken one creates nothing.
        const hostLabel = serviceHostLabel(args.name, project.name, owner);
        const service =
          existing ??
          (await db.service
            .create({
              data: {
                userId: caller.userId,
                projectId: project.id,
                name: args.name,
                liveKey,
                hostLabel,
                stackName: `svc-${randomUUID().replaceAll('-', '').slice(0, 20)}`,
                ...settings,
              },
            })
            .catch(async (err: unknown) => {
              if (!isUniqueViolation(err)) throw err;
              // SQLite names one of the violated indexes: a concurrent create of this very
              // service takes both the name and the hostname.
              if (await db.service.findUnique({ where: { liveKey }, select: { id: true } }))
                throw conflict(
                  `service "${args.name}" was just created by another call; call create_service again to update it.`,
                );
              if (isUniqueViolation(err, 'hostLabel')) throw hostnameTaken(hostLabel);
              throw err;
            }));
        await db.service.update({
          where: { id: service.id },
          data: {
            ...settings,
            envEncrypted: sealEnv(service, args.env_vars),
          },
        });
        await db.auditEvent.create({
          data: {
            userId: caller.userId,
            actor: callerActor(caller),
            action: existing ? 'service.update' : 'service.create',
            targetType: 'service',
            targetId: service.id,
            detail: JSON.stringify({
              name: args.name,
              project: project.name,
              env: Object.keys(args.env_vars ?? {}),
            }),
          },
        });
        // database: {type} creates one named after the service; both are attached before the deploy.
        if (deps.resources && (attach.length || args.database))
          await deps.resources.attachForCreate(caller, service, project.name, attach, args.database);
        return answerDeploy(
          caller,
          args,
          await deps.deploys.start(service.id, 'create', commit),
          extra,
          Math.max(1000, WAIT_MS - (Date.now() - began)),
        );
      }),
  );

  server.registerTool(
    'list_services',
    {
      title: 'List services',
      description:
        'Lists your services (name, status, URL), newest first within a page of at most 100 (default 20). ' +
        `When next_cursor is set, call again with cursor to get more. ${STATUS_HELP} ` +
        'Next: get_service for details and logs.',
      inputSchema: {
        project: projectName.describe('Only this project; default: all your projects.'),
        limit: pageSize,
        cursor,
      },
      outputSchema: {
        services: z.array(serviceSummary),
        next_cursor: z.string().nullable(),
        note: z.string(),
      },
      annotations: { title: 'List services', ...READ_ONLY },
    },
    (args, extra) =>
      runTool(ctx, extra, 'list_services', async (caller) => {
        const limit = args.limit ?? DEFAULT_PAGE_SIZE;
        const after = decodeCursor(args.cursor);
        const projectId = args.project
          ? (await resolveProject(db, caller.userId, args.project)).id
          : undefined;
        const rows = await listServicePage(db, caller.userId, { projectId, after, take: limit + 1 });
        const states = await statesOf(db, rows.slice(0, limit));
        return fitPage(rows, limit, 'list_services', (items, next_cursor, note) => ({
          services: items.map((s) => summary(s, states.get(s.id) as ServiceState)),
          next_cursor,
          note,
        }));
      }),
  );

  server.registerTool(
    'get_service',
    {
      title: 'Get a service',
      description:
        'Shows one service: status, URL, settings, env (masked unless include_env), and its latest deployment ' +
        '(or the one given by deployment, an id from list_deployments) with the failure reason, release, time ' +
        `per phase and the last lines of the build and runtime logs (default ${DEFAULT_LOG_LINES}, at most ` +
        `${MAX_LOG_LINES} each). ${STATUS_HELP}`,
      inputSchema: {
        name: serviceName,
        project: projectName,
        include_env: z
          .boolean({ error: 'include_env must be true or false' })
          .optional()
          .describe('Show env values.'),
        deploy_log_lines: logLines('deploy_log_lines').describe(`Build log lines, 0-${MAX_LOG_LINES}.`),
        runtime_log_lines: logLines('runtime_log_lines').describe(`Runtime log lines, 0-${MAX_LOG_LINES}.`),
        deployment: z
          .string({ error: 'deployment must be a deployment id from list_deployments' })
          .regex(/^[a-z0-9]{20,40}$/, { error: 'deployment must be a deployment id from list_deployments' })
          .optional()
          .describe('A deployment id from list_deployments; default: the latest.'),
      },
      outputSchema: serviceDetail,
      annotations: { title: 'Get a service', ...READ_ONLY },
    },
    (args, extra) =>
      runTool(ctx, extra, 'get_service', async (caller) => {
        return fitServiceView(await detail(await findService(caller, args.name, args.project), args));
      }),
  );

  server.registerTool(
    'redeploy_service',
    {
      title: 'Redeploy a service',
      description:
        "Deploys the newest commit of the service's branch. A commit already built with the same settings is " +
        'not built again: when it is serving nothing happens, after a rollback its release serves again. The ' +
        'current release keeps serving until the new one is healthy. Next: get_service to follow it.',
      inputSchema: { name: serviceName, project: projectName, wait },
      outputSchema: serviceDetail,
      annotations: { title: 'Redeploy a service', ...CHANGES },
    },
    (args, extra) =>
      runTool(ctx, extra, 'redeploy_service', async (caller) => {
        const service = await findService(caller, args.name, args.project);
        if (!deps.deploys) throw notAvailableYet('Redeploying services (redeploy_service)');
        return answerDeploy(caller, args, await deps.deploys.start(service.id, 'redeploy'), extra);
      }),
  );

  server.registerTool(
    'list_deployments',
    {
      title: "List a service's deployments",
      description:
        'Lists the deployments of one service, newest first (at most 100 a page, default 20): status, reason, ' +
        'trigger, commit, the release it produced (version) and whether that release is serving now. ' +
        `When next_cursor is set, call again with cursor. ${STATUS_HELP} ` +
        'Next: rollback_service with a release version to serve it again; get_service for logs.',
      inputSchema: { name: serviceName, project: projectName, limit: pageSize, cursor },
      outputSchema: {
        service: z.string(),
        deployments: z.array(deploymentSummary),
        next_cursor: z.string().nullable(),
        note: z.string(),
      },
      annotations: { title: "List a service's deployments", ...READ_ONLY },
    },
    (args, extra) =>
      runTool(ctx, extra, 'list_deployments', async (caller) => {
        const after = decodeCursor(args.cursor);
        const limit = args.limit ?? DEFAULT_PAGE_SIZE;
        const service = await findService(caller, args.name, args.project);
        const rows = await db.deployment.findMany({
          where: { serviceId: service.id, userId: caller.userId },
          include: { release: { select: { id: true, version: true, retiredAt: true } } },
          orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
          take: limit + 1,
          ...(after ? { cursor: { id: after }, skip: 1 } : {}),
        });
        return fitPage(rows, limit, 'list_deployments', (items, next_cursor, note) => ({
          service: service.name,
          deployments: items.map((d) => ({
            id: d.id,
            status: d.status,
            reason: firstLine(d.statusReason),
            trigger: d.trigger,
            commit: d.commitSha,
            message: d.commitMessage,
            release: d.release?.version ?? null,
            serving: d.release !== null && d.release.id === service.currentReleaseId,
            created_at: d.createdAt.toISOString(),
            finished_at: d.finishedAt?.toISOString() ?? null,
            retired_at: d.release?.retiredAt?.toISOString() ?? null,
          })),
          next_cursor,
          note,
        }));
      }),
  );

  server.registerTool(
    'rollback_service',
    {
      title: 'Roll back a service',
      description:
        'Serves an earlier release again, from its stored image, without rebuilding: release is a version ' +
        'from list_deployments (default: the release before the current one). The current release keeps ' +
        "serving until the earlier one answers. The service's current env vars, port and limits apply. A later " +
        'push or redeploy_service deploys the branch head again. Next: get_service to follow it.',
      inputSchema: {
        name: serviceName,
        project: projectName,
        release: z
          .number({ error: 'release must be a release version number (see list_deployments)' })
          .int({ error: 'release must be a whole number' })
          .min(1, { error: 'release must be 1 or more' })
          .optional()
          .describe('Release version to serve (see list_deployments); default: the previous one.'),
        wait,
      },
      outputSchema: serviceDetail,
      annotations: { title: 'Roll back a service', ...CHANGES },
    },
    (args, extra) =>
      runTool(ctx, extra, 'rollback_service', async (caller) => {
        const service = await findService(caller, args.name, args.project);
        if (!deps.deploys) throw notAvailableYet('Rolling back services (rollback_service)');
        const started = await deps.deploys.rollback(service.id, args.release);
        const { deployment } = started;
        await db.auditEvent.create({
          data: {
            userId: caller.userId,
            actor: callerActor(caller),
            action: 'service.rollback',
            targetType: 'service',
            targetId: service.id,
            detail: JSON.stringify({ deployment: deployment.id, release: args.release ?? 'previous' }),
          },
        });
        return answerDeploy(caller, args, started, extra);
      }),
  );

  server.registerTool(
    'delete_service',
    {
      title: 'Delete a service',
      description:
        'Stops the service and removes its container, route and stack; its URL stops answering. Deployment ' +
        `history is kept. Waits up to ${WAIT_MS / 1000} s: status "deleted" when done, else "deleting" (it ` +
        'finishes in the background; call delete_service again to wait more). Deleting a service that is ' +
        'already gone reports not found.',
      inputSchema: { name: serviceName, project: projectName },
      outputSchema: {
        name: z.string(),
        project: z.string(),
        deleted: z.boolean().describe('True once everything is removed.'),
        status: z.enum(['deleted', 'deleting']),
        note: z.string().optional(),
      },
      annotations: { title: 'Delete a service', ...DESTROYS },
    },
    (args, extra) =>
      runTool(ctx, extra, 'delete_service', async (caller) => {
        const service = await findService(caller, args.name, args.project);
        if (!deps.deploys) throw notAvailableYet('Deleting services (delete_service)');
        const status = await deps.deploys.delete(service.id, WAIT_MS);
        await db.auditEvent.create({
          data: {
            userId: caller.userId,
            actor: callerActor(caller),
            action: 'service.delete',
            targetType: 'service',
            targetId: service.id,
          },
        });
        return {
          name: service.name,
          project: service.project.name,
          deleted: status === 'deleted',
          status,
          ...(status === 'deleting'
            ? {
                note:
                  `Still deleting after ${WAIT_MS / 1000} s; it finishes in the background. Call delete_service ` +
                  'again to wait for it (it answers not found once it is gone).',
              }
            : {}),
        };
      }),
  );
}

// --- create_service(…, resources, database): databases in one call (issue 11) ---

const serviceResources = z
  .array(resourceName, { error: 'resources must be a list of resource names' })
  .max(10, 'resources must list at most 10 resources')
  .optional()
  .describe('Resources (create_resource) to attach: their connection variables are injected at run time.');

const serviceDatabase = z
  .object(
    {
      type: z
        .enum(['postgres', 'sqlite', 'libsql'], {
          error: 'database.type must be one of: postgres, sqlite, libsql',
        })
        .describe('postgres or sqlite (libsql: another name for sqlite).'),
      size: z
        .enum(['small', 'medium', 'large'], { error: 'database.size must be one of: small, medium, large' })
        .optional(),
    },
    { error: 'database must be an object like {"type": "postgres"}' },
  )
  .optional()
  .describe(
    'Creates a database named after the service (or reuses it), attaches it and deploys: one call for app + database.',
  );

/** The ready resources `resources` names, in the service's project; none when the server has no resource manager. */
async function wantedResources(
  manager: ResourceManager | undefined,
  caller: Caller,
  projectId: string,
  args: { resources?: string[] | undefined; database?: unknown },
) {
  if (!args.resources?.length && !args.database) return [];
  if (!manager) throw notAvailableYet('Databases (create_service resources and database)');
  return manager.readyResources(caller, projectId, args.resources ?? []);
}
