import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContainerEngine, DEFAULT_ULIMITS } from '../../core/container-engine.ts';
import { freePort } from '../../core/daemons/probes.ts';
import { routeProvider } from '../../tenant-stacks/local/providers.ts';
import { eventually, httpGet } from '../support/http.ts';
import { buildHelloServer, startTestRuntime, type TestRuntime } from '../support/runtime.ts';
import { scratchDir } from '../support/scratch.ts';

const _run = promisify(execFile);

describe('BuildKit build → local registry → podman run → Traefik route', () => {
  const work = scratchDir('infra-proof');
  const name = `proof-${process.pid}`;
  const image = () => `${rt.registry.host}/proof/${name}:1`;
  let rt: TestRuntime;
  let engine: ContainerEngine;
  let containerId: string | undefined;
  let hostPort: number;

  beforeAll(async () => {
    rt = await startTestRuntime(work.dir);
    engine = new ContainerEngine(rt.podman.socketPath);
  });

  afterAll(async () => {
    try {
      if (containerId) await engine.removeContainer(containerId);
    } finally {
      await rt?.stop();
      work.cleanup();
    }
  });

  it('builds an image with a RUN step and pushes it to the registry', async () => {
    await buildHelloServer(rt, work.dir, [image()]);
    const res = await fetch(`http://${rt.registry.host}/v2/proof/${name}/tags/list`);
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
      () => httpGet(`http://127.0.0.1:${hostPort}/`),
      (r) => r.status === 200,
    );
    // "by-buildkit" was written by the Dockerfile's RUN step at build time.
    expect(res.body).toBe('hello from proof, built by-buildkit\n');
    expect((await engine.inspectContainer(containerId))?.State.Running).toBe(true);
  });

  it('routes Host(<name>.localhost) through Traefik to the container, and stops when removed', async () => {
    const host = `${name}.localhost`;
    expect((await httpGet(`http://127.0.0.1:${rt.traefikPort}/`, host)).status).toBe(404);
    // The tenant stacks' own route provider, called directly (no Pulumi engine needed here).
    const route = await routeProvider.create({
      routesDir: rt.traefik.routesDir,
      name,
      host,
      upstream: `http://127.0.0.1:${hostPort}`,
    });
    const res = await eventually(
      () => httpGet(`http://127.0.0.1:${rt.traefikPort}/`, host),
      (r) => r.status === 200,
    );
    expect(res.body).toBe('hello from proof, built by-buildkit\n');
    expect((await httpGet(`http://127.0.0.1:${rt.traefikPort}/`, `other-${name}.localhost`)).status).toBe(
      404,
    );
    await routeProvider.delete?.(route.id, route.outs);
    await eventually(
      () => httpGet(`http://127.0.0.1:${rt.traefikPort}/`, host),
      (r) => r.status === 404,
    );
  });
});
