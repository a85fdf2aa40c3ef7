import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../core/daemons/probes.ts';
import { startTemporalDevServer, type TemporalDevServer } from '../../core/daemons/temporal.ts';
import { OUT_OF_DISK_SPACE_MESSAGE } from '../../mcp/tool-kit.ts';
import { connectTemporal } from '../../workers/client.ts';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { eventually } from '../support/http.ts';
import { call, text } from '../support/mcp.ts';
import { startTestRuntime, type TestRuntime } from '../support/runtime.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { connectAgent, type ServeProcess, startServe } from '../support/serve.ts';

/**
 * The tester's report: on a full disk a deploy stayed `building` forever (the step retried on
 * SQLITE_FULL), /healthz said ok, and tools answered `Internal error`.
 *
 * The whole server (`serve --role all`) runs with its data dir (database, git repos, stack state)
 * on a 64 MiB tmpfs. Right after create_service the disk fills up, as it does when logs or other
 * tenants' repos take the last space, so the deploy's next database write fails with the real
 * SQLITE_FULL. Temporal and the build/run daemons sit on the ordinary disk: Temporal's own state
 * is the Temporal cluster's to keep (production runs one elsewhere), and a BuildKit or registry
 * on the tmpfs would make which write fails first a race. The deploy's steps writing the full
 * data dir is the realistic part, and what the product must handle.
 */
