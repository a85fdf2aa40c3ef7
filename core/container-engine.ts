import http from 'node:http';

/** Docker Engine API client over a unix socket (podman's compat API or Docker). */
export class ContainerEngine {
  constructor(private readonly socketPath: string) {}

  async ping(): Promise<boolean> {
    const res = await this.request('GET', '/_ping');
    return res.status === 200;
  }

  /** Pulls `image` ("host/repo:tag"); resolves when the pull finished, throws on failure. */
  async pullImage(image: string): Promise<void> {
    const { name, tag } = splitImage(image);
    const res = await this.request(
      'POST',
      `/images/create?fromImage=${encodeURIComponent(name)}&tag=${encodeURIComponent(tag)}`,
    );
    if (res.status !== 200) throw new EngineError(`pull ${image}`, res);
    // The stream reports errors in-band as {"error": "..."} lines.
    for (const line of res.body.split('\n')) {
      if (!line.trim()) continue;
      const msg = JSON.parse(line) as { error?: string };
      if (msg.error) throw new Error(`pull ${image}: ${msg.error}`);
    }
  }

  /** Creates a container; returns its id. `spec` is the Docker API create body. */
  async createContainer(name: string, spec: ContainerSpec): Promise<string> {
    const res = await this.request('POST', `/containers/create?name=${encodeURIComponent(name)}`, spec);
    if (res.status !== 201) throw new EngineError(`create container ${name}`, res);
    return (JSON.parse(res.body) as { Id: string }).Id;
  }

  async startContainer(id: string): Promise<void> {
    const res = await this.request('POST', `/containers/${encodeURIComponent(id)}/start`);
    if (res.status !== 204 && res.status !== 304) throw new EngineError(`start container ${id}`, res);
  }

  /** Inspects a container; undefined when it does not exist. */
  async inspectContainer(id: string): Promise<ContainerInfo | undefined> {
    const res = await this.request('GET', `/containers/${encodeURIComponent(id)}/json`);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new EngineError(`inspect container ${id}`, res);
    return JSON.parse(res.body) as ContainerInfo;
  }

  /** Force-removes a container; a missing container is not an error. */
  async removeContainer(id: string): Promise<void> {
    const res = await this.request('DELETE', `/containers/${encodeURIComponent(id)}?force=true&v=true`);
    if (res.status !== 204 && res.status !== 404) throw new EngineError(`remove container ${id}`, res);
  }

  private request(method: string, path: string, body?: unknown): Promise<EngineResponse> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          method,
          path,
          headers: payload
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
            : {},
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
      req.on('error', reject);
      req.end(payload);
    });
  }
}

type EngineResponse = { status: number; body: string };

export class EngineError extends Error {
  override name = 'EngineError';
  constructor(
    what: string,
    readonly response: EngineResponse,
  ) {
    super(`${what}: HTTP ${response.status}: ${engineMessage(response.body)}`);
  }
}

function engineMessage(body: string): string {
  try {
    return (JSON.parse(body) as { message?: string }).message ?? body.slice(0, 500);
  } catch {
    return body.slice(0, 500);
  }
}

function splitImage(image: string): { name: string; tag: string } {
  const at = image.lastIndexOf(':');
  // A colon before the last slash belongs to the registry host:port, not to a tag.
  if (at > image.lastIndexOf('/')) return { name: image.slice(0, at), tag: image.slice(at + 1) };
  return { name: image, tag: 'latest' };
}

/**
 * Limits every container gets. This machine's processes lack CAP_SYS_RESOURCE: runc fails
 * ("error setting rlimit type 6") unless nproc and nofile are set at or below these.
 */
export const DEFAULT_ULIMITS = [
  { Name: 'nofile', Soft: 20_000, Hard: 20_000 },
  { Name: 'nproc', Soft: 4096, Hard: 4096 },
];

export type ContainerSpec = {
  Image: string;
  Env?: string[];
  Cmd?: string[];
  Labels?: Record<string, string>;
  ExposedPorts?: Record<string, object>;
  HostConfig?: {
    PortBindings?: Record<string, { HostIp?: string; HostPort: string }[]>;
    Ulimits?: { Name: string; Soft: number; Hard: number }[];
    Memory?: number;
    NanoCpus?: number;
    CapDrop?: string[];
    SecurityOpt?: string[];
    ReadonlyRootfs?: boolean;
    RestartPolicy?: { Name: string; MaximumRetryCount?: number };
  };
};

export type ContainerInfo = {
  Id: string;
  Name: string;
  State: { Status: string; Running: boolean; ExitCode: number; OOMKilled: boolean };
  NetworkSettings: { Ports?: Record<string, { HostIp: string; HostPort: string }[] | null> };
};
