// Real-world apps on the first call (`npm run bench -- apps`): every starter-shaped app of the
// corpus in test/fixtures/apps, deployed through MCP with only `repo` and `name`, one after
// another on one `serve --role all`. Prints whether each went live on the first call, its time to
// live, and each failure's reason. `npm run bench -- apps vite-spa django-static` runs some.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { agentGit, pushNewRepo } from '../test/support/git.ts';
import { httpGet } from '../test/support/http.ts';
import { call, text } from '../test/support/mcp.ts';
import { repoRoot, scratchDir } from '../test/support/scratch.ts';
import { connectAgent, startServe } from '../test/support/serve.ts';

/** The corpus, and what each app should do: go live, or fail with its cause named (on purpose). */
const CORPUS: { fixture: string; expect: 'live' | RegExp }[] = [
  { fixture: 'node-hello', expect: 'live' },
  { fixture: 'express-hello', expect: 'live' },
  { fixture: 'fastify-loopback', expect: /listens on 127\.0\.0\.1:\d+(, \[::1\]:\d+)? only/ },
  { fixture: 'pnpm-hello', expect: 'live' },
  { fixture: 'yarn-berry-hello', expect: 'live' },
  { fixture: 'node20-nvmrc', expect: 'live' },
  { fixture: 'vite-spa', expect: 'live' },
  { fixture: 'python-flask', expect: 'live' },
  { fixture: 'fastapi-uv', expect: 'live' },
  { fixture: 'django-static', expect: 'live' },
  { fixture: 'procfile-python', expect: 'live' },
  { fixture: 'python313', expect: 'live' },
  { fixture: 'python312-only', expect: /asks for Python 3\.12, which is not offered/ },
  { fixture: 'go-hello', expect: 'live' },
  { fixture: 'gin-procfile', expect: 'live' },
  { fixture: 'static-site', expect: 'live' },
  { fixture: 'dockerfile-app', expect: 'live' },
  { fixture: 'dockerhub-dockerfile', expect: /base image node:22-alpine cannot be pulled/ },
  // The heavy installs last.
  { fixture: 'nestjs-app', expect: 'live' },
  { fixture: 'sveltekit-node', expect: 'live' },
  { fixture: 'remix-app', expect: 'live' },
  { fixture: 'next-app', expect: 'live' },
  { fixture: 'nuxt-app', expect: 'live' },
  { fixture: 'cra-app', expect: 'live' },
];

/** How long one app may take from create_service to a verdict (cold caches, big installs). */
const PER_APP_MS = 10 * 60_000;
/** No app is started after this long (the rest are listed as not run). */
const BUDGET_MS = 30 * 60_000;

type View = {
  status: string;
  url: string | null;
  deployment: { status: string; reason: string | null } | null;
};

export async function benchApps(only: string[] = []) {
  const corpus = CORPUS.filter((c) => only.length === 0 || only.includes(c.fixture));
  const work = scratchDir('bench-apps', path.join(repoRoot, '.data', 'test'));
  const serve = await startServe(path.join(work.dir, 'data'), {
    env: { DEPLOY_MCP_BUILD_TIMEOUT_SECONDS: '900', DEPLOY_MCP_HEALTH_TIMEOUT_SECONDS: '90' },
  });
  let client: Awaited<ReturnType<typeof connectAgent>> | undefined;
  const git = agentGit(work.dir);
  const rows: { app: string; live: boolean; ms: number; reason: string; asExpected: boolean }[] = [];
  const benchStart = Date.now();
  const notRun: string[] = [];
  try {
    client = await connectAgent(serve, 'bench-apps@example.com');
    for (const [i, c] of corpus.entries()) {
      if (Date.now() - benchStart > BUDGET_MS) {
        notRun.push(c.fixture);
        continue;
      }
      const name = `app${i}-${c.fixture}`.slice(0, 30).replace(/-+$/, '');
      const repo = await call(client, 'create_repo', { name });
      const remote = (repo.structuredContent as { git_remote: string }).git_remote;
      const dir = path.join(work.dir, name);
      fs.cpSync(path.join(repoRoot, 'test/fixtures/apps', c.fixture), dir, { recursive: true });
      await pushNewRepo(git, dir, remote);
      const t0 = performance.now();
      const created = await call(client, 'create_service', { name, repo: name });
      let view: View | undefined;
      let reason = created.isError ? text(created) : '';
      const deadline = Date.now() + PER_APP_MS;
      while (!reason && Date.now() < deadline) {
        view = (await call(client, 'get_service', { name })).structuredContent as View;
        if (view.status === 'active' || view.deployment?.status === 'failed') break;
        await sleep(2000);
      }
      let live = view?.status === 'active';
      const ms = performance.now() - t0;
      if (live && view?.url) {
        // Live means it answers through the router, below 500.
        const page = await httpGet(`http://127.0.0.1:${serve.ports.ingress}/`, new URL(view.url).hostname);
        live = page.status < 500;
        if (!live) reason = `answered ${page.status} through the router`;
      }
      if (!live && !reason)
        reason = view?.deployment?.reason ?? `no verdict within ${PER_APP_MS / 60_000} min`;
      const asExpected = c.expect === 'live' ? live : c.expect.test(reason);
      rows.push({ app: c.fixture, live, ms, reason, asExpected });
      console.log(
        `  ${c.fixture.padEnd(22)} ${live ? 'live  ' : 'failed'} ${(ms / 1000).toFixed(1).padStart(7)} s${reason ? `  ${reason.split('\n')[0]?.slice(0, 400)}` : ''}`,
      );
      await call(client, 'delete_service', { name });
    }
  } finally {
    await client?.close();
    await serve.stop();
    work.cleanup();
  }
  const live = rows.filter((r) => r.live);
  const times = live.map((r) => r.ms).sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)] ?? 0;
  console.log(`\nReal-world apps, each deployed with only repo and name (test/fixtures/apps)`);
  console.log(`  live on the first call: ${live.length} of ${rows.length}`);
  console.log(`  median time to live: ${(median / 1000).toFixed(1)} s`);
  const failures = rows.filter((r) => !r.live);
  console.log(
    `  failures named with their expected cause: ${failures.filter((r) => r.asExpected).length} of ${failures.length}`,
  );
  if (notRun.length)
    console.log(`  not run (past the ${BUDGET_MS / 60_000} min budget): ${notRun.join(', ')}`);
  for (const r of rows.filter((x) => !x.asExpected))
    console.log(`  NOT AS EXPECTED: ${r.app}: ${r.live ? 'went live' : r.reason.split('\n')[0]}`);
}