describe('a full data dir: the deploy fails with the reason, /healthz and tools say so', () => {
  const work = scratchDir('disk-full', path.join(repoRoot, '.data', 'test'));
  const dataDir = path.join(work.dir, 'data');
  const filler = path.join(dataDir, 'filler');
  let mounted = false;
  let rt: TestRuntime;
  let temporal: TemporalDevServer;
  let serve: ServeProcess;
  let client: Client;

  beforeAll(async () => {
    fs.mkdirSync(dataDir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0700', 'tmpfs', dataDir]);
    mounted = true;
    rt = await startTestRuntime(path.join(work.dir, 'runtime'));
    temporal = await startTemporalDevServer({
      bin: 'temporal',
      dir: path.join(work.dir, 'temporal'),
      port: await freePort(),
      namespace: 'default',
    });
    serve = await startServe(dataDir, {
      env: {
        DEPLOY_MCP_TEMPORAL_ADDRESS: temporal.address,
        DEPLOY_MCP_BUILDKIT_ADDRESS: rt.buildkit.address,
        DEPLOY_MCP_REGISTRY: rt.registry.host,
        DEPLOY_MCP_ENGINE_SOCKET: rt.podman.socketPath,
        DEPLOY_MCP_ROUTES_DIR: rt.traefik.routesDir,
        DEPLOY_MCP_INGRESS_PORT: String(rt.traefikPort),
        DEPLOY_MCP_MIN_FREE_DISK_MB: '8',
      },
    });
    client = await connectAgent(serve, 'agent@example.com');
  });

  afterAll(async () => {
    await client?.close();
    await serve?.stop();
    await temporal?.stop();
    await rt?.stop();
    if (mounted) execFileSync('umount', [dataDir]);
    work.cleanup();
  });

  const healthz = async () => {
    const res = await fetch(`http://127.0.0.1:${serve.ports.server}/healthz`);
    return { status: res.status, body: (await res.json()) as { status: string; reason?: string } };
  };

  /** Writes `filler` until the file system has no block left. */
  function fillDisk() {
    const fd = fs.openSync(filler, 'w');
    try {
      for (const size of [1024 * 1024, 4096]) {
        const chunk = Buffer.alloc(size, 1);
        try {
          for (;;) fs.writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
        }
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  it('ends the deploy failed with "out of disk space on <the data dir>", bounded, and reports it', async () => {
    const repo = await call(client, 'create_repo', { name: 'web' });
    const remote = (repo.structuredContent as { git_remote: string }).git_remote;
    const app = path.join(work.dir, 'app');
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps/node-hello'), app, { recursive: true });
    await pushNewRepo(agentGit(work.dir), app, remote);
    expect(await healthz()).toMatchObject({ status: 200, body: { status: 'ok' } });

    const created = await call(client, 'create_service', { name: 'web', repo: 'web', wait: false });
    if (created.isError) throw new Error(`${text(created)}\n${serve.output().slice(-3000)}`);
    fillDisk();

    // The operator is told, with the path and what is left.
    expect(await healthz()).toEqual({
      status: 503,
      body: {
        status: 'degraded',
        role: 'server',
        checks: { database: 'ok', temporal: 'ok', disk: 'failing' },
        reason: `disk: 0 MiB free on ${dataDir} (below 8 MiB)`,
      },
    });
    // A tool that must write answers clearly (and the server logs it as an error).
    const other = await call(client, 'create_repo', { name: 'other' });
    expect(other).toMatchObject({ isError: true });
    expect(text(other)).toBe(OUT_OF_DISK_SPACE_MESSAGE);
    await eventually(
      async () => serve.output(),
      (out) => /"level":50[^\n]*"tool":"create_repo"[^\n]*out of disk space/.test(out),
      10_000,
    );
    // A read may work, or meet SQLite's I/O error on the full disk: never an internal error.
    const listed = await call(client, 'list_services');
    if (listed.isError) expect(text(listed)).toBe(OUT_OF_DISK_SPACE_MESSAGE);

    // The deploy gave up at once (no retries of the build) and its end is being recorded on a
    // bounded schedule, failing for now: the database cannot grow.
    const t = await connectTemporal(temporal.address, 'default');
    try {
      const [exec0] = await eventually(
        async () => {
          const found = [];
          for await (const w of t.client.workflow.list({ query: "WorkflowType='deployService'" }))
            found.push(w);
          return found;
        },
        (found) => found.length === 1,
      );
      const handle = t.client.workflow.getHandle(exec0?.workflowId ?? '');
      const pending = await eventually(
        async () => (await handle.describe()).raw.pendingActivities ?? [],
        (acts) => acts.some((a) => a.activityType?.name === 'finishUnsuccessful' && (a.attempt ?? 0) >= 2),
        60_000,
      );
      const finishing = pending.find((a) => a.activityType?.name === 'finishUnsuccessful');
      expect(finishing?.maximumAttempts).toBeGreaterThan(1);
      expect(finishing?.maximumAttempts).toBeLessThanOrEqual(20);
      expect(finishing?.lastFailure?.message).toMatch(/SQLITE_FULL|SQLITE_IOERR/);
      const history = (await handle.fetchHistory()).events ?? [];
      const buildFailures = history.flatMap((e) => {
        const f = e.activityTaskFailedEventAttributes?.failure;
        return f ? [f] : [];
      });
      expect(buildFailures.map((f) => f.message)).toEqual([`out of disk space on the data dir (${dataDir})`]);
      expect(buildFailures[0]?.applicationFailureInfo).toMatchObject({
        type: 'OutOfDiskSpace',
        nonRetryable: true,
      });

      // The operator frees space: the next attempt records the end, and the deploy reads failed.
      fs.rmSync(filler);
      const view = await eventually(
        async () =>
          (await call(client, 'get_service', { name: 'web' })).structuredContent as {
            status: string;
            deployment: { status: string; reason: string | null };
          },
        (v) => v.deployment.status === 'failed',
        60_000,
      );
      expect(view).toMatchObject({
        status: 'failed',
        deployment: { status: 'failed', reason: `out of disk space on the data dir (${dataDir})` },
      });
      expect(await handle.result()).toEqual({
        status: 'failed',
        reason: `out of disk space on the data dir (${dataDir})`,
      });
    } finally {
      await t.close();
    }
    expect(await healthz()).toMatchObject({ status: 200, body: { status: 'ok' } });
    const again = await call(client, 'create_repo', { name: 'other' });
    expect(again.isError, text(again)).toBeFalsy();
  });
});
