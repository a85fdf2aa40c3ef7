import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitHubApiError, GitHubApp } from '../../core/github/app.ts';
import { agentGit } from '../support/git.ts';
import { GitHubFake } from '../support/github-fake.ts';
import { scratchDir } from '../support/scratch.ts';

/**
 * Installation tokens, minted by our App (through @octokit/app) against the local GitHub fake,
 * and used by the real git client: narrowed to one repository and one permission, ≤ 1 h.
 */
describe('GitHub installation tokens', () => {
  const work = scratchDir('github-tokens');
  const git = agentGit(work.dir);
  const org = `acme-${Date.now().toString(36)}`;
  let fake: GitHubFake;
  let app: GitHubApp;
  let installationId: number;
  let otherInstallationId: number;

  /** git with the token as Basic credentials through git's environment (as the build does). */
  const withToken = (token: string) => {
    const basic = Buffer.from(`x-access-token:${token}`).toString('base64');
    return ['-c', `http.extraHeader=Authorization: Basic ${basic}`];
  };

  beforeAll(async () => {
    fake = await GitHubFake.start(path.join(work.dir, 'fake'));
    app = new GitHubApp(
      { appId: fake.appId, privateKeyFile: fake.privateKeyFile, apiUrl: fake.apiUrl, gitUrl: fake.gitUrl },
      fs.readFileSync(fake.privateKeyFile, 'utf8'),
    );
    installationId = (await fake.install(org, 'Organization')).id;
    otherInstallationId = (await fake.install('someone-else', 'User')).id;
    // Two repos with a commit each, and one in the other installation.
    for (const [owner, name] of [
      [org, 'repo-a'],
      [org, 'repo-b'],
      ['someone-else', 'private'],
    ] as const) {
      await fake.createRepo(owner, name);
      const src = path.join(work.dir, `${owner}-${name}`);
      fs.mkdirSync(src);
      fs.writeFileSync(path.join(src, 'README'), `${owner}/${name}\n`);
      await git(['init', '-q', '-b', 'main'], src);
      await git(['add', '.'], src);
      await git(['commit', '-q', '-m', `first of ${name}`], src);
      await git(
        ['push', '-q', path.join(work.dir, 'fake', 'repos', owner, `${name}.git`), 'HEAD:refs/heads/main'],
        src,
      );
    }
  });

  afterAll(async () => {
    await fake?.stop();
    work.cleanup();
  });

  it('finds installations by account and by repository', async () => {
    expect(await app.installationOn(org)).toEqual({
      id: installationId,
      accountLogin: org,
      accountType: 'Organization',
    });
    expect((await app.installationOfRepo(org, 'repo-a'))?.id).toBe(installationId);
    expect((await app.installationOfRepo('someone-else', 'private'))?.id).toBe(otherInstallationId);
    expect(await app.installationOn('nobody-here')).toBeNull();
    expect(await app.installationOfRepo(org, 'missing')).toBeNull();
  });

  it('a token for repo A clones A and cannot clone B; it expires within the hour', async () => {
    const t = await app.mintToken(installationId, { repo: 'repo-a', permissions: { contents: 'read' } });
    expect(t.expiresAt.getTime()).toBeLessThanOrEqual(Date.now() + 3_600_000);
    expect(t.expiresAt.getTime()).toBeGreaterThan(Date.now() + 3_000_000);
    await git([
      ...withToken(t.token),
      'clone',
      '-q',
      `${fake.gitUrl}/${org}/repo-a.git`,
      path.join(work.dir, 'a'),
    ]);
    expect(fs.readFileSync(path.join(work.dir, 'a', 'README'), 'utf8')).toBe(`${org}/repo-a\n`);
    await expect(
      git([
        ...withToken(t.token),
        'clone',
        '-q',
        `${fake.gitUrl}/${org}/repo-b.git`,
        path.join(work.dir, 'b'),
      ]),
    ).rejects.toThrow(/Authentication failed|401|could not read/);
    expect(fs.existsSync(path.join(work.dir, 'b', 'README'))).toBe(false);
    // Nor another installation's repo.
    await expect(
      git([
        ...withToken(t.token),
        'clone',
        '-q',
        `${fake.gitUrl}/someone-else/private.git`,
        path.join(work.dir, 'c'),
      ]),
    ).rejects.toThrow(/Authentication failed|401|could not read/);
  });

  it('a read token cannot push, and cannot create repositories', async () => {
    const t = await app.mintToken(installationId, { repo: 'repo-a', permissions: { contents: 'read' } });
    const dir = path.join(work.dir, 'a');
    fs.writeFileSync(path.join(dir, 'more'), 'x');
    await git(['add', '.'], dir);
    await git(['commit', '-q', '-m', 'more'], dir);
    await expect(
      git(
        [...withToken(t.token), 'push', '-q', `${fake.gitUrl}/${org}/repo-a.git`, 'HEAD:refs/heads/main'],
        dir,
      ),
    ).rejects.toThrow(/Authentication failed|401|could not read/);
    await expect(
      app.client(t.token).request('POST /orgs/{org}/repos', { org, name: 'sneaky' }),
    ).rejects.toMatchObject({
      status: 403,
    });
    // A write token for that one repo pushes.
    const w = await app.mintToken(installationId, { repo: 'repo-a', permissions: { contents: 'write' } });
    await git(
      [...withToken(w.token), 'push', '-q', `${fake.gitUrl}/${org}/repo-a.git`, 'HEAD:refs/heads/main'],
      dir,
    );
  });

  it('refuses to narrow to a repo outside the installation', async () => {
    const err = await app
      .mintToken(installationId, { repo: 'private', permissions: { contents: 'read' } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitHubApiError);
    expect((err as GitHubApiError).status).toBe(422);
    // The error carries GitHub's message, never a credential.
    expect(String((err as Error).message)).not.toMatch(/ghs_|bearer|eyJ/i);
  });

  it('refuses a permission the installation was not granted', async () => {
    const limited = await fake.install(`ro-${Date.now().toString(36)}`, 'Organization', {
      permissions: { contents: 'read', metadata: 'read' },
    });
    await expect(app.mintToken(limited.id, { permissions: { contents: 'write' } })).rejects.toMatchObject({
      status: 422,
    });
  });

  it('a token whose JWT was signed by another key is refused', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs1',
      format: 'pem',
    });
    const impostor = new GitHubApp(app.settings, String(other));
    await expect(
      impostor.mintToken(installationId, { repo: 'repo-a', permissions: { contents: 'read' } }),
    ).rejects.toMatchObject({ status: 401 });
  });
});
