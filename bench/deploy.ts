// Deploy figures (printed by npm run bench): a small Node app (one dependency, a build step)
// through `serve --role all` on a fresh data dir, driven like an agent: MCP client + real git.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { freePort } from '../core/daemons/probes.ts';
import { type TestCluster, useTestCluster } from '../test/support/cluster.ts';
import { agentGit, pushNewRepo } from '../test/support/git.ts';
import { eventually, httpGet } from '../test/support/http.ts';
import { call } from '../test/support/mcp.ts';
import { repoRoot, scratchDir } from '../test/support/scratch.ts';
import { connectAgent, type ServeOptions, startServe } from '../test/support/serve.ts';
import { IN_FLIGHT_STATUSES } from '../workers/deploy/statuses.ts';

const _exec = promisify(execFile);
const WARM_RUNS = 3;

type View = {
  url: string | null;
  deployment: { status: string; reason: string | null; phase_ms: Record<string, number> } | null;
};

type Figures = {
  cold: number;
  coldPhases: Record<string, number>;
  warm: number[];
  /** Per warm run: its time minus the app's own build and start. */
  controlPlane: number[];
  warmPhases: Record<string, number>;
  rollback: number;
  deleted: number;
  /**
   * Local runtime: a warm redeploy pushed after the registry, buildkitd and podman stopped idle
   * (they start first), and how long their start took (the server's log).
   */
  afterIdle?: { ms: number; startMs: number };
};

/** The bench's idle period of the on-demand daemons: short, yet far above the gap between warm runs. */
const DAEMONS_IDLE_SECONDS = 15;

type RuntimeName = 'local' | 'kubernetes';

