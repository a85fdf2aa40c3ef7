import type * as pulumi from '@pulumi/pulumi';

// Pulumi serializes these providers' methods into the provider launcher, so each is
// self-contained: Node built-ins come from process.getBuiltinModule and helpers are nested.
// (Values captured from module scope would be serialized too; imports would not survive.)

export type ContainerInputs = {
  /** Docker Engine API socket (podman's compat API). */
  socketPath: string;
  name: string;
  image: string;
  /** "KEY=value" entries (a Pulumi secret in state). */
  env: string[];
  /** Port the app listens on inside the container. */
  port: number;
  memoryMb: number;
  nanoCpus: number;
  labels: Record<string, string>;
  /** The tenant's own network (made on first use, removed with its last container). */
  network: string;
  /** Binds ("host:container:rw"), e.g. attached embedded SQLite resources; absent: none. */
  mounts?: string[];
};

export type ContainerOutputs = ContainerInputs & { containerId: string; hostPort: number };

/** A running container, pulled and started through the Docker Engine API. */
export const containerProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: ContainerInputs) {
    const http = process.getBuiltinModule('node:http');
    const call = (method: string, path: string, body?: unknown) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const req = http.request(
          {
            socketPath: inputs.socketPath,
            method,
            path,
            headers: payload
              ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
              : {},
          },
          (res) => {
            let text = '';
            res.on('data', (c) => {
              text += c;
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          },
        );
        req.on('error', reject);
        req.end(payload);
      });
    const inspectImage = () => call('GET', `/images/${encodeURIComponent(inputs.image)}/json`);
    // "repo@sha256:…" (a pinned release) or "repo:tag"; the API takes either as tag. A pinned
    // image already here is that very image (its digest names its content): no pull, which
    // would ask the registry for its manifest again (0.05-0.15 s). A tag is always pulled.
    const pinned = inputs.image.includes('@');
    let inspected = pinned ? await inspectImage() : undefined;
    if (inspected?.status !== 200) {
      const at = pinned ? inputs.image.indexOf('@') : inputs.image.lastIndexOf(':');
      const pull = await call(
        'POST',
        `/images/create?fromImage=${encodeURIComponent(inputs.image.slice(0, at))}&tag=${encodeURIComponent(inputs.image.slice(at + 1))}`,
      );
      const pullError = pull.text.split('\n').find((l) => l.includes('"error"'));
      if (pull.status !== 200 || pullError) {
        let why = pull.text.slice(0, 300);
        try {
          why = (JSON.parse(pullError ?? '') as { error: string }).error;
        } catch {}
        throw new Error(`pull ${inputs.image} failed: ${why}`);
      }
      inspected = await inspectImage();
    }
    await call('DELETE', `/containers/${encodeURIComponent(inputs.name)}?force=true`); // leftover of a failed run
    // Images built by our packs say their app writes only to /tmp and HOME (see dockerfile.ts).
    const image = JSON.parse(inspected.text) as {
      Config?: { Labels?: Record<string, string> | null; User?: string };
    };
    const readOnlyRoot = image.Config?.Labels?.['io.deploy-mcp.read-only-root'] === 'true';
    // Apps never run as root: an image without a USER (or with root's) runs as this uid.
    const imageUser = image.Config?.User ?? '';
    const runsAsRoot = /^(|root|0)(:.*)?$/.test(imageUser);
    const user = runsAsRoot ? '10001:10001' : imageUser;
    const homeSet = inputs.env.some((e) => e.startsWith('HOME='));
    // HOME of apps on a read-only root: a fresh tmpfs at a path the image does not have (as on
    // Kubernetes, APP_HOME). Podman gives a tmpfs over an image folder that folder's owner and
    // mode whatever `mode=` says: over /root (0700 root) the app, uid 10001, could not even read
    // ~/.yarnrc.yml, and yarn 4 exited with EACCES on every start.
    const home = '/home/app';
    const spec = {
      Image: inputs.image,
      Env: readOnlyRoot && !homeSet ? [...inputs.env, `HOME=${home}`] : inputs.env,
      Labels: inputs.labels,
      User: user,
      ExposedPorts: { [`${inputs.port}/tcp`]: {} },
      HostConfig: {
        NetworkMode: inputs.network,
        ...(inputs.mounts?.length ? { Binds: inputs.mounts } : {}),
        PortBindings: { [`${inputs.port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }] },
        // Without CAP_SYS_RESOURCE here, runc needs limits at or below the current ones.
        Ulimits: [
          { Name: 'nofile', Soft: 20000, Hard: 20000 },
          { Name: 'nproc', Soft: 4096, Hard: 4096 },
        ],
        Memory: inputs.memoryMb * 1024 * 1024,
        MemorySwap: inputs.memoryMb * 1024 * 1024, // no swap beyond the memory limit
        NanoCpus: inputs.nanoCpus,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        // No IPv6 in the app's namespace: the tenant network is IPv4 (its egress rules too), yet
        // the container's link would get a link-local address that reaches the bridge's, i.e.
        // whatever listens on `::` on the host, past every IPv4 rule.
        Sysctls: { 'net.ipv6.conf.all.disable_ipv6': '1' },
        ...(readOnlyRoot
          ? {
              ReadonlyRootfs: true,
              Tmpfs: {
                '/tmp': 'rw,nosuid,nodev,size=64m,mode=1777',
                [home]: 'rw,nosuid,nodev,size=64m,mode=1777',
              },
            }
          : {}),
        RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 3 },
      },
    };
    // The tenant's network: made on its first container (a concurrent delete of the tenant's
    // last other container may remove it in between: then it is made again, once).
    const createNetwork = async () => {
      const made = await call('POST', '/networks/create', {
        Name: inputs.network,
        Driver: 'bridge',
        Labels: { 'deploy-mcp.network': 'tenant' },
      });
      // The engine answers 409 (Docker) or 500 "already exists" (podman) for a network that is there.
      if (made.status !== 201 && made.status !== 409 && !/already exists/i.test(made.text))
        throw new Error(
          `create network ${inputs.network} failed: HTTP ${made.status} ${made.text.slice(0, 300)}`,
        );
    };
    const createContainer = () =>
      call('POST', `/containers/create?name=${encodeURIComponent(inputs.name)}`, spec);
    await createNetwork();
    let created = await createContainer();
    if (created.status === 404 || /network.*not found/i.test(created.text)) {
      await createNetwork();
      created = await createContainer();
    }
    if (created.status !== 201)
      throw new Error(`create container failed: HTTP ${created.status} ${created.text.slice(0, 300)}`);
    const id = (JSON.parse(created.text) as { Id: string }).Id;
    const started = await call('POST', `/containers/${id}/start`);
    if (started.status !== 204 && started.status !== 304) {
      throw new Error(`start container failed: HTTP ${started.status} ${started.text.slice(0, 300)}`);
    }
    const info = JSON.parse((await call('GET', `/containers/${id}/json`)).text) as {
      State: { Pid: number };
      NetworkSettings: { Ports: Record<string, { HostPort: string }[] | null> };
    };
    // A named USER may still be uid 0 in the image's /etc/passwd: check the process itself.
    if (!runsAsRoot && info.State.Pid > 0) {
      let status = '';
      try {
        status = process.getBuiltinModule('node:fs').readFileSync(`/proc/${info.State.Pid}/status`, 'utf8');
      } catch {}
      if (/^Uid:\s+0\s/m.test(status)) {
        await call('DELETE', `/containers/${id}?force=true`);
        throw new Error(
          `the image's USER ${imageUser} is root: apps run as a non-root user; set USER to another user`,
        );
      }
    }
    const hostPort = Number(info.NetworkSettings.Ports[`${inputs.port}/tcp`]?.[0]?.HostPort);
    return { id, outs: { ...inputs, containerId: id, hostPort } };
  },

  async diff(_id: string, olds: ContainerOutputs, news: ContainerInputs) {
    const keys = [
      'name',
      'image',
      'env',
      'port',
      'memoryMb',
      'nanoCpus',
      'socketPath',
      'network',
      'mounts',
    ] as const;
    const replaces = keys.filter((k) => JSON.stringify(olds[k]) !== JSON.stringify(news[k]));
    return { changes: replaces.length > 0, replaces, deleteBeforeReplace: olds.name === news.name };
  },

  async delete(id: string, olds: ContainerOutputs) {
    const http = process.getBuiltinModule('node:http');
    const request = (method: string, path: string) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request({ socketPath: olds.socketPath, method, path }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
    // Requests already on their way finish: SIGTERM, up to 2 s, then the container goes.
    await request('POST', `/containers/${encodeURIComponent(id)}/stop?t=2`).catch(() => 0);
    const status = await request('DELETE', `/containers/${encodeURIComponent(id)}?force=true&v=true`);
    if (status !== 204 && status !== 404) throw new Error(`remove container ${id}: HTTP ${status}`);
    // The node keeps no retired images (the registry does, for rollbacks). Another container
    // still using it answers 409 and keeps it: best effort.
    await request('DELETE', `/images/${encodeURIComponent(olds.image)}`).catch(() => 0);
    // The tenant's network goes with its last container (the engine refuses while one is left).
    if (olds.network) await request('DELETE', `/networks/${encodeURIComponent(olds.network)}`).catch(() => 0);
  },
};

export type RouteInputs = {
  routesDir: string;
  name: string;
  host: string;
  upstream: string;
  /** Traefik's API: when given, a write returns only once Traefik serves the new upstream. */
  apiUrl?: string;
};

/** A Traefik HTTP route (file provider): Host(host) → upstream. */
export const routeProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: RouteInputs) {
    const fs = process.getBuiltinModule('node:fs');
    const path = process.getBuiltinModule('node:path');
    const yaml = [
      'http:',
      '  routers:',
      `    ${inputs.name}:`,
      `      rule: "Host(\`${inputs.host}\`)"`,
      '      entryPoints: [web]',
      `      service: ${inputs.name}`,
      '  services:',
      `    ${inputs.name}:`,
      '      loadBalancer:',
      '        servers:',
      `          - url: "${inputs.upstream}"`,
      '',
    ].join('\n');
    const file = path.join(inputs.routesDir, `${inputs.name}.yml`);
    fs.mkdirSync(inputs.routesDir, { recursive: true });
    fs.writeFileSync(`${file}.tmp`, yaml);
    fs.renameSync(`${file}.tmp`, file);
    // Traefik applies file changes a moment later: wait until it routes to the new upstream
    // (at most 10 s), so the release this route leaves is removed only once unused.
    if (inputs.apiUrl) {
      const http = process.getBuiltinModule('node:http');
      const servers = () =>
        new Promise<string[]>((resolve) => {
          const req = http.get(
            `${inputs.apiUrl}/api/http/services/${inputs.name}@file`,
            { timeout: 1000 },
            (res) => {
              let text = '';
              res.on('data', (c) => {
                text += c;
              });
              res.on('end', () => {
                try {
                  const svc = JSON.parse(text) as { loadBalancer?: { servers?: { url: string }[] } };
                  resolve((svc.loadBalancer?.servers ?? []).map((s) => s.url));
                } catch {
                  resolve([]);
                }
              });
            },
          );
          req.on('timeout', () => req.destroy());
          req.on('error', () => resolve([]));
        });
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && !(await servers()).includes(inputs.upstream))
        await new Promise((r) => setTimeout(r, 100));
    }
    return { id: file, outs: inputs };
  },
  async update(id: string, _olds: RouteInputs, news: RouteInputs) {
    const created = await (routeProvider.create as (i: RouteInputs) => Promise<{ outs: RouteInputs }>)(news);
    return { outs: created.outs, id };
  },
  async diff(_id: string, olds: RouteInputs, news: RouteInputs) {
    const changed = (['host', 'upstream'] as const).filter((k) => olds[k] !== news[k]);
    const replaces = (['name', 'routesDir'] as const).filter((k) => olds[k] !== news[k]);
    return { changes: changed.length + replaces.length > 0, replaces };
  },
  async delete(id: string) {
    process.getBuiltinModule('node:fs').rmSync(id, { force: true });
  },
};
