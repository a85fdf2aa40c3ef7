import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../core/db/client.ts';
import { IN_FLIGHT_STATUSES } from '../../workers/deploy/statuses.ts';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { eventually, httpGet } from '../support/http.ts';
import { call, text } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { connectAgent, type ServeProcess, startServe } from '../support/serve.ts';

const exec = promisify(execFile);

/** GET through Traefik with the app's Host. */
function viaIngress(url: string, ingressPort: number) {
  return httpGet(`http://127.0.0.1:${ingressPort}/`, new URL(url).hostname);
}

type ServiceView = {
  status: string;
  url: string | null;
  deployment: {
    id: string;
    status: string;
    reason: string | null;
    commit: string;
    phase_ms: Record<string, number>;
  } | null;
};

describe('end to end: repo → push → create_service → live URL → push → redeployed', () => {
  const work = scratchDir('e2e', path.join(repoRoot, '.data', 'test'));
  let serve: ServeProcess;
  let client: Client;
  let ingressPort: number;
  let remote: string;
  const git = agentGit(work.dir);
  const app = path.join(work.dir, 'app');

  beforeAll(async () => {
    // A short health timeout keeps the "never answers" case quick.
    serve = await startServe(path.join(work.dir, 'data'), {
      env: { DEPLOY_MCP_HEALTH_TIMEOUT_SECONDS: '15', DEPLOY_MCP_MAX_SERVICES: '1' },
    });
    ingressPort = serve.ports.ingress;
    client = await connectAgent(serve, 'agent@example.com');
  });

  afterAll(async () => {
    await client?.close();
    await serve?.stop();
    work.cleanup();
  });

  /** Ids of the containers the pipeline runs for this test's user (labelled with the user id). */
  async function userContainers(): Promise<string[]> {
    const db = await openDatabase(`file:${path.join(work.dir, 'data', 'deploy-mcp.db')}`);
    try {
      const user = await db.prisma.user.findUniqueOrThrow({ where: { email: 'agent@example.com' } });
      const { stdout } = await exec('podman', ['ps', '-aq', '--filter', `label=deploy-mcp.user=${user.id}`]);
      return stdout.split('\n').filter(Boolean);
    } finally {
      await db.close();
    }
  }

  async function service(): Promise<ServiceView> {
    return (await call(client, 'get_service', { name: 'web' })).structuredContent as ServiceView;
  }

  it('deploys a pushed Node app with create_service and serves it through Traefik', async () => {
    const repo = await call(client, 'create_repo', { name: 'web' });
    remote = (repo.structuredContent as { git_remote: string }).git_remote;
    // Nothing pushed yet: a clear error, and no half-created service.
    const early = await call(client, 'create_service', { name: 'web', repo: 'web' });
    expect(text(early)).toMatch(/branch "main" of repo agent\/web has no commits yet: push first/);
    expect((await call(client, 'list_services')).structuredContent).toMatchObject({ services: [] });
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps/node-hello'), app, { recursive: true });
    await pushNewRepo(git, app, remote);

    // With a progress token (an SSE answer): the statuses, each with the build log's newest line.
    const progress: { progress: number; message?: string | undefined }[] = [];
    const res = (await client.callTool(
      {
        name: 'create_service',
        arguments: {
          name: 'web',
          repo: 'web',
          env_vars: { MESSAGE: 'hello v1', BUILD_TOKEN: 'secret-build-token' },
        },
      },
      undefined,
      { onprogress: (p) => progress.push(p), timeout: 120_000 },
    )) as CallToolResult;
    if (res.isError) throw new Error(`${text(res)}\n${serve.output().slice(-3000)}`);
    let view = res.structuredContent as ServiceView;
    expect(progress[0]?.message).toMatch(/^deployment (queued|building)/);
    for (let i = 1; i < progress.length; i++)
      expect(progress[i]?.progress).toBeGreaterThan(progress[i - 1]?.progress as number);
    // Answered once live (the usual case): the last notification says so, with the build's last line.
    if (view.status === 'active') expect(progress.at(-1)?.message).toMatch(/^deployment active: \S/);
    expect(progress.map((p) => p.message).join('\n')).not.toContain('secret-build-token');
    const deadline = Date.now() + 240_000;
    while (view.status !== 'active' && view.deployment?.status !== 'failed' && Date.now() < deadline) {
      await sleep(1000);
      view = await service();
    }
    expect(view.deployment?.reason ?? null, JSON.stringify(view)).toBeNull();
    expect(view.status).toBe('active');
    expect(view.url).toMatch(/^http:\/\/web-agent\.localhost:\d+$/);
    expect(Object.keys(view.deployment?.phase_ms ?? {}).sort()).toEqual([
      'build',
      'clone',
      'health',
      'promote',
      'push',
      'stackUp',
    ]);
    const page = await viaIngress(view.url ?? '', ingressPort);
    expect(page).toEqual({ status: 200, body: 'hello v1 | build token seen | 1m\n' });
    // Hardened: no capabilities, no privilege gain, a read-only root (npm start still works).
    const [id] = await userContainers();
    const { stdout } = await exec('podman', [
      'inspect',
      id ?? '',
      '--format',
      '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}}',
    ]);
    expect(stdout.trim()).toMatch(/^true \[(CAP_[A-Z_]+ )+CAP_[A-Z_]+\] \[no-new-privileges\]$/);
    expect(stdout).toContain('CAP_SETUID');
    expect(stdout).toContain('CAP_NET_RAW');
  });

  it('redeploys on git push without another call, and the same commit never deploys twice', async () => {
    fs.writeFileSync(
      path.join(app, 'server.js'),
      fs.readFileSync(path.join(app, 'server.js'), 'utf8').replace('res.end(`$', 'res.end(`v2 $'),
    );
    await git(['commit', '-q', '-am', 'second'], app);
    const second = (await git(['rev-parse', 'HEAD'], app)).stdout.trim();
    await git(['push', '-q', remote, 'HEAD:refs/heads/main'], app);
    const url = (await service()).url ?? '';
    const deadline = Date.now() + 240_000;
    let page = await viaIngress(url, ingressPort);
    while (!page.body.startsWith('v2') && Date.now() < deadline) {
      await sleep(1000);
      page = await viaIngress(url, ingressPort);
    }
    expect(page.body).toBe('v2 hello v1 | build token seen | 1m\n');
    let view = await service();
    while (view.deployment?.status !== 'active' && Date.now() < deadline) {
      await sleep(500);
      view = await service();
    }
    expect(view.deployment).toMatchObject({ commit: second, status: 'active' });

    const before = (await service()).deployment?.id;
    const again = await call(client, 'redeploy_service', { name: 'web' });
    expect((again.structuredContent as ServiceView).deployment?.id).toBe(before);
  });

  it('rollback_service serves the old release without building; redeploy_service brings the head back', async () => {
    const url = (await service()).url ?? '';
    const listed = (await call(client, 'list_deployments', { name: 'web' })).structuredContent as {
      deployments: { id: string; release: number | null; serving: boolean; trigger: string }[];
    };
    expect(listed.deployments.map((d) => [d.trigger, d.release, d.serving])).toEqual([
      ['push', 2, true],
      ['create', 1, false],
    ]);

    const back = await call(client, 'rollback_service', { name: 'web' });
    if (back.isError) throw new Error(text(back));
    const rolled = back.structuredContent as ServiceView & { deployment: { release: number } };
    expect(rolled.deployment).toMatchObject({ status: 'active', release: 3 });
    // No clone or build: the release's stored image runs again.
    expect(Object.keys(rolled.deployment.phase_ms).sort()).toEqual(['health', 'promote', 'stackUp']);
    expect((await viaIngress(url, ingressPort)).body).toBe('hello v1 | build token seen | 1m\n');
    expect(await userContainers()).toHaveLength(1);
    // Rolling back to the release that serves is refused; an unknown release names the real ones.
    expect(text(await call(client, 'rollback_service', { name: 'web', release: 3 }))).toMatch(
      /release v3 is already serving/,
    );
    expect(text(await call(client, 'rollback_service', { name: 'web', release: 9 }))).toMatch(
      /release v9 not found; releases: v3, v2, v1/,
    );

    const forward = (await call(client, 'redeploy_service', { name: 'web' }))
      .structuredContent as ServiceView;
    expect(forward.deployment).toMatchObject({ status: 'active', release: 4 });
    expect(Object.keys(forward.deployment?.phase_ms ?? {})).not.toContain('build');
    expect((await viaIngress(url, ingressPort)).body).toBe('v2 hello v1 | build token seen | 1m\n');
    expect(text(await call(client, 'rollback_service', { name: 'web', release: 2 }))).toMatch(
      /release v2's image is already serving \(as v4\)/,
    );
    const after = (await call(client, 'list_deployments', { name: 'web', limit: 2 })).structuredContent as {
      deployments: { trigger: string; release: number; serving: boolean }[];
      next_cursor: string | null;
    };
    expect(after.deployments.map((d) => [d.trigger, d.release, d.serving])).toEqual([
      ['redeploy', 4, true],
      ['rollback', 3, false],
    ]);
    const rest = (await call(client, 'list_deployments', { name: 'web', cursor: after.next_cursor }))
      .structuredContent as { deployments: { release: number }[]; next_cursor: string | null };
    expect(rest.deployments.map((d) => d.release)).toEqual([2, 1]);
    expect(rest.next_cursor).toBeNull();
  });

  /** Commits `files` (path → content, relative to the app), pushes, waits for that deploy to end. */
  async function pushAndWait(message: string, files: Record<string, string>): Promise<ServiceView> {
    for (const [f, content] of Object.entries(files)) fs.writeFileSync(path.join(app, f), content);
    await git(['add', '.'], app);
    await git(['commit', '-q', '-m', message], app);
    const sha = (await git(['rev-parse', 'HEAD'], app)).stdout.trim();
    await git(['push', '-q', remote, 'HEAD:refs/heads/main'], app);
    const deadline = Date.now() + 90_000;
    let view = await service();
    while (
      (view.deployment?.commit !== sha || IN_FLIGHT_STATUSES.includes(view.deployment.status)) &&
      Date.now() < deadline
    ) {
      await sleep(500);
      view = await service();
    }
    return view;
  }

  it.each([
    [
      'crashes at start',
      { 'server.js': "console.error('missing DATABASE_URL'); process.exit(1);\n" },
      /^the process exited with code 1/,
      /missing DATABASE_URL/,
    ],
    [
      'listens on the wrong port',
      { 'server.js': "require('node:http').createServer((q, s) => s.end('x')).listen(5000);\n" },
      /^the app listens on 5000, expected PORT=3000/,
      undefined,
    ],
    [
      'runs out of memory',
      { 'server.js': 'const keep = [];\nsetInterval(() => keep.push(Buffer.alloc(64 << 20, 1)), 20);\n' },
      /out of memory/,
      undefined,
    ],
    [
      'never answers HTTP',
      { 'server.js': "console.log('warming up forever');\nsetInterval(() => {}, 1000);\n" },
      /^the app did not answer HTTP on PORT=3000 within 15 s/,
      /warming up forever/,
    ],
    [
      'fails to build',
      { 'build.js': "console.error('TypeError: cannot compile'); process.exit(2);\n" },
      /^build failed at .*RUN .*npm run build/,
      undefined,
    ],
  ])(
    'a push that %s ends failed with the reason and logs, while the healthy release keeps serving',
    async (_what, files, reason, logLine) => {
      const url = (await service()).url ?? '';
      const original = Object.fromEntries(
        Object.keys(files).map((f) => [f, fs.readFileSync(path.join(app, f), 'utf8')]),
      );
      const view = await pushAndWait(`break: ${_what}`, files);
      try {
        expect(view.deployment?.status).toBe('failed');
        expect(view.deployment?.reason).toMatch(reason);
        if (logLine) {
          const full = (await call(client, 'get_service', { name: 'web', runtime_log_lines: 100 }))
            .structuredContent as {
            deployment: { runtime_log: { lines: string[] } };
          };
          expect(full.deployment.runtime_log.lines.join('\n')).toMatch(logLine);
        }
        expect(view.status).toBe('active');
        expect((await viaIngress(url, ingressPort)).body).toBe('v2 hello v1 | build token seen | 1m\n');
      } finally {
        // The next case starts from the healthy app, whatever this one found.
        for (const [f, content] of Object.entries(original)) fs.writeFileSync(path.join(app, f), content);
        await git(['commit', '-q', '-am', `restore after: ${_what}`], app);
      }
    },
  );

  it('create_service again: the same settings start nothing, a changed env var redeploys the commit', async () => {
    await git(['push', '-q', remote, 'HEAD:refs/heads/main'], app); // the restored app
    const settings = {
      name: 'web',
      repo: 'web',
      env_vars: { MESSAGE: 'hello v1', BUILD_TOKEN: 'secret-build-token' },
    };
    let view = (await call(client, 'create_service', settings)).structuredContent as ServiceView;
    for (let i = 0; i < 180 && view.deployment?.status !== 'active'; i++) {
      await sleep(500);
      view = await service();
    }
    expect(view.deployment?.status).toBe('active');
    const same = (await call(client, 'create_service', settings)).structuredContent as ServiceView;
    expect(same.deployment?.id).toBe(view.deployment?.id);
    // This server allows one service per user: a second is refused, nothing is written.
    const second = await call(client, 'create_service', { ...settings, name: 'second' });
    expect(text(second)).toMatch(/service limit reached: you have 1 services \(the limit is 1\)/);
    const listed = (await call(client, 'list_services')).structuredContent as { services: unknown[] };
    expect(listed.services).toHaveLength(1);

    const changed = { ...settings, env_vars: { ...settings.env_vars, MESSAGE: 'hello v3' } };
    view = (await call(client, 'create_service', changed)).structuredContent as ServiceView;
    expect(view.deployment?.id).not.toBe(same.deployment?.id);
    const page = await eventually(
      () => viaIngress(view.url ?? '', ingressPort),
      (p) => p.body.includes('hello v3'),
      90_000,
    );
    expect(page.body).toBe('v2 hello v3 | build token seen | 1m\n');
  });

  it('a newer push supersedes a deployment still building: its build stops, only the newer one goes live', async () => {
    const url = (await service()).url ?? '';
    const pkgFile = path.join(app, 'package.json');
    const original = fs.readFileSync(pkgFile, 'utf8');
    // Unique per run: pgrep sees every build on this machine.
    // Long enough that a build left running is still there when the newer one is live.
    const slowStep = `sleep 150 && node build.js superseded-build-${process.pid}-${Date.now()}`;
    fs.writeFileSync(pkgFile, original.replace('"build": "node build.js"', `"build": "${slowStep}"`));
    await git(['commit', '-q', '-am', 'slow build'], app);
    const slow = (await git(['rev-parse', 'HEAD'], app)).stdout.trim();
    await git(['push', '-q', remote, 'HEAD:refs/heads/main'], app);
    const running = () =>
      exec('pgrep', ['-f', slowStep]).then(
        (r) => r.stdout.trim(),
        () => '',
      );
    await eventually(running, (pids) => pids !== '', 120_000);

    fs.writeFileSync(pkgFile, original);
    const server = path.join(app, 'server.js');
    fs.writeFileSync(server, fs.readFileSync(server, 'utf8').replace('res.end(`v2 ', 'res.end(`v4 '));
    const view = await pushAndWait('fast build', {});
    expect(view.deployment?.status).toBe('active');
    expect((await viaIngress(url, ingressPort)).body).toBe('v4 hello v3 | build token seen | 1m\n');
    const listed = (await call(client, 'list_deployments', { name: 'web', limit: 2 })).structuredContent as {
      deployments: {
        id: string;
        commit: string;
        status: string;
        reason: string | null;
        release: number | null;
      }[];
    };
    expect(listed.deployments[1]).toMatchObject({ commit: slow, status: 'superseded', release: null });
    expect(listed.deployments[1]?.reason).toMatch(/^superseded by deployment /);
    // get_service shows a chosen deployment (here the superseded one) instead of the latest.
    const chosen = (await call(client, 'get_service', { name: 'web', deployment: listed.deployments[1]?.id }))
      .structuredContent as ServiceView;
    expect(chosen.deployment).toMatchObject({ commit: slow, status: 'superseded' });
    expect(chosen.status).toBe('active');
    // The superseded build was stopped, not left to finish: the cancellation reaches the build at
    // its next heartbeat (throttled by Temporal to within 16 s), then BuildKit ends the step.
    expect(await eventually(running, (pids) => pids === '', 30_000)).toBe('');
  });

  it('delete_service leaves no container, route or stack behind, and frees the name', async () => {
    const url = (await service()).url ?? '';
    expect(await userContainers()).toHaveLength(1);
    const res = await call(client, 'delete_service', { name: 'web' });
    expect(res.structuredContent).toEqual({
      name: 'web',
      project: 'default',
      deleted: true,
      status: 'deleted',
    });
    let status = (await viaIngress(url, ingressPort)).status;
    for (let i = 0; i < 50 && status !== 404; i++) {
      await sleep(200); // Traefik's file watcher picks the removed route up within moments
      status = (await viaIngress(url, ingressPort)).status;
    }
    expect(status).toBe(404);
    expect(text(await call(client, 'get_service', { name: 'web' }))).toMatch(/not found/);
    expect(await userContainers()).toEqual([]);
    // Retired images leave the node too (the registry keeps them for rollbacks).
    const images = await podmanImages();
    expect(images.split('\n').filter((r) => r.startsWith(`127.0.0.1:${serve.ports.registry}/`))).toEqual([]);
    const routes = fs.readdirSync(path.join(work.dir, 'data/traefik/routes'));
    expect(routes).toEqual([]);
    const stacks = fs.readdirSync(path.join(work.dir, 'data/pulumi'), { recursive: true }).map(String);
    expect(stacks.filter((f) => f.endsWith('.json') && f.includes('stacks'))).toEqual([]);
  });
});

/**
 * The repositories of the node's images (`podman images`, the machine's store). An image another
 * process removes while podman lists fails the listing ("image not known"): asked again, a few
 * times.
 */
async function podmanImages(): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await exec('podman', ['images', '--format', '{{.Repository}}'])).stdout;
    } catch (err) {
      if (attempt >= 5 || !/image not known/.test(String((err as { stderr?: string }).stderr))) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
