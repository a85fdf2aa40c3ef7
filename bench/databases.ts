import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { agentGit, pushNewRepo } from '../test/support/git.ts';
import { httpGet } from '../test/support/http.ts';
import { call, connectClient } from '../test/support/mcp.ts';
import { repoRoot, scratchDir } from '../test/support/scratch.ts';
import { CLI, startServe } from '../test/support/serve.ts';

const exec = promisify(execFile);

/**
 * Time from one create_service call to a live app that has used its database (its first
 * /notes?add=… answered 200), for postgres and sqlite, against the same kind of app deployed
 * without a database (live: / answers). Each app is built once first, so the figures compare
 * warm-cache deploys.
 */
export async function benchDatabases() {
  const work = scratchDir('bench-databases', path.join(repoRoot, '.data', 'test'));
  const serve = await startServe(path.join(work.dir, 'data'));
  const git = agentGit(work.dir);
  try {
    await exec(CLI, ['users', 'create', 'bench@example.com'], { env: serve.env });
    const key = (await exec(CLI, ['keys', 'create', 'bench@example.com'], { env: serve.env })).stdout
      .trim()
      .split('\n')
      .at(-1);
    const client = await connectClient(`${serve.env.DEPLOY_MCP_PUBLIC_URL}/mcp`, key ?? '');
    for (const [repo, fixture] of [
      ['node-pg', 'node-postgres'],
      ['py-sqlite', 'python-sqlite'],
    ] as const) {
      const remote = (await call(client, 'create_repo', { name: repo })).structuredContent as {
        git_remote: string;
      };
      const dir = path.join(work.dir, repo);
      fs.cpSync(path.join(repoRoot, 'test/fixtures/apps', fixture), dir, { recursive: true });
      await pushNewRepo(git, dir, remote.git_remote);
    }
    /** create_service → the first 200 on `probe` through Traefik, in ms. */
    const deploy = async (name: string, repo: string, probe: string, database?: string) => {
      const t0 = performance.now();
      const res = await call(client, 'create_service', {
        name,
        repo,
        wait: false,
        ...(database ? { database: { type: database } } : {}),
      });
      if (res.isError) throw new Error(JSON.stringify(res.content));
      const deadline = Date.now() + 600_000;
      for (;;) {
        const view = (await call(client, 'get_service', { name })).structuredContent as {
          url: string | null;
        };
        if (view.url) {
          const r = await httpGet(
            `http://127.0.0.1:${serve.ports.ingress}${probe}`,
            new URL(view.url).hostname,
          ).catch(() => ({ status: 0 }));
          if (r.status === 200) return performance.now() - t0;
        }
        if (Date.now() > deadline) throw new Error(`${name} did not come up`);
        await sleep(250);
      }
    };
    // Warm the build cache: each app once without a database.
    const nodeBase = await deploy('node-plain', 'node-pg', '/');
    const pyBase = await deploy('py-plain', 'py-sqlite', '/');
    const nodeWarm = await deploy('node-plain2', 'node-pg', '/');
    const pyWarm = await deploy('py-plain2', 'py-sqlite', '/');
    const pg = await deploy('node-db', 'node-pg', '/notes?add=first', 'postgres');
    const lite = await deploy('py-db', 'py-sqlite', '/notes?add=first', 'sqlite');
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    console.log('\nDatabases in one call: create_service → live app that has written and read its first row');
    console.log(
      `  node + postgres   ${s(pg)}   (same app without a database: ${s(nodeWarm)}; ${(pg / nodeWarm).toFixed(2)}×)`,
    );
    console.log(
      `  python + sqlite   ${s(lite)}   (same app without a database: ${s(pyWarm)}; ${(lite / pyWarm).toFixed(2)}×)`,
    );
    console.log(`  (cold first deploys, building: node ${s(nodeBase)}, python ${s(pyBase)})`);
    for (const name of ['node-plain', 'py-plain', 'node-plain2', 'py-plain2', 'node-db', 'py-db'])
      await call(client, 'delete_service', { name }).catch(() => undefined);
    await client.close();
  } finally {
    await serve.stop();
    work.cleanup();
  }
}
