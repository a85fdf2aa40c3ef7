import https from 'node:https';
import { parse as parseYaml } from 'yaml';

/** Where and how to reach one cluster's API, read from a kubeconfig. */
export type ClusterAccess = {
  server: string;
  ca?: Buffer | undefined;
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
  token?: string | undefined;
};

type Kubeconfig = {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  clusters?: { name: string; cluster: { server: string; 'certificate-authority-data'?: string } }[];
  users?: {
    name: string;
    user: { 'client-certificate-data'?: string; 'client-key-data'?: string; token?: string };
  }[];
};

/**
 * The API access of `context` (default: the current one) in a kubeconfig (YAML or JSON).
 * Embedded credentials only (`*-data`, `token`): the deployer gets its kubeconfig as content.
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
    ca: b64(cluster['certificate-authority-data']),
    cert: b64(user?.['client-certificate-data']),
    key: b64(user?.['client-key-data']),
    token: user?.token,
  };
}

export class KubeError extends Error {
  override name = 'KubeError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** A small Kubernetes API client: GET JSON and text (pod logs), with bounded time. */
export class KubeClient {
  constructor(private readonly access: ClusterAccess) {}

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

  private request(path: string): Promise<HttpsAnswer> {
    return httpsRequest(`${this.access.server}${path}`, this.access);
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
