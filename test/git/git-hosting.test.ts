import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  issueGitToken,
  MAX_LIVE_TOKENS_PER_REPO,
  pruneExpiredGitTokens,
  revokeGitToken,
} from '../../git/tokens.ts';
import { agentGit } from '../support/git.ts';
import { call, connectClient, type McpTestServer, startMcpTestServer, text } from '../support/mcp.ts';
import { scratchDir } from '../support/scratch.ts';

type Remote = { git_remote: string; clone_url: string; expires_at: string; owner: string; created: boolean };

describe('internal git hosting with the real git client', () => {
  const work = scratchDir('git-e2e');
  let srv: McpTestServer;
  let alice: Client;
  let bob: Client;
  let aliceId: string;
  const git = agentGit(work.dir);
  /** Runs git expecting failure; returns its stderr. */
  async function gitFails(args: string[], cwd = work.dir): Promise<string> {
    try {
      await git(args, cwd);
    } catch (err) {
      return (err as { stderr: string }).stderr;
    }
    throw new Error(`git ${args.join(' ')} succeeded but should have failed`);
  }

  let n = 0;
  /** A new local repo with a text file and a binary file, committed on main. */
  async function localRepo(content = 'hello') {
    const dir = path.join(work.dir, `local-${++n}`);
    fs.mkdirSync(dir);
    await git(['init', '-q', '-b', 'main'], dir);
    fs.writeFileSync(path.join(dir, 'README.md'), `${content}\n`);
    fs.mkdirSync(path.join(dir, 'assets'));
    fs.writeFileSync(path.join(dir, 'assets', 'blob.bin'), randomBytes(256 * 1024));
    await git(['add', '.'], dir);
    await git(['commit', '-q', '-m', content], dir);
    return dir;
  }
  async function head(dir: string) {
    return (await git(['rev-parse', 'HEAD'], dir)).stdout.trim();
  }
  async function createRepo(client: Client, name: string): Promise<Remote> {
    const res = await call(client, 'create_repo', { name });
    if (res.isError) throw new Error(text(res));
    return res.structuredContent as Remote;
  }

  beforeAll(async () => {
    srv = await startMcpTestServer();
    const a = await srv.newUser('alice.smith@example.com');
    aliceId = a.userId;
    alice = await connectClient(srv.url, a.key);
    bob = await connectClient(srv.url, (await srv.newUser('bob@example.com')).key);
  });
  afterAll(async () => {
    await Promise.all([alice?.close(), bob?.close()]);
    await srv.close();
    work.cleanup();
  });

  it('create → push → clone back byte-identical, with a readable owner and an expiring token', async () => {
    const remote = await createRepo(alice, 'shop');
    expect(remote.owner).toBe('alice-smith');
    expect(remote.clone_url).toBe(`${srv.origin}/git/alice-smith/shop.git`);
    expect(remote.git_remote).toMatch(
      /^http:\/\/alice-smith:mlg_[A-Za-z0-9_-]{32}@127\.0\.0\.1:\d+\/git\/alice-smith\/shop\.git$/,
    );
    expect(new Date(remote.expires_at).getTime() - Date.now()).toBeGreaterThan(3500_000);

    const local = await localRepo('v1');
    await git(['push', '-q', remote.git_remote, 'HEAD:refs/heads/main'], local);
    const clone = path.join(work.dir, 'clone-shop');
    await git(['clone', '-q', remote.git_remote, clone]);
    expect(await head(clone)).toBe(await head(local));
    for (const f of ['README.md', 'assets/blob.bin']) {
      expect(fs.readFileSync(path.join(clone, f)).equals(fs.readFileSync(path.join(local, f))), f).toBe(true);
    }
    await git(['fsck', '--strict'], clone);
  });

  it('create_repo is idempotent: same repo, fresh token', async () => {
    const first = await createRepo(alice, 'shop');
    const second = await createRepo(alice, 'shop');
    expect(second.created).toBe(false);
    expect(second.clone_url).toBe(first.clone_url);
    expect(second.git_remote).not.toBe(first.git_remote);
    const clone = path.join(work.dir, 'clone-again');
    await git(['clone', '-q', second.git_remote, clone]); // the repo kept its content
    expect(fs.existsSync(path.join(clone, 'README.md'))).toBe(true);
  });

  it('scopes tokens to one repo and one user: other repos and users fail as auth errors', async () => {
    const shop = await createRepo(alice, 'shop');
    const blog = await createRepo(alice, 'blog');
    const bobs = await createRepo(bob, 'shop');
    const shopToken = new URL(shop.git_remote).password;
    // Alice's shop token on her blog, and on Bob's shop (same repo name, other owner).
    for (const target of [blog.clone_url, bobs.clone_url]) {
      const url = new URL(target);
      url.username = 'x';
      url.password = shopToken;
      expect(await gitFails(['ls-remote', url.href])).toMatch(/Authentication failed/);
    }
    // Bob's token cannot read Alice's repo even with Alice's owner name as user.
    const stolen = new URL(shop.clone_url);
    stolen.username = 'alice-smith';
    stolen.password = new URL(bobs.git_remote).password;
    expect(await gitFails(['ls-remote', stolen.href])).toMatch(/Authentication failed/);
    // No credentials at all.
    expect(await gitFails(['ls-remote', shop.clone_url])).toMatch(
      /could not read Username|Authentication failed/,
    );
    // Bob's tools cannot reach Alice's repo either.
    expect(text(await call(bob, 'get_git_token', { name: 'blog' }))).toMatch(/not found/);
  });

  it('refuses a push with a bad, pull-only, expired or revoked token, changing nothing', async () => {
    const remote = await createRepo(alice, 'guarded');
    const local = await localRepo('guarded');
    await git(['push', '-q', remote.git_remote, 'HEAD:refs/heads/main'], local);
    const before = (await git(['ls-remote', remote.git_remote])).stdout;

    fs.writeFileSync(path.join(local, 'README.md'), 'changed\n');
    await git(['commit', '-q', '-am', 'change'], local);
    const repo = await srv.db.prisma.repo.findFirstOrThrow({ where: { userId: aliceId, name: 'guarded' } });
    const withToken = (token: string) => {
      const url = new URL(remote.clone_url);
      url.username = 'alice-smith';
      url.password = token;
      return url.href;
    };
    const pullOnly = await issueGitToken(srv.db.prisma, {
      repoId: repo.id,
      userId: aliceId,
      scope: 'pull',
      ttlSeconds: 600,
    });
    const expired = await issueGitToken(srv.db.prisma, {
      repoId: repo.id,
      userId: aliceId,
      scope: 'pull,push',
      ttlSeconds: 60,
      now: new Date(Date.now() - 120_000),
    });
    const revoked = new URL((await createRepo(alice, 'guarded')).git_remote).password;
    expect(await revokeGitToken(srv.db.prisma, revoked.slice(0, 14))).toBe(true);

    for (const token of [`mlg_${'A'.repeat(32)}`, pullOnly.token, expired.token, revoked]) {
      expect(await gitFails(['push', withToken(token), 'HEAD:refs/heads/main'], local)).toMatch(
        /Authentication failed/,
      );
    }
    await git(['ls-remote', withToken(pullOnly.token)]); // the pull-only token can still read
    expect((await git(['ls-remote', remote.git_remote])).stdout).toBe(before);
    expect(await srv.db.prisma.repoPush.count({ where: { repoId: repo.id } })).toBe(1);
  });

  it('records pushes and requests one deploy per service, branch and commit', async () => {
    const remote = await createRepo(alice, 'app');
    const repo = await srv.db.prisma.repo.findFirstOrThrow({ where: { userId: aliceId, name: 'app' } });
    const project = await srv.db.prisma.project.findFirstOrThrow({ where: { userId: aliceId } });
    const service = await srv.db.prisma.service.create({
      data: {
        userId: aliceId,
        projectId: project.id,
        name: 'app',
        liveKey: `${project.id}/app`,
        stackName: 'alice-app',
        repoUrl: 'app',
        repoId: repo.id,
        branch: 'main',
      },
    });
    const local = await localRepo('one');
    const first = await head(local);
    await git(['push', '-q', remote.git_remote, 'HEAD:refs/heads/main'], local);
    fs.writeFileSync(path.join(local, 'README.md'), 'two\n');
    await git(['commit', '-q', '-am', 'two'], local);
    const second = await head(local);
    await git(['push', '-q', remote.git_remote, 'HEAD:refs/heads/main'], local);
    // The first commit again (a force push back), then a push to a branch no service uses.
    await git(['push', '-q', '-f', remote.git_remote, `${first}:refs/heads/main`], local);
    await git(['push', '-q', remote.git_remote, 'HEAD:refs/heads/feature'], local);

    const requests = await srv.db.prisma.deployRequest.findMany({
      where: { serviceId: service.id },
      orderBy: { createdAt: 'asc' },
    });
    expect(requests.map((r) => [r.branch, r.commitSha, r.status])).toEqual([
      ['main', first, 'pending'],
      ['main', second, 'pending'],
    ]);
    const pushes = await srv.db.prisma.repoPush.findMany({
      where: { repoId: repo.id },
      orderBy: { pushedAt: 'asc' },
    });
    expect(pushes.map((p) => [p.ref, p.newSha])).toEqual([
      ['refs/heads/main', first],
      ['refs/heads/main', second],
      ['refs/heads/main', first],
      ['refs/heads/feature', second],
    ]);
    expect(
      (await srv.db.prisma.repo.findUniqueOrThrow({ where: { id: repo.id } })).sizeBytes,
    ).toBeGreaterThan(256n * 1024n);
  });

  it('keeps live tokens per repo bounded, and prunes long-expired ones', async () => {
    const first = await createRepo(alice, 'chatty');
    for (let i = 0; i < MAX_LIVE_TOKENS_PER_REPO; i++) await call(alice, 'get_git_token', { name: 'chatty' });
    const repo = await srv.db.prisma.repo.findFirstOrThrow({ where: { userId: aliceId, name: 'chatty' } });
    const live = await srv.db.prisma.gitToken.count({ where: { repoId: repo.id, revokedAt: null } });
    expect(live).toBe(MAX_LIVE_TOKENS_PER_REPO);
    expect(await gitFails(['ls-remote', first.git_remote])).toMatch(/Authentication failed/); // the oldest went
    await issueGitToken(srv.db.prisma, {
      repoId: repo.id,
      userId: aliceId,
      scope: 'pull',
      ttlSeconds: 60,
      now: new Date(Date.now() - 2 * 86_400_000),
    });
    expect(await pruneExpiredGitTokens(srv.db.prisma)).toBe(1);
  });

  it('takes concurrent pushes to one repo safely', async () => {
    const remote = await createRepo(alice, 'busy');
    const locals = await Promise.all([1, 2, 3, 4].map((i) => localRepo(`writer ${i}`)));
    await Promise.all(
      locals.map((dir, i) => git(['push', '-q', remote.git_remote, `HEAD:refs/heads/b${i}`], dir)),
    );
    const refs = (await git(['ls-remote', '--heads', remote.git_remote])).stdout;
    for (const [i, dir] of locals.entries()) expect(refs).toContain(`${await head(dir)}\trefs/heads/b${i}`);
    const clone = path.join(work.dir, 'clone-busy');
    await git(['clone', '-q', '--mirror', remote.git_remote, clone]);
    await git(['fsck', '--strict'], clone);
  });
});
