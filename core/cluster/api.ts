import fs from 'node:fs';
import { type HttpsAnswer, httpsRequest as kubeHttps } from '../kubernetes/client.ts';

/** A client certificate and the CA that signed the server's, as files. */
export type TlsFiles = { ca: string; cert: string; key: string };

/** One HTTPS request with a client certificate (as files); rejects on network errors and timeouts. */
export function httpsRequest(
  url: string,
  tls: TlsFiles,
  init: { method?: string; body?: string; contentType?: string; timeoutMs?: number } = {},
): Promise<HttpsAnswer> {
  const read = (f: string) => fs.readFileSync(f);
  return kubeHttps(url, { ca: read(tls.ca), cert: read(tls.cert), key: read(tls.key) }, init);
}

/** True when GET `url` answers 2xx; false on any error (a readiness probe). */
export async function httpsOk(url: string, tls: TlsFiles, timeoutMs = 2000): Promise<boolean> {
  try {
    const res = await httpsRequest(url, tls, { timeoutMs });
    return res.status >= 200 && res.status < 300;
  } catch {
    return false;
  }
}

/** A Kubernetes object as the API takes it (JSON). */
export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
};

export class KubeApiError extends Error {
  override name = 'KubeApiError';
  readonly status: number;

  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }
}

/** The few calls the cluster's own set-up and tear-down make to the API server, as admin. */
export class KubeApi {
  readonly server: string;
  private readonly tls: TlsFiles;

  constructor(server: string, tls: TlsFiles) {
    this.server = server;
    this.tls = tls;
  }

  async get<T = unknown>(apiPath: string): Promise<T | undefined> {
    const res = await httpsRequest(this.server + apiPath, this.tls);
    if (res.status === 404) return undefined;
    return this.json<T>('GET', apiPath, res);
  }

  /** Server-side apply: creates or updates `obj` (idempotent). */
  async apply(obj: KubeObject): Promise<unknown> {
    const apiPath = `${objectPath(obj)}?fieldManager=deploy-mcp&force=true`;
    const res = await httpsRequest(this.server + apiPath, this.tls, {
      method: 'PATCH',
      body: JSON.stringify(obj),
      contentType: 'application/apply-patch+yaml',
    });
    return this.json('PATCH', apiPath, res);
  }

  /** DELETE; a missing object is no error. */
  async delete(apiPath: string): Promise<void> {
    const res = await httpsRequest(this.server + apiPath, this.tls, { method: 'DELETE' });
    if (res.status !== 404) this.json('DELETE', apiPath, res);
  }

  private json<T>(method: string, apiPath: string, res: HttpsAnswer): T {
    if (res.status < 200 || res.status >= 300) {
      let message = res.body.slice(0, 500);
      try {
        message = (JSON.parse(res.body) as { message?: string }).message ?? message;
      } catch {
        // not JSON
      }
      throw new KubeApiError(`${method} ${apiPath}: ${res.status} ${message}`, res.status);
    }
    return JSON.parse(res.body) as T;
  }
}

/** The REST path of an object, e.g. /apis/rbac.authorization.k8s.io/v1/clusterroles/x. */
export function objectPath(obj: KubeObject): string {
  const base = obj.apiVersion.includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
  const ns = obj.metadata.namespace ? `/namespaces/${obj.metadata.namespace}` : '';
  return `${base}${ns}/${plural(obj.kind)}/${obj.metadata.name}`;
}

function plural(kind: string): string {
  const k = kind.toLowerCase();
  if (k.endsWith('s')) return `${k}es`;
  if (k.endsWith('y')) return `${k.slice(0, -1)}ies`;
  return `${k}s`;
}
