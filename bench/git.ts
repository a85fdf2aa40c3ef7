import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { agentGit } from '../test/support/git.ts';
import { call, connectClient, startMcpTestServer } from '../test/support/mcp.ts';
import { scratchDir } from '../test/support/scratch.ts';

const REPO_MB = 50;

export async function benchGit() {
  const work = scratchDir('bench-git');
  const srv = await startMcpTestServer();
  const git = agentGit(work.dir, 'Bench');
  try {
    const client = await connectClient(srv.url, (await srv.newUser('bench@example.com')).key);
    const remote = (await call(client, 'create_repo', { name: 'big' })).structuredContent as {
      git_remote: string;
    };
    await client.close();

    const local = path.join(work.dir, 'local');
    fs.mkdirSync(local);
    await git(['init', '-q', '-b', 'main'], local);
    for (let i = 0; i < REPO_MB; i++)
      fs.writeFileSync(path.join(local, `blob-${i}.bin`), randomBytes(1024 * 1024));
    await git(['add', '.'], local);
    await git(['commit', '-q', '-m', 'big'], local);

    let t0 = performance.now();
    await git(['push', '-q', remote.git_remote, 'HEAD:refs/heads/main'], local);
    const push = performance.now() - t0;
    t0 = performance.now();
    await git(['clone', '-q', remote.git_remote, path.join(work.dir, 'clone')]);
    const clone = performance.now() - t0;
    console.log(`\nGit smart HTTP, ${REPO_MB} MB repository (incompressible, ${REPO_MB} files)`);
    console.log(`  push  ${(push / 1000).toFixed(2)} s   (${(REPO_MB / (push / 1000)).toFixed(0)} MB/s)`);
    console.log(`  clone ${(clone / 1000).toFixed(2)} s   (${(REPO_MB / (clone / 1000)).toFixed(0)} MB/s)`);
  } finally {
    await srv.close();
    work.cleanup();
  }
}
