// Deploy figures (printed by npm run bench): a small Node app (one dependency, a build step)
// through `serve --role all` on a fresh data dir, driven like an agent: MCP client + real git.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { agentGit, pushNewRepo } from '../test/support/git.ts';
import { eventually, httpGet } from '../test/support/http.ts';
import { call } from '../test/support/mcp.ts';
import { repoRoot, scratchDir } from '../test/support/scratch.ts';
import { connectAgent, startServe } from '../test/support/serve.ts';
import { IN_FLIGHT_STATUSES } from '../workers/deploy/statuses.ts';

const _exec = promisify(execFile);
const WARM_RUNS = 3;

type View = {
  url: string | null;
  deployment: { status: string; reason: string | null; phase_ms: Record<string, number> } | null;
};

export async function benchDeploy() {
  const work = scratchDir('bench-deploy', path.join(repoRoot, '.data', 'test'));
  const serve = await startServe(path.join(work.dir, 'data'));
  const git = agentGit(work.dir, 'Bench');
  try {
    const client = await connectAgent(serve, 'bench@example.com');
    const viaIngress = (url: string) =>
      httpGet(`http://127.0.0.1:${serve.ports.ingress}/`, new URL(url).hostname).catch(() => ({
        status: 0,
        body: '',
      }));
    const view = async () => (await call(client, 'get_service', { name: 'web' })).structuredContent as View;

    const remote = (
      (await call(client, 'create_repo', { name: 'web' })).structuredContent as { git_remote: string }
    ).git_remote;
    const app = path.join(work.dir, 'app');
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps/node-hello'), app, { recursive: true });
    await pushNewRepo(git, app, remote);

    // Cold: empty registry and BuildKit cache, so the base image is published on the way.
    let t0 = performance.now();
    await call(client, 'create_service', { name: 'web', repo: 'web', env_vars: { MESSAGE: 'v0' } });
    let v = await eventually(view, (x) => !IN_FLIGHT_STATUSES.includes(x.deployment?.status ?? ''), 300_000);
    if (v.deployment?.status !== 'active')
      throw new Error(`cold deploy failed: ${JSON.stringify(v.deployment)}`);
    await eventually(
      () => viaIngress(v.url ?? ''),
      (p) => p.body.includes('v0'),
      30_000,
    );
    const cold = { ms: performance.now() - t0, phases: v.deployment.phase_ms };

    // Warm: a one-line change pushed; timed from the push to the new response at the URL.
    const warm: { ms: number; phases: Record<string, number> }[] = [];
    for (let i = 1; i <= WARM_RUNS; i++) {
      const server = path.join(app, 'server.js');
      fs.writeFileSync(
        server,
        fs.readFileSync(server, 'utf8').replace(/res\.end\(`(run \d+ )?/, `res.end(\`run ${i} `),
      );
      await git(['commit', '-q', '-am', `change ${i}`], app);
      t0 = performance.now();
      await git(['push', '-q', remote, 'HEAD:refs/heads/main'], app);
      await eventually(
        () => viaIngress(v.url ?? ''),
        (p) => p.body.startsWith(`run ${i} `),
        300_000,
      );
      const ms = performance.now() - t0;
      v = await eventually(view, (x) => x.deployment?.status === 'active', 30_000);
      warm.push({ ms, phases: v.deployment?.phase_ms ?? {} });
    }

    // Rollback: the previous release's image again, no build.
    t0 = performance.now();
    await call(client, 'rollback_service', { name: 'web' });
    await eventually(
      () => viaIngress(v.url ?? ''),
      (p) => p.body.startsWith(`run ${WARM_RUNS - 1} `),
      120_000,
    );
    const rollback = performance.now() - t0;
    t0 = performance.now();
    await call(client, 'delete_service', { name: 'web' });
    const deleted = performance.now() - t0;
    await client.close();

    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    const phases = (p: Record<string, number>) =>
      ['clone', 'build', 'push', 'stackUp', 'health', 'promote']
        .map((k) => `${k} ${s(p[k] ?? 0)}`)
        .join(', ');
    const median = [...warm].sort((a, b) => a.ms - b.ms)[Math.floor(warm.length / 2)] ?? warm[0];
    console.log('\nDeploy, small Node app (npm ci of one dependency, a build step), serve --role all');
    console.log(`  cold deploy (create_service → live; base image published, empty cache)  ${s(cold.ms)}`);
    console.log(`    phases: ${phases(cold.phases)}`);
    console.log(
      `  warm redeploy (git push of a one-line change → new response), median of ${WARM_RUNS}  ${s(median?.ms ?? 0)}` +
        `   (runs: ${warm.map((w) => s(w.ms)).join(', ')})`,
    );
    console.log(`    phases: ${phases(median?.phases ?? {})}`);
    console.log(`  rollback_service → previous response served  ${s(rollback)}`);
    console.log(`  delete_service (container, route and stack removed)  ${s(deleted)}`);
  } finally {
    await serve.stop();
    work.cleanup();
  }
}
