import http from 'node:http';

/** Docker Engine API client over a unix socket (podman's compat API or Docker). */
export class ContainerEngine {
  private readonly socketPath: string;

  constructor(socketPath: string) {
    this.socketPath = socketPath;
  }

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

  /** The last `tail` lines of a container's stdout and stderr, interleaved. */
  async logs(id: string, tail = 100): Promise<string[]> {
    const res = await this.request(
      'GET',
      `/containers/${encodeURIComponent(id)}/logs?stdout=1&stderr=1&tail=${tail}`,
      undefined,
      true,
    );
    if (res.status === 404) return [];
    if (res.status !== 200)
      throw new EngineError(`logs of container ${id}`, { status: res.status, body: res.raw.toString() });
    return demultiplex(res.raw)
      .split('\n')
      .filter((l, i, all) => l !== '' || i < all.length - 1);
  }

  /** Exit codes of a container's past runs (its "die" events), oldest first. */
  async exitCodes(id: string, since: Date): Promise<number[]> {
    // Podman 4.3's compat API ignores event=die in filters, so "die" is picked out here.
    const filters = encodeURIComponent(JSON.stringify({ container: [id] }));
    const sinceS = Math.floor(since.getTime() / 1000) - 1;
    const untilS = Math.ceil(Date.now() / 1000) + 1;
    const res = await this.request('GET', `/events?since=${sinceS}&until=${untilS}&filters=${filters}`);
    if (res.status !== 200) return [];
    return res.body
      .split('\n')
      .filter(Boolean)
      .map((l) =>
        Number(
          (JSON.parse(l) as { Actor?: { Attributes?: { exitCode?: string } } }).Actor?.Attributes?.exitCode,
        ),
      )
      .filter((n) => Number.isFinite(n));
  }

  /** Containers (running or not) carrying every given label, with their labels. */
  async listContainers(
    labels: Record<string, string>,
  ): Promise<{ id: string; labels: Record<string, string> }[]> {
    const filters = encodeURIComponent(
      JSON.stringify({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) }),
    );
    const res = await this.request('GET', `/containers/json?all=true&filters=${filters}`);
    if (res.status !== 200) throw new EngineError('list containers', res);
    return (JSON.parse(res.body) as { Id: string; Labels: Record<string, string> | null }[]).map((c) => ({
      id: c.Id,
      labels: c.Labels ?? {},
    }));
  }

  /** Networks carrying every given label, with how many containers each has. */
  async listNetworks(labels: Record<string, string>): Promise<{ name: string; containers: number }[]> {
    const filters = encodeURIComponent(
      JSON.stringify({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) }),
    );
    const res = await this.request('GET', `/networks?filters=${filters}`);
    if (res.status !== 200) throw new EngineError('list networks', res);
    return (JSON.parse(res.body) as { Name: string; Containers?: Record<string, unknown> | null }[]).map(
      (n) => ({ name: n.Name, containers: Object.keys(n.Containers ?? {}).length }),
    );
  }

  /** Removes a network; the engine refuses one that containers still use. */
  async removeNetwork(name: string): Promise<void> {
    const res = await this.request('DELETE', `/networks/${encodeURIComponent(name)}`);
    if (res.status !== 204 && res.status !== 200 && res.status !== 404)
      throw new EngineError(`remove network ${name}`, res);
  }

  /** Force-removes a container; a missing container is not an error. */
  async removeContainer(id: string): Promise<void> {
    const res = await this.request('DELETE', `/containers/${encodeURIComponent(id)}?force=true&v=true`);
    if (res.status !== 204 && res.status !== 404) throw new EngineError(`remove container ${id}`, res);
  }

  private request(method: string, path: string, body?: unknown, raw?: false): Promise<EngineResponse>;
  private request(
    method: string,
    path: string,
    body: unknown,
    raw: true,
  ): Promise<EngineResponse & { raw: Buffer }>;
  private request(
    method: string,
    path: string,
    body?: unknown,
    _raw?: boolean,
  ): Promise<EngineResponse & { raw: Buffer }> {
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
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString('utf8'),
              raw: Buffer.concat(chunks),
            }),
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
  readonly response: EngineResponse;

  constructor(what: string, response: EngineResponse) {
    super(`${what}: HTTP ${response.status}: ${engineMessage(response.body)}`);
    this.response = response;
  }
}

function engineMessage(body: string): string {
  try {
    return (JSON.parse(body) as { message?: string }).message ?? body.slice(0, 500);
  } catch {
    return body.slice(0, 500);
  }
}

/**
 * Docker's log stream for non-TTY containers: frames of [stream, 0, 0, 0, size(4 bytes BE)]
 * followed by the payload. Anything else is returned as text.
 */
function demultiplex(buf: Buffer): string {
  const parts: Buffer[] = [];
  let i = 0;
  while (
    i + 8 <= buf.length &&
    buf[i + 1] === 0 &&
    buf[i + 2] === 0 &&
    buf[i + 3] === 0 &&
    (buf[i] ?? 9) <= 2
  ) {
    const size = buf.readUInt32BE(i + 4);
    parts.push(buf.subarray(i + 8, i + 8 + size));
    i += 8 + size;
  }
  return i === 0 ? buf.toString('utf8') : Buffer.concat(parts).toString('utf8');
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
  RestartCount?: number;
  State: {
    Status: string;
    Running: boolean;
    ExitCode: number;
    OOMKilled: boolean;
    Pid: number;
    StartedAt: string;
    FinishedAt: string;
  };
  NetworkSettings: { Ports?: Record<string, { HostIp: string; HostPort: string }[] | null> };
  /** The command the container runs (e.g. ["sh", "-c", "exec npm start"]). */
  Config?: { Cmd?: string[] | null };
};
