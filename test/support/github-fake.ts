import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject, randomBytes, randomUUID, verify } from 'node:crypto';
import fs from 'node:fs';
import type { Server } from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { sign } from '@octokit/webhooks-methods';
import express, { type Request, type Response } from 'express';
import { runHttpBackend } from '../../git/http-backend.ts';

const exec = promisify(execFile);

type Permissions = Record<string, 'read' | 'write'>;
export type FakeInstallation = {
  id: number;
  account: { login: string; id: number; type: 'User' | 'Organization' };
  /** all: every repo of the account; selected: the names in `repos`. */
  selection: 'all' | 'selected';
  repos: Set<string>;
  permissions: Permissions;
};
type FakeToken = {
  installationId: number;
  repos: string[] | null;
  permissions: Permissions;
  expiresAt: number;
};
export type Delivery = { id: string; event: string; body: Buffer; headers: Record<string, string> };

const LEVEL = { read: 1, write: 2 } as const;
const ALL_PERMISSIONS: Permissions = { contents: 'write', administration: 'write', metadata: 'read' };

/**
 * A local stand-in for GitHub that speaks the REST endpoints `@octokit/app` and our code use
 * (the App's RS256 JWT, installations, access_tokens narrowed by repositories and permissions,
 * commits, org repo creation) and serves git over smart HTTP from real bare repositories,
 * where an installation token opens only the repositories it was minted for. A push sends a
 * signed `push` webhook, as GitHub does. Every token it mints is listed in `minted`.
 */
export class GitHubFake {
  readonly appId = 100_000 + Math.floor(Math.random() * 800_000);
  readonly privateKeyFile: string;
  readonly minted: string[] = [];
  readonly deliveries: Delivery[] = [];
  /** Where webhooks go (set before pushes); GitHub signs them with `secret`. */
  webhook: { url: string; secret: string } | undefined;
  private readonly publicKey: KeyObject;
  private readonly installations = new Map<number, FakeInstallation>();
  private readonly tokens = new Map<string, FakeToken>();
  private nextId = 1000 + Math.floor(Math.random() * 1000);
  private server: Server | undefined;
  private base = '';

