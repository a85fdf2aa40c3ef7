import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { httpGet } from '../support/http.ts';
import { call, text } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { connectAgent, type ServeProcess, startServe } from '../support/serve.ts';
import { buildInterval, mostAtOnce, writeTimedBuildApp } from '../support/timed-build-app.ts';

type ServiceView = {
  status: string;
  queue_position: number | null;
  url: string | null;
  deployment: {
    status: string;
    reason: string | null;
    build_log: { lines: string[] };
  } | null;
};

const AGENTS = 3;
/** Long enough that a build running beside another would be seen in their clock readings. */
const BUILD_MS = 4_000;

// Three agents deploy at once on a server with one builder (DEPLOY_MCP_MAX_BUILDS=1): the builds
// run one after the other, the waiting deployments say so (queued, with their place in line),
// and all three go live.
describe('concurrent deploys share a bounded number of builders', () => {
  const work = scratchDir('concurrency', path.join(repoRoot, '.data', 'test'));
  const run = `q${process.pid % 100000}`;
  const names = Array.from({ length: AGENTS }, (_, i) => `${run}-${i}`);
  let serve: ServeProcess;
  const agents: Client[] = [];

  beforeAll(async () => {
    serve = await startServe(path.join(work.dir, 'data'), { env: { DEPLOY_MCP_MAX_BUILDS: '1' } });
    for (const [i] of names.entries()) agents.push(await connectAgent(serve, `${run}-${i}@example.com`));
  });

  afterAll(async () => {
    try {
      await Promise.all(
        agents.map((a, i) => call(a, 'delete_service', { name: names[i] }).catch(() => undefined)),
      );
    } finally {
      await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
      await serve?.stop();
      work.cleanup();
    }
  });

  async function view(i: number, args: Record<string, unknown> = {}): Promise<ServiceView> {
    const res = await call(agents[i] as Client, 'get_service', { name: names[i], ...args });
    if (res.isError) throw new Error(text(res));
    return res.structuredContent as ServiceView;
  }

  it('builds one at a time, shows the others queued with their place in line, and all go live', async () => {
    const git = agentGit(work.dir);
    await Promise.all(
      names.map(async (name, i) => {
        const agent = agents[i] as Client;
        const repo = await call(agent, 'create_repo', { name });
        if (repo.isError) throw new Error(text(repo));
        const dir = path.join(work.dir, name);
        writeTimedBuildApp(dir, `hello from ${name}`, BUILD_MS);
        await pushNewRepo(git, dir, (repo.structuredContent as { git_remote: string }).git_remote);
      }),
    );

    // All three at the same moment.
    const created = await Promise.all(
      names.map((name, i) => call(agents[i] as Client, 'create_service', { name, repo: name, wait: false })),
    );
    for (const res of created) if (res.isError) throw new Error(text(res));

    // Follow all three (bounded) until each has ended.
    const waiting: ServiceView[] = [];
    const deadline = Date.now() + 300_000;
    let views: ServiceView[] = [];
    for (;;) {
      views = await Promise.all(names.map((_, i) => view(i)));
      waiting.push(...views.filter((v) => v.status === 'queued'));
      const failed = views.find((v) => v.status === 'failed');
      if (failed) throw new Error(`a deploy failed: ${JSON.stringify(failed.deployment?.reason)}`);
      if (views.every((v) => v.status === 'active')) break;
      if (Date.now() > deadline)
        throw new Error(`not all live in time: ${JSON.stringify(views)}\n${serve.output().slice(-3000)}`);
      await sleep(300);
    }

    // A deployment waiting for the builder was seen as such: queued, in line, its build not begun.
    expect(waiting.length).toBeGreaterThan(0);
    for (const v of waiting) {
      expect(v.queue_position).toBeGreaterThanOrEqual(1);
      expect(v.queue_position).toBeLessThanOrEqual(AGENTS);
      expect(v.deployment?.status).toBe('queued');
      expect(v.deployment?.build_log.lines.join('\n')).not.toMatch(/timed-build start/);
    }

    // The builds ran one after the other: their clock readings never overlap.
    const intervals = await Promise.all(
      names.map(async (_, i) => {
        const lines = (await view(i, { deploy_log_lines: 500 })).deployment?.build_log.lines ?? [];
        const interval = buildInterval(lines);
        if (!interval) throw new Error(`no build times in the log of ${names[i]}:\n${lines.join('\n')}`);
        return interval;
      }),
    );
    // Sane readings: each build waited its time (a timer may fire a millisecond early).
    for (const i of intervals) expect(i.end - i.start).toBeGreaterThanOrEqual(BUILD_MS - 100);
    expect(mostAtOnce(intervals), JSON.stringify(intervals)).toBe(1);

    // All three serve their own app.
    for (const [i, v] of views.entries()) {
      expect(v.queue_position).toBeNull();
      const page = await httpGet(`http://127.0.0.1:${serve.ports.ingress}/`, new URL(v.url ?? '').hostname);
      expect(page).toMatchObject({ status: 200, body: `hello from ${names[i]}\n` });
    }
  });
});
