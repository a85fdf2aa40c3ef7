import fs from 'node:fs';
import https from 'node:https';
import { parse as parseYaml } from 'yaml';

/** Where and how to reach one cluster's API, read from a kubeconfig. */
export type ClusterAccess = {
  server: string;
  ca?: Buffer | undefined;
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
  token?: string | undefined;
  /** A file holding the token, read at each request (a projected ServiceAccount token rotates). */
  tokenFile?: string | undefined;
};

type Kubeconfig = {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  clusters?: {
    name: string;
    cluster: { server: string; 'certificate-authority-data'?: string; 'certificate-authority'?: string };
  }[];
  users?: {
    name: string;
    user: {
      'client-certificate-data'?: string;
      'client-key-data'?: string;
      token?: string;
      tokenFile?: string;
    };
  }[];
};

/**
 * The API access of `context` (default: the current one) in a kubeconfig (YAML or JSON).
 * Embedded credentials (`*-data`, `token`), or the files of a pod's ServiceAccount
 * (`certificate-authority`, `tokenFile`: platform/cluster/deployer.ts).
 */
export function clusterAccess(kubeconfig: string, context?: string): ClusterAccess {
  const config = parseYaml(kubeconfig) as Kubeconfig;
  const name = context ?? config['current-context'];
  const ctx = config.contexts?.find((c) => c.name === name)?.context;
  if (!ctx) throw new Error(`the kubeconfig has no context "${name ?? ''}"`);
  const cluster = config.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  const user = config.users?.find((u) => u.name === ctx.user)?.user;
  if (!cluster) throw new Error(`the kubeconfig has no cluster "${ctx.cluster}"`);
  const b64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64') : undefined);
  return {
    server: cluster.server.replace(/\/+$/, ''),
    ca:
      b64(cluster['certificate-authority-data']) ??
      (cluster['certificate-authority'] ? fs.readFileSync(cluster['certificate-authority']) : undefined),
    cert: b64(user?.['client-certificate-data']),
    key: b64(user?.['client-key-data']),
    token: user?.token,
    tokenFile: user?.tokenFile,
  };
}

export class KubeError extends Error {
  override name = 'KubeError';
  readonly status: number;

  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }
}

/** A small Kubernetes API client: GET JSON and text (pod logs), with bounded time. */
export class KubeClient {
  private readonly access: ClusterAccess;

  constructor(access: ClusterAccess) {
    this.access = access;
  }

  /** GET `path` as JSON; undefined when it does not exist (404). */
  async get<T>(path: string): Promise<T | undefined> {
    const res = await this.request(path);
    if (res.status === 404) return undefined;
    if (res.status !== 200)
      throw new KubeError(`GET ${path}: HTTP ${res.status} ${res.body.slice(0, 300)}`, res.status);
    return JSON.parse(res.body) as T;
  }

  /** GET `path` as text (e.g. a pod's log); empty when it does not exist. */
  async text(path: string): Promise<string> {
    const res = await this.request(path);
    if (res.status === 404 || res.status === 400) return ''; // no such pod, or no log yet
    if (res.status !== 200)
      throw new KubeError(`GET ${path}: HTTP ${res.status} ${res.body.slice(0, 300)}`, res.status);
    return res.body;
  }

  /** POST a JSON object to `path` (e.g. a SelfSubjectAccessReview); the answer's JSON. */
  async post<T>(path: string, body: unknown): Promise<T> {
    const res = await this.request(path, { method: 'POST', body: JSON.stringify(body) });
    if (res.status !== 200 && res.status !== 201)
      throw new KubeError(`POST ${path}: HTTP ${res.status} ${res.body.slice(0, 300)}`, res.status);
    return JSON.parse(res.body) as T;
  }

  /** A JSON merge patch of the object at `path`; the patched object's JSON (its status too). */
  async mergePatch<T>(path: string, patch: unknown): Promise<T> {
    const res = await this.request(path, {
      method: 'PATCH',
      body: JSON.stringify(patch),
      contentType: 'application/merge-patch+json',
    });
    if (res.status !== 200)
      throw new KubeError(`PATCH ${path}: HTTP ${res.status} ${res.body.slice(0, 300)}`, res.status);
    return JSON.parse(res.body) as T;
  }

  private request(
    path: string,
    init?: { method: string; body: string; contentType?: string },
  ): Promise<HttpsAnswer> {
    const { tokenFile, ...access } = this.access;
    const token = tokenFile ? fs.readFileSync(tokenFile, 'utf8').trim() : access.token;
    return httpsRequest(`${this.access.server}${path}`, { ...access, token }, init);
  }
}

export type HttpsAnswer = { status: number; body: string };

/**
 * One HTTPS request to a cluster's API (or one of its components) with the given credentials;
 * rejects on network errors and after `timeoutMs` (default 10 s).
 */
export function httpsRequest(
  url: string,
  auth: Omit<ClusterAccess, 'server'>,
  init: { method?: string; body?: string; contentType?: string; timeoutMs?: number } = {},
): Promise<HttpsAnswer> {
  const method = init.method ?? 'GET';
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method,
        ...(auth.ca ? { ca: auth.ca } : {}),
        ...(auth.cert ? { cert: auth.cert } : {}),
        ...(auth.key ? { key: auth.key } : {}),
        timeout: init.timeoutMs ?? 10_000,
        headers: {
          accept: 'application/json',
          ...(auth.token ? { authorization: `Bearer ${auth.token}` } : {}),
          ...(init.body !== undefined ? { 'content-type': init.contentType ?? 'application/json' } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.once('timeout', () => req.destroy(new Error(`timed out: ${method} ${url}`)));
    req.once('error', reject);
    req.end(init.body);
  });
}