/** The same deploy figures on both runtimes (or those named), side by side, measured in one run. */
export async function benchDeploy(only: RuntimeName[] = []) {
  const runtimes: RuntimeName[] = only.length ? only : ['local', 'kubernetes'];
  const loadBefore = os.loadavg();
  const figures = new Map<RuntimeName, Figures>();
  for (const r of runtimes) figures.set(r, await measure(r));
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const phases = (p: Record<string, number>) =>
    ['clone', 'build', 'push', 'stackUp', 'health', 'promote'].map((k) => `${k} ${s(p[k] ?? 0)}`).join(', ');
  const all = [...figures.entries()];
  const row = (label: string, values: string[]) =>
    console.log(`  ${label.padEnd(80)}${values.map((v, i) => v.padStart(i ? 14 : 10)).join('')}`);
  const each = (f: (x: Figures) => string) => all.map(([, x]) => f(x));
  console.log('\nDeploy, small Node app (npm ci of one dependency, a build step), serve --role all');
  console.log(`  load average before: ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);
  row(
    '',
    all.map(([n]) => n),
  );
  row(
    'cold deploy (create_service → live; empty caches)',
    each((x) => s(x.cold)),
  );
  row(
    `warm redeploy (push of a one-line change → new response), median of ${WARM_RUNS}`,
    each((x) => s(median(x.warm))),
  );
  row(
    "  of which the control plane (all but the app's own build and start), median",
    each((x) => s(median(x.controlPlane))),
  );
  row(
    `redeploy after the build daemons stopped idle (local; ${DAEMONS_IDLE_SECONDS} s idle period here)`,
    each((x) => (x.afterIdle ? s(x.afterIdle.ms) : '-')),
  );
  row(
    '  of which starting the registry, buildkitd and podman',
    each((x) => (x.afterIdle ? s(x.afterIdle.startMs) : '-')),
  );
  row(
    'rollback_service → previous response served',
    each((x) => s(x.rollback)),
  );
  row(
    'delete_service (everything the service ran removed)',
    each((x) => s(x.deleted)),
  );
  for (const [name, f] of all) {
    console.log(
      `  ${name}: warm runs ${f.warm.map(s).join(', ')}; control plane ${f.controlPlane.map(s).join(', ')}`,
    );
    console.log(`    cold phases: ${phases(f.coldPhases)}`);
    console.log(`    warm phases: ${phases(f.warmPhases)}`);
  }
  console.log(
    `  load average after: ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}

/**
 * The control plane's share of a redeploy: push → new response, minus the app's own build
 * (BuildKit's build phase) and its own start (container start → first healthy answer, the
 * health phase).
 */
export function controlPlaneShare(totalMs: number, phases: Record<string, number>): number {
  return totalMs - (phases.build ?? 0) - (phases.health ?? 0);
}

/** Deploy figures on one runtime: a fresh server (and, for Kubernetes, the one-node test cluster). */
async function measure(runtime: 'local' | 'kubernetes'): Promise<Figures> {
  const work = scratchDir(`bench-deploy-${runtime}`, path.join(repoRoot, '.data', 'test'));
  let cluster: TestCluster | undefined;
  let serveOptions: ServeOptions = { env: { DEPLOY_MCP_DAEMONS_IDLE_SECONDS: String(DAEMONS_IDLE_SECONDS) } };
  if (runtime === 'kubernetes') {
    const registry = await freePort();
    cluster = await useTestCluster({ registries: [`127.0.0.1:${registry}`] });
    serveOptions = {
      ports: {
        server: await freePort(),
        deployer: await freePort(),
        temporal: await freePort(),
        registry,
        ingress: cluster.ingressPort,
      },
      env: {
        DEPLOY_MCP_RUNTIME: 'kubernetes',
        DEPLOY_MCP_KUBECONFIG: cluster.kubeconfigPath,
        DEPLOY_MCP_INGRESS_NAMESPACE: cluster.ingressNamespace,
      },
    };
  }
  const serve = await startServe(path.join(work.dir, 'data'), serveOptions);
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

    // After the build daemons stopped idle (local runtime; on Kubernetes they always run).
    let afterIdle: Figures['afterIdle'];
    if (runtime === 'local') {
      const stopped = '"msg":"registry, buildkitd and podman stopped"';
      const startedLine = /"ms":(\d+),"msg":"registry, buildkitd and podman started"/g;
      await eventually(
        async () => serve.output().includes(stopped),
        (yes) => yes,
        DAEMONS_IDLE_SECONDS * 1000 + 120_000,
      );
      const starts = [...serve.output().matchAll(startedLine)].length;
      const server = path.join(app, 'server.js');
      fs.writeFileSync(
        server,
        fs.readFileSync(server, 'utf8').replace(/res\.end\(`(run \d+ )?/, 'res.end(`idle '),
      );
      await git(['commit', '-q', '-am', 'after idle'], app);
      t0 = performance.now();
      await git(['push', '-q', remote, 'HEAD:refs/heads/main'], app);
      await eventually(
        () => viaIngress(v.url ?? ''),
        (p) => p.body.startsWith('idle '),
        300_000,
      );
      const ms = performance.now() - t0;
      v = await eventually(view, (x) => x.deployment?.status === 'active', 30_000);
      const start = [...serve.output().matchAll(startedLine)][starts];
      afterIdle = { ms, startMs: Number(start?.[1] ?? Number.NaN) };
    }

    // Rollback: the previous release's image again, no build.
    t0 = performance.now();
    await call(client, 'rollback_service', { name: 'web' });
    await eventually(
      () => viaIngress(v.url ?? ''),
      // The release before the newest: the after-idle one's predecessor, else the last warm run's.
      (p) => p.body.startsWith(afterIdle ? `run ${WARM_RUNS} ` : `run ${WARM_RUNS - 1} `),
      120_000,
    );
    const rollback = performance.now() - t0;
    t0 = performance.now();
    await call(client, 'delete_service', { name: 'web' });
    const deleted = performance.now() - t0;
    await client.close();

    const median = [...warm].sort((x, y) => x.ms - y.ms)[Math.floor(warm.length / 2)] ?? warm[0];
    return {
      cold: cold.ms,
      coldPhases: cold.phases,
      warm: warm.map((w) => w.ms),
      controlPlane: warm.map((w) => controlPlaneShare(w.ms, w.phases)),
      warmPhases: median?.phases ?? {},
      rollback,
      deleted,
      ...(afterIdle ? { afterIdle } : {}),
    };
  } finally {
    await serve.stop();
    await cluster?.release();
    work.cleanup();
  }
}
