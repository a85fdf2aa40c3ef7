import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentGit } from '../support/git.ts';
import { call, connectClient, type McpTestServer, startMcpTestServer, text } from '../support/mcp.ts';
import { scratchDir } from '../support/scratch.ts';

const MiB = 1024 * 1024;

describe('git hosting limits', () => {
  const work = scratchDir('git-limits');
  let srv: McpTestServer;
  let client: Client;
  const git = agentGit(work.dir, 'A');

  beforeAll(async () => {
    srv = await startMcpTestServer({
      git: { maxPushBytes: 2 * MiB, maxRepoBytes: 3 * MiB, maxReposPerUser: 3 },
    });
    client = await connectClient(srv.url, (await srv.newUser('limits@example.com')).key);
  });
  afterAll(async () => {
    await client?.close();
    await srv.close();
    work.cleanup();
  });

  async function repoWith(name: string, bytes: number) {
    const dir = path.join(work.dir, name);
    fs.mkdirSync(dir);
    await git(['init', '-q', '-b', 'main'], dir);
    fs.writeFileSync(path.join(dir, 'data.bin'), randomBytes(bytes)); // incompressible
    await git(['add', '.'], dir);
    await git(['commit', '-q', '-m', name], dir);
    return dir;
  }
  async function remote(name: string) {
    const res = await call(client, 'create_repo', { name });
    if (res.isError) throw new Error(text(res));
    return (res.structuredContent as { git_remote: string }).git_remote;
  }

  it('rejects a push larger than the push limit with a clear error, changing nothing', async () => {
    const url = await remote('big-push');
    const local = await repoWith('big-push', 3 * MiB);
    const err = await git(['push', url, 'HEAD:refs/heads/main'], local).then(
      () => '',
      (e: { stderr: string }) => e.stderr,
    );
    expect(err).toMatch(/pack exceeds maximum allowed size|larger than/);
    expect((await git(['ls-remote', '--heads', url])).stdout).toBe('');
  });

  it('rejects a push that would grow the repo past its limit, keeping earlier pushes', async () => {
    const url = await remote('growing');
    const local = await repoWith('growing', 1.5 * MiB);
    await git(['push', '-q', url, 'HEAD:refs/heads/main'], local);
    const kept = (await git(['ls-remote', '--heads', url])).stdout;
    fs.writeFileSync(path.join(local, 'more.bin'), randomBytes(1.8 * MiB));
    await git(['add', '.'], local);
    await git(['commit', '-q', '-m', 'more'], local);
    const err = await git(['push', url, 'HEAD:refs/heads/main'], local).then(
      () => '',
      (e: { stderr: string }) => e.stderr,
    );
    expect(err).toMatch(/push rejected: the repository would be 3 MiB; the limit is 3 MiB/);
    expect((await git(['ls-remote', '--heads', url])).stdout).toBe(kept);
  });

  it('caps repos per user and validates names', async () => {
    await remote('third');
    const res = await call(client, 'create_repo', { name: 'fourth' });
    expect(text(res)).toBe('repo limit reached: you own 3 repos (the limit is 3)');
    expect((await call(client, 'create_repo', { name: 'third' })).isError).toBeFalsy(); // existing still fine
    expect(text(await call(client, 'create_repo', { name: '../etc' }))).toMatch(/name/);
  });

  it('answers non-git paths and the dumb protocol without touching disk', async () => {
    const base = srv.url.replace(/\/mcp$/, '/git');
    expect((await fetch(`${base}/limits/big-push.git/objects/info/packs`)).status).toBe(404);
    expect((await fetch(`${base}/limits/big-push.git/info/refs`)).status).toBe(403);
    expect((await fetch(`${base}/../../etc/passwd`)).status).toBe(404);
  });
});