  private readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.publicKey = publicKey;
    this.privateKeyFile = path.join(dir, 'app.pem');
    fs.writeFileSync(this.privateKeyFile, privateKey.export({ type: 'pkcs1', format: 'pem' }), {
      mode: 0o600,
    });
    fs.mkdirSync(this.reposRoot, { recursive: true });
  }

  static async start(dir: string): Promise<GitHubFake> {
    fs.mkdirSync(dir, { recursive: true });
    const fake = new GitHubFake(dir);
    const app = fake.routes();
    await new Promise<void>((resolve) => {
      fake.server = app.listen(0, '127.0.0.1', () => resolve());
    });
    const address = fake.server?.address();
    if (!address || typeof address === 'string') throw new Error('the GitHub fake did not listen');
    fake.base = `http://127.0.0.1:${address.port}`;
    return fake;
  }

  /** REST API base URL (as on GitHub Enterprise Server: <host>/api/v3). */
  get apiUrl() {
    return `${this.base}/api/v3`;
  }

  /** git over HTTPS base URL: <gitUrl>/<owner>/<name>.git. */
  get gitUrl() {
    return this.base;
  }

  private get reposRoot() {
    return path.join(this.dir, 'repos');
  }

  async stop() {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Installs the App on `login`; with a webhook set, GitHub sends `installation` created. */
  async install(
    login: string,
    type: 'User' | 'Organization',
    o: { repos?: string[]; permissions?: Permissions } = {},
  ): Promise<FakeInstallation> {
    const inst: FakeInstallation = {
      id: this.nextId++,
      account: { login, id: this.nextId++, type },
      selection: o.repos ? 'selected' : 'all',
      repos: new Set((o.repos ?? []).map((r) => r.toLowerCase())),
      permissions: o.permissions ?? ALL_PERMISSIONS,
    };
    this.installations.set(inst.id, inst);
    if (this.webhook)
      await this.deliver('installation', {
        action: 'created',
        installation: { id: inst.id, account: inst.account, repository_selection: inst.selection },
      });
    return inst;
  }

  /** A repository made directly (as a person would on github.com). */
  async createRepo(owner: string, name: string) {
    const dir = this.repoDir(owner, name);
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    await exec('git', ['init', '-q', '--bare', '-b', 'main', dir]);
  }

  /** Signs and sends one webhook delivery; returns the HTTP status it got. */
  async deliver(event: string, payload: unknown): Promise<number> {
    if (!this.webhook) throw new Error('no webhook URL set');
    const body = Buffer.from(JSON.stringify(payload));
    const delivery: Delivery = {
      id: randomUUID(),
      event,
      body,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'GitHub-Hookshot/fake',
        'x-github-event': event,
        'x-hub-signature-256': await sign(this.webhook.secret, body.toString('utf8')),
      },
    };
    delivery.headers['x-github-delivery'] = delivery.id;
    this.deliveries.push(delivery);
    return this.redeliver(delivery);
  }

  /** Sends a recorded delivery again, byte for byte (GitHub's "Redeliver"). */
  async redeliver(d: Delivery, headers: Record<string, string> = {}): Promise<number> {
    if (!this.webhook) throw new Error('no webhook URL set');
    const res = await fetch(this.webhook.url, {
      method: 'POST',
      headers: { ...d.headers, ...headers },
      body: d.body,
      signal: AbortSignal.timeout(20_000),
    });
    await res.arrayBuffer();
    return res.status;
  }

  private repoDir(owner: string, name: string) {
    return path.join(this.reposRoot, owner.toLowerCase(), `${name.toLowerCase()}.git`);
  }

  private repoExists(owner: string, name: string) {
    return fs.existsSync(this.repoDir(owner, name));
  }

  /** The installation whose access covers owner/name (the repo must exist). */
  private installationOfRepo(owner: string, name: string): FakeInstallation | undefined {
    if (!this.repoExists(owner, name)) return undefined;
    return [...this.installations.values()].find(
      (i) =>
        i.account.login.toLowerCase() === owner.toLowerCase() &&
        (i.selection === 'all' || i.repos.has(name.toLowerCase())),
    );
  }

  /** The App's JWT: RS256 with our public key, iss = app id, not expired. */
  private appAuthorized(req: Request): boolean {
    const m = /^bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/i.exec(req.get('authorization') ?? '');
    if (!m) return false;
    const [, h = '', p = '', s = ''] = m;
    if (!verify('RSA-SHA256', Buffer.from(`${h}.${p}`), this.publicKey, Buffer.from(s, 'base64url')))
      return false;
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as { iss?: unknown; exp?: number };
    return String(claims.iss) === String(this.appId) && (claims.exp ?? 0) * 1000 > Date.now();
  }

  private tokenFrom(value: string | undefined): FakeToken | undefined {
    const t = value ? this.tokens.get(value) : undefined;
    return t && t.expiresAt > Date.now() ? t : undefined;
  }

  /** True when `t` may `need` the contents (or administration) of owner/name. */
  private allows(t: FakeToken, owner: string, name: string, permission: string, need: 'read' | 'write') {
    const inst = this.installationOfRepo(owner, name);
    if (!inst || inst.id !== t.installationId) return false;
    if (t.repos && !t.repos.includes(name.toLowerCase())) return false;
    const level = t.permissions[permission];
    return level !== undefined && LEVEL[level] >= LEVEL[need];
  }

  private routes() {
    const app = express();
    const api = express.Router();
    api.use(express.json());
    const needApp = (req: Request, res: Response) => {
      if (this.appAuthorized(req)) return true;
      res.status(401).json({ message: 'A JSON web token could not be decoded' });
      return false;
    };
    const installationJson = (i: FakeInstallation) => ({
      id: i.id,
      account: i.account,
      app_id: this.appId,
      repository_selection: i.selection,
      permissions: i.permissions,
    });
    const notFound = (res: Response) => res.status(404).json({ message: 'Not Found' });

    api.get('/app/installations/:id', (req, res) => {
      if (!needApp(req, res)) return;
      const i = this.installations.get(Number(req.params.id));
      return i ? res.json(installationJson(i)) : notFound(res);
    });
    for (const [kind, type] of [
      ['users', 'User'],
      ['orgs', 'Organization'],
    ] as const)
      api.get(`/${kind}/:login/installation`, (req, res) => {
        if (!needApp(req, res)) return;
        const i = [...this.installations.values()].find(
          (x) => x.account.type === type && x.account.login.toLowerCase() === req.params.login?.toLowerCase(),
        );
        return i ? res.json(installationJson(i)) : notFound(res);
      });
    api.get('/repos/:owner/:repo/installation', (req, res) => {
      if (!needApp(req, res)) return;
      const i = this.installationOfRepo(req.params.owner ?? '', req.params.repo ?? '');
      return i ? res.json(installationJson(i)) : notFound(res);
    });
    api.post('/app/installations/:id/access_tokens', (req, res) => {
      if (!needApp(req, res)) return;
      const inst = this.installations.get(Number(req.params.id));
      if (!inst) return notFound(res);
      const body = (req.body ?? {}) as { repositories?: string[]; permissions?: Permissions };
      const repos = body.repositories?.map((r) => r.toLowerCase()) ?? null;
      if (repos?.some((r) => this.installationOfRepo(inst.account.login, r)?.id !== inst.id))
        return res.status(422).json({
          message:
            'There is at least one repository that does not exist or is not accessible to the parent installation.',
        });
      const permissions = body.permissions ?? inst.permissions;
      for (const [k, v] of Object.entries(permissions)) {
        const granted = inst.permissions[k];
        if (!granted || LEVEL[v] > LEVEL[granted])
          return res
            .status(422)
            .json({ message: 'The permissions requested are not granted to this installation.' });
      }
      const token = `ghs_${randomBytes(27).toString('base64url').replace(/[-_]/g, 'x').slice(0, 36)}`;
      const expiresAt = Date.now() + 3_600_000;
      this.tokens.set(token, { installationId: inst.id, repos, permissions, expiresAt });
      this.minted.push(token);
      return res.status(201).json({
        token,
        expires_at: new Date(expiresAt).toISOString().replace(/\.\d+Z$/, 'Z'),
        permissions,
        repository_selection: repos ? 'selected' : inst.selection,
        ...(repos ? { repositories: repos.map((name) => ({ name })) } : {}),
      });
    });
    const installationToken = (req: Request) =>
      this.tokenFrom(/^(?:token|bearer) (\S+)$/i.exec(req.get('authorization') ?? '')?.[1]);
    api.get('/repos/:owner/:repo/commits/:ref', async (req, res) => {
      const { owner = '', repo = '', ref = '' } = req.params;
      const t = installationToken(req);
      if (!t || !this.allows(t, owner, repo, 'contents', 'read')) return notFound(res);
      const gitDir = this.repoDir(owner, repo);
      try {
        const { stdout } = await exec('git', [
          '--git-dir',
          gitDir,
          'log',
          '-1',
          '--format=%H%n%B',
          ref,
          '--',
        ]);
        const [sha = '', ...message] = stdout.split('\n');
        return res.json({ sha, commit: { message: message.join('\n').trim() } });
      } catch {
        const { stdout } = await exec('git', ['--git-dir', gitDir, 'for-each-ref', '--count=1']);
        if (!stdout.trim()) return res.status(409).json({ message: 'Git Repository is empty.' });
        return res.status(422).json({ message: `No commit found for SHA: ${ref}` });
      }
    });
    api.post('/orgs/:org/repos', async (req, res) => {
      const org = req.params.org ?? '';
      const t = installationToken(req);
      const inst = t && this.installations.get(t.installationId);
      if (
        !t ||
        !inst ||
        inst.account.type !== 'Organization' ||
        inst.account.login.toLowerCase() !== org.toLowerCase() ||
        t.permissions.administration !== 'write'
      )
        return res.status(403).json({ message: 'Resource not accessible by integration' });
      const name = String((req.body as { name?: unknown }).name ?? '');
      if (!/^[A-Za-z0-9._-]{1,100}$/.test(name))
        return res.status(422).json({ message: 'Repository creation failed.' });
      if (this.repoExists(org, name))
        return res.status(422).json({
          message: 'Repository creation failed.',
          errors: [{ message: 'name already exists on this account' }],
        });
      await this.createRepo(org, name);
      if (inst.selection === 'selected') inst.repos.add(name.toLowerCase());
      return res.status(201).json({
        id: this.nextId++,
        name,
        full_name: `${inst.account.login}/${name}`,
        owner: { login: inst.account.login },
        private: true,
        clone_url: `${this.gitUrl}/${inst.account.login}/${name}.git`,
      });
    });
    // GitHub refuses installation tokens here: personal repos need the person's own token.
    api.post('/user/repos', (_req, res) =>
      res.status(403).json({ message: 'Resource not accessible by integration' }),
    );
    api.use((_req, res) => notFound(res));
    app.use('/api/v3', api);

    app.use((req, res, next) => {
      this.git(req, res).catch(next);
    });
    return app;
  }

  /** git smart HTTP with an installation token as the Basic password. */
  private async git(req: Request, res: Response) {
    const m =
      /^\/([A-Za-z0-9-]+)\/([A-Za-z0-9._-]+?)\.git\/(info\/refs|git-upload-pack|git-receive-pack)$/.exec(
        req.path,
      );
    if (!m) {
      res.status(404).send('Not Found');
      return;
    }
    const [, owner = '', name = '', endpoint = ''] = m;
    const service = endpoint === 'info/refs' ? String(req.query.service ?? '') : endpoint;
    const push = service === 'git-receive-pack';
    const auth = req.get('authorization') ?? '';
    const basic = auth.toLowerCase().startsWith('basic ')
      ? Buffer.from(auth.slice(6), 'base64').toString('utf8')
      : '';
    const t = this.tokenFrom(basic.slice(basic.indexOf(':') + 1));
    if (!t || !this.allows(t, owner, name, 'contents', push ? 'write' : 'read')) {
      res.set('www-authenticate', 'Basic realm="GitHub"');
      res.status(401).send('Invalid username or token.');
      return;
    }
    const gitDir = this.repoDir(owner, name);
    const before = push && endpoint === 'git-receive-pack' ? await this.refs(gitDir) : undefined;
    await runHttpBackend(req, res, {
      projectRoot: this.reposRoot,
      pathInfo: `/${owner.toLowerCase()}/${name.toLowerCase()}.git/${endpoint}`,
      remoteUser: 'x-access-token',
      env: {},
      maxBodyBytes: 200 * 1024 * 1024,
    });
    if (!before || !this.webhook) return;
    const inst = this.installationOfRepo(owner, name);
    const after = await this.refs(gitDir);
    for (const [ref, sha] of after) {
      if (before.get(ref) === sha || !ref.startsWith('refs/heads/')) continue;
      const { stdout } = await exec('git', ['--git-dir', gitDir, 'log', '-1', '--format=%B', sha]);
      void this.deliver('push', {
        ref,
        before: before.get(ref) ?? '0'.repeat(40),
        after: sha,
        deleted: false,
        repository: { name, full_name: `${owner}/${name}`, owner: { login: owner, name: owner } },
        installation: inst ? { id: inst.id } : undefined,
        head_commit: { id: sha, message: stdout.trim() },
      }).catch(() => undefined);
    }
  }

  private async refs(gitDir: string): Promise<Map<string, string>> {
    const { stdout } = await exec('git', [
      '--git-dir',
      gitDir,
      'for-each-ref',
      '--format=%(refname) %(objectname)',
    ]);
    return new Map(
      stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' ') as [string, string]),
    );
  }
}
