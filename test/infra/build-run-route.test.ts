import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContainerEngine, DEFAULT_ULIMITS } from '../../core/container-engine.ts';
import { type Buildkit, startBuildkit } from '../../core/daemons/buildkit.ts';
import { type PodmanService, startPodmanService } from '../../core/daemons/podman.ts';
import { freePort } from '../../core/daemons/probes.ts';
import { type Registry, startRegistry } from '../../core/daemons/registry.ts';
import { startTraefik, type Traefik } from '../../core/daemons/traefik.ts';
import { removeRoute, writeRoute } from '../../core/traefik-routes.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

const run = promisify(execFile);

/** GET through 127.0.0.1:port with an explicit Host header; resolves status and body. */
function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', headers: { host }, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: T | undefined;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (ok(last)) return last;
    } catch (e) {
      lastError = e;
    }
    await sleep(200);
  }
  throw new Error(`condition not met within ${ms} ms; last: ${JSON.stringify(last)} ${lastError ?? ''}`);
}

describe('BuildKit build → local registry → podman run → Traefik route', () => {
  const work = scratchDir('infra-proof');
  const name = `proof-${process.pid}`;
  const image = () => `${registry.host}/proof/${name}:1`;
  let registry: Registry;
  let buildkit: Buildkit;
  let podman: PodmanService;
  let traefik: Traefik;
  let traefikPort: number;
  let engine: ContainerEngine;
  let containerId: string | undefined;
  let hostPort: number;

  beforeAll(async () => {
    registry = await startRegistry({
      bin: 'docker-registry',
      dir: path.join(work.dir, 'registry'),
      port: await freePort(),
    });
    [buildkit, podman, traefik] = await Promise.all([
      startBuildkit({
        bin: 'buildkitd',
        dir: path.join(work.dir, 'buildkit'),
        insecureRegistries: [registry.host],
      }),
      startPodmanService({
        bin: 'podman',
        dir: path.join(work.dir, 'podman'),
        insecureRegistries: [registry.host],
      }),
      freePort().then((port) => {
        traefikPort = port;
        return startTraefik({ bin: 'traefik', dir: path.join(work.dir, 'traefik'), port });
      }),
    ]);
    engine = new ContainerEngine(podman.socketPath);
  });

  afterAll(async () => {
    try {
      if (containerId) await engine.removeContainer(containerId);
    } finally {
      await Promise.all([traefik, podman, buildkit, registry].map((d) => d?.stop()));
      work.cleanup();
    }
  });

  it('builds an image with a RUN step and pushes it to the registry', async () => {
    const context = path.join(work.dir, 'context');
    fs.mkdirSync(context);
    const fixture = path.join(repoRoot, 'test/fixtures/hello-server');
    fs.copyFileSync(path.join(fixture, 'Dockerfile'), path.join(context, 'Dockerfile'));
    await run('go', ['build', '-o', path.join(context, 'hello-server'), '.'], {
      cwd: fixture,
      env: { ...process.env, CGO_ENABLED: '0' },
    });
    await run('buildctl', [
      '--addr',
      buildkit.address,
      'build',
      '--frontend',
      'dockerfile.v0',
      '--local',
      `context=${context}`,
      '--local',
      `dockerfile=${context}`,
      '--output',
      `type=image,name=${image()},push=true,registry.insecure=true`,
    ]);
    const res = await fetch(`http://${registry.host}/v2/proof/${name}/tags/list`);
    expect(await res.json()).toEqual({ name: `proof/${name}`, tags: ['1'] });
  });

  it('pulls and runs the image through the Docker Engine API; it answers on its port', async () => {
    await engine.pullImage(image());
    hostPort = await freePort();
    containerId = await engine.createContainer(name, {
      Image: image(),
      Env: ['PORT=8080', 'GREETING=proof'],
      ExposedPorts: { '8080/tcp': {} },
      HostConfig: {
        PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: String(hostPort) }] },
        Ulimits: DEFAULT_ULIMITS,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
      },
    });
    await engine.startContainer(containerId);
    const res = await eventually(
      () => get(hostPort, 'localhost'),
      (r) => r.status === 200,
    );
    // "by-buildkit" was written by the Dockerfile's RUN step at build time.
    expect(res.body).toBe('hello from proof, built by-buildkit\n');
    expect((await engine.inspectContainer(containerId))?.State.Running).toBe(true);
  });

  it('routes Host(<name>.localhost) through Traefik to the container, and stops when removed', async () => {
    const host = `${name}.localhost`;
    expect((await get(traefikPort, host)).status).toBe(404);
    writeRoute(traefik.routesDir, { name, host, upstream: `http://127.0.0.1:${hostPort}` });
    const res = await eventually(
      () => get(traefikPort, host),
      (r) => r.status === 200,
    );
    expect(res.body).toBe('hello from proof, built by-buildkit\n');
    expect((await get(traefikPort, `other-${name}.localhost`)).status).toBe(404);
    removeRoute(traefik.routesDir, name);
    await eventually(
      () => get(traefikPort, host),
      (r) => r.status === 404,
    );
  });
});
