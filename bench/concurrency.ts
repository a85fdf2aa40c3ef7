import { execFile } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { agentGit, pushNewRepo } from '../test/support/git.ts';
import { call, connectClient } from '../test/support/mcp.ts';
import { repoRoot, scratchDir } from '../test/support/scratch.ts';
import { CLI, startServe } from '../test/support/serve.ts';
import { buildInterval, mostAtOnce, writeTimedBuildApp } from '../test/support/timed-build-app.ts';

const exec = promisify(execFile);

const AGENTS = 20;
/** The default of DEPLOY_MCP_MAX_BUILDS, set explicitly so the figure says what it ran with. */
const MAX_BUILDS = 2;
/** Each app's build step takes this long (plus the clone, install and push around it). */
const BUILD_MS = 1_000;
const DEADLINE_MS = 20 * 60_000;

type View = {
  status: string;
  queue_position: number | null;
  deployment: { reason: string | null } | null;
};

/**
 * 20 agents (each a user with its own key and client) create a service at the same moment on a
 * server with the default number of builders: the time until all are live, the most builds seen
 * running at once (polled, and from the builds' own clock readings) and the longest queue.
 */
export async function benchConcurrency() {
  const work = scratchDir('bench-concurrency', path.join(repoRoot, '.data', 'test'));
  const serve = await startServe(path.join(work.dir, 'data'), {
    env: { DEPLOY_MCP_MAX_BUILDS: String(MAX_BUILDS) },
  });
  const git = agentGit(work.dir);
  const names = Array.from({ length: AGENTS }, (_, i) => `conc-${i}`);
  const agents: Client[] = [];
  try {
    // Users, keys and repos first (5 at a time), so only the deploys run together.
    for (let i = 0; i < AGENTS; i += 5)
      agents.push(
        ...(await Promise.all(
          names.slice(i, i + 5).map(async (name) => {
            const email = `${name}@example.com`;
            await exec(CLI, ['users', 'create', email], { env: serve.env });
            const key = (await exec(CLI, ['keys', 'create', email], { env: serve.env })).stdout
              .trim()
              .split('\n')
              .at(-1);
            const client = await connectClient(`${serve.env.DEPLOY_MCP_PUBLIC_URL}/mcp`, key ?? '');
            const repo = await call(client, 'create_repo', { name });
            if (repo.isError) throw new Error(JSON.stringify(repo.content));
            const dir = path.join(work.dir, name);
            writeTimedBuildApp(dir, `hello from ${name}`, BUILD_MS);
            await pushNewRepo(git, dir, (repo.structuredContent as { git_remote: string }).git_remote);
            return client;
          }),
        )),
      );

    const t0 = performance.now();
    const created = await Promise.all(
      names.map((name, i) => call(agents[i] as Client, 'create_service', { name, repo: name, wait: false })),
    );
    const refused = created.filter((r) => r.isError);
    if (refused.length) throw new Error(`create_service refused: ${JSON.stringify(refused[0]?.content)}`);

    let mostBuilding = 0;
    let longestQueue = 0;
    let highestPosition = 0;
    const liveAt = new Map<string, number>();
    const failed = new Map<string, string>();
    const deadline = Date.now() + DEADLINE_MS;
    while (liveAt.size + failed.size < AGENTS && Date.now() < deadline) {
      const pending = names.flatMap((n, i) => (liveAt.has(n) || failed.has(n) ? [] : [i]));
      const views = await Promise.all(
        pending.map(async (i) => {
          const res = await call(agents[i] as Client, 'get_service', { name: names[i] });
          return [names[i] as string, res.structuredContent as View] as const;
        }),
      );
      const all = views.map(([, v]) => v);
      mostBuilding = Math.max(mostBuilding, all.filter((v) => v.status === 'building').length);
      longestQueue = Math.max(longestQueue, all.filter((v) => v.status === 'queued').length);
      highestPosition = Math.max(highestPosition, ...all.map((v) => v.queue_position ?? 0));
      for (const [name, v] of views) {
        if (v.status === 'active') liveAt.set(name, performance.now() - t0);
        if (v.status === 'failed') failed.set(name, v.deployment?.reason ?? 'no reason');
      }
      await sleep(500);
    }

    // The builds' own clock readings: how many really ran at the same moment.
    const intervals = (
      await Promise.all(
        names.map(async (name, i) => {
          const res = await call(agents[i] as Client, 'get_service', { name, deploy_log_lines: 500 });
          const view = res.structuredContent as { deployment: { build_log: { lines: string[] } } | null };
          return buildInterval(view.deployment?.build_log.lines ?? []);
        }),
      )
    ).filter((i) => i !== undefined);

    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    const times = [...liveAt.values()].sort((a, b) => a - b);
    console.log(
      `\nConcurrency: ${AGENTS} agents call create_service at the same moment (DEPLOY_MCP_MAX_BUILDS=${MAX_BUILDS})`,
    );
    console.log(
      liveAt.size === AGENTS
        ? `  all ${AGENTS} live after ${s(times.at(-1) ?? 0)} (first after ${s(times[0] ?? 0)}, median ${s(times[Math.floor(times.length / 2)] ?? 0)})`
        : `  only ${liveAt.size} of ${AGENTS} live after ${s(performance.now() - t0)}; failed: ${failed.size}`,
    );
    console.log(
      `  most builds running at once: ${mostBuilding} seen by polling, ${mostAtOnce(intervals)} from the builds' clocks (${intervals.length} builds)`,
    );
    console.log(
      `  longest queue: ${longestQueue} deployments queued at once (highest queue_position ${highestPosition})`,
    );
    for (const [name, reason] of failed) console.log(`  ${name} failed: ${reason.split('\n')[0]}`);
  } finally {
    await Promise.all(
      agents.map((a, i) => call(a, 'delete_service', { name: names[i] }).catch(() => undefined)),
    );
    await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
    await serve.stop();
    work.cleanup();
  }
}
