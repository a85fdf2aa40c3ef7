import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContainerEngine, DEFAULT_ULIMITS } from '../../core/container-engine.ts';
import { startBuildkit } from '../../core/daemons/buildkit.ts';
import { freePort } from '../../core/daemons/probes.ts';
import { ensureBaseImages } from '../../workers/build/base-images.ts';
import { BuildError, buildAndPush, describeFailure } from '../../workers/build/buildkit.ts';
import { detectBuildPlan } from '../../workers/build/detect.ts';
import {
  type BaseImages,
  BUILD_ENV_SECRET,
  buildEnvFile,
  DOCKERIGNORE,
  renderDockerfile,
} from '../../workers/build/dockerfile.ts';
import { eventually, httpGet } from '../support/http.ts';
import { startTestRuntime, type TestRuntime } from '../support/runtime.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

describe('build packs on BuildKit', () => {
  const work = scratchDir('build');
  let rt: TestRuntime;
  let base: BaseImages;
  let n = 0;

  beforeAll(async () => {
    rt = await startTestRuntime(work.dir);
    base = await ensureBaseImages({
      buildkitAddress: rt.buildkit.address,
      registryHost: rt.registry.host,
      imagesDir: path.join(repoRoot, '.tools/images'),
    });
  });
  afterAll(async () => {
    await rt?.stop();
    work.cleanup();
  });

  /** Builds a copy of test/fixtures/apps/<fixture> (after `edit`) as the generated or own Dockerfile says. */
  async function build(
    fixture: string,
    o: { cacheId?: string; edit?: (dir: string) => void; baseImagePrefix?: string } = {},
  ) {
    const app = path.join(work.dir, `${fixture}-${++n}`);
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps', fixture), app, { recursive: true });
    o.edit?.(app);
    const plan = detectBuildPlan(app);
    const meta = `${app}-meta`;
    fs.mkdirSync(meta);
    fs.writeFileSync(
      path.join(meta, 'Dockerfile'),
      plan.pack === 'dockerfile'
        ? fs.readFileSync(path.join(app, plan.dockerfile))
        : renderDockerfile(plan, base, { cacheId: o.cacheId }),
    );
    fs.writeFileSync(path.join(app, '.dockerignore'), DOCKERIGNORE);
    const log: string[] = [];
    const imageRef = `${rt.registry.host}/t/${fixture}:${n}`;
    await buildAndPush({
      address: rt.buildkit.address,
      contextDir: app,
      dockerfileDir: meta,
      imageRef,
      ...(o.baseImagePrefix ? { baseImagePrefix: o.baseImagePrefix } : {}),
      timeoutMs: 300_000,
      onLog: (l) => log.push(l),
    });
    return { plan, imageRef, log: log.join('\n') };
  }

  /** Runs the image with PORT=8080 and returns its answer to GET /. */
  async function serve(imageRef: string) {
    const engine = new ContainerEngine(rt.podman.socketPath);
    await engine.pullImage(imageRef);
    const hostPort = await freePort();
    const id = await engine.createContainer(`build-test-${process.pid}-${++n}`, {
      Image: imageRef,
      Env: ['PORT=8080', 'MESSAGE=hi'],
      ExposedPorts: { '8080/tcp': {} },
      HostConfig: {
        PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: String(hostPort) }] },
        Ulimits: DEFAULT_ULIMITS,
      },
    });
    try {
      await engine.startContainer(id);
      return await eventually(
        () => httpGet(`http://127.0.0.1:${hostPort}/`),
        (r) => r.status === 200,
        30_000,
      ).catch(async (err: Error) => {
        throw new Error(`${err.message}\n${(await engine.logs(id, 30)).join('\n')}`);
      });
    } finally {
      await engine.removeContainer(id);
    }
  }

  it('publishes every base image once, under an immutable tag and latest', async () => {
    const started = Date.now();
    const again = await ensureBaseImages({
      buildkitAddress: rt.buildkit.address,
      registryHost: rt.registry.host,
      imagesDir: path.join(repoRoot, '.tools/images'),
    });
    expect(again).toEqual(base);
    expect(Date.now() - started).toBeLessThan(2000);
    for (const name of ['runtime', 'node', 'python', 'go'] as const) {
      expect(base[name]).toMatch(new RegExp(`^${rt.registry.host}/deploy-mcp/${name}:[0-9a-f]{16}$`));
      const res = await fetch(`http://${rt.registry.host}/v2/deploy-mcp/${name}/tags/list`);
      expect(((await res.json()) as { tags: string[] }).tags.sort()).toEqual(
        [base[name].split(':').at(-1), 'latest'].sort(),
      );
    }
  });

  it('builds a Node app: installs its dependency, runs its build with a secret env var, pushes the image', async () => {
    const app = path.join(work.dir, 'app');
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps/node-hello'), app, { recursive: true });
    const plan = detectBuildPlan(app);
    expect(plan).toMatchObject({
      pack: 'node',
      install: 'npm ci',
      build: 'npm run build',
      start: 'npm start',
    });
    if (plan.pack === 'dockerfile') throw new Error('unexpected');

    const meta = path.join(work.dir, 'meta');
    fs.mkdirSync(meta);
    fs.writeFileSync(path.join(meta, 'Dockerfile'), renderDockerfile(plan, base, { cacheId: 'svc-node' }));
    fs.writeFileSync(path.join(app, '.dockerignore'), DOCKERIGNORE);
    const secretFile = path.join(meta, 'build.env');
    fs.writeFileSync(secretFile, buildEnvFile({ BUILD_TOKEN: 'tok-5e3c9a7f-not-in-layers' }));
    const log: string[] = [];
    const digest = await buildAndPush({
      address: rt.buildkit.address,
      contextDir: app,
      dockerfileDir: meta,
      imageRef: `${rt.registry.host}/t/app:1`,
      secrets: { [BUILD_ENV_SECRET]: secretFile },
      timeoutMs: 300_000,
      onLog: (l) => log.push(l),
    });
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(log.join('\n')).toMatch(/npm ci/);
    expect(log.join('\n')).not.toContain('tok-5e3c9a7f');
    expect((await serve(`${rt.registry.host}/t/app:1`)).body).toBe('hi | build token seen | 1m\n');

    // No layer of any pushed image carries the secret's value.
    const blobs = path.join(work.dir, 'registry/data/docker/registry/v2/blobs');
    const files = fs
      .readdirSync(blobs, { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('/data'));
    expect(files.length).toBeGreaterThan(2);
    for (const f of files) {
      const raw = fs.readFileSync(path.join(blobs, f));
      const text = raw[0] === 0x1f && raw[1] === 0x8b ? zlib.gunzipSync(raw) : raw;
      expect(text.includes('tok-5e3c9a7f'), f).toBe(false);
    }
  });

  it.each([
    ['python-flask', 'python', 'hello from flask | hi\n'],
    ['go-hello', 'go', 'hello from go | uuid ok: true\n'],
    ['pnpm-hello', 'node', 'hello from pnpm | 2m\n'],
    ['yarn-hello', 'node', 'hello from yarn-hello | 2m\n'],
    ['yarn-berry-hello', 'node', 'hello from yarn-berry-hello | 2m\n'],
    [
      'static-site',
      'static',
      '<!doctype html>\n<title>static fixture</title>\n<p>hello from a static site</p>\n',
    ],
  ])('builds %s (%s pack) into an image that answers HTTP on $PORT', async (fixture, pack, body) => {
    const { plan, imageRef } = await build(fixture, { cacheId: `svc-${fixture}` });
    expect(plan.pack).toBe(pack);
    expect(await serve(imageRef)).toEqual({ status: 200, body });
  });

  it('runs a Go app in the small runtime image, not the toolchain image', async () => {
    const { imageRef } = await build('go-hello', { cacheId: 'svc-go-hello' });
    const manifest = async (ref: string) => {
      const [, repo, tag] = ref.match(/^[^/]+\/(.+):([^:]+)$/) ?? [];
      const res = await fetch(`http://${rt.registry.host}/v2/${repo}/manifests/${tag}`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      return ((await res.json()) as { layers: { digest: string; size: number }[] }).layers;
    };
    const [app, runtime, go] = await Promise.all([
      manifest(imageRef),
      manifest(base.runtime),
      manifest(base.go),
    ]);
    expect(app.slice(0, runtime.length)).toEqual(runtime);
    const added = app.slice(runtime.length).reduce((sum, l) => sum + l.size, 0);
    expect(added).toBeLessThan(20 * 1024 * 1024);
    expect(go.at(-1)?.size).toBeGreaterThan(100 * 1024 * 1024); // the toolchain stays behind
  });

  it("a user's Dockerfile names our base images as deploy-mcp/<name>", async () => {
    const { plan, imageRef } = await build('dockerfile-app');
    expect(plan.pack).toBe('dockerfile');
    expect((await serve(imageRef)).body).toBe('hello from a Dockerfile | node v24.21.0\n');
  });

  it('takes base images from a configured registry prefix, publishing missing ones there', async () => {
    const prefix = `${rt.registry.host}/mirror/bases`;
    const mirrored = await ensureBaseImages({
      buildkitAddress: rt.buildkit.address,
      registryHost: rt.registry.host,
      prefix,
      imagesDir: path.join(repoRoot, '.tools/images'),
    });
    for (const ref of Object.values(mirrored)) expect(ref.startsWith(`${prefix}/`)).toBe(true);
    const { imageRef } = await build('dockerfile-app', { baseImagePrefix: prefix });
    expect((await serve(imageRef)).body).toBe('hello from a Dockerfile | node v24.21.0\n');
    // The prefix is really where FROM deploy-mcp/node comes from: an empty one fails the build.
    await expect(build('dockerfile-app', { baseImagePrefix: `${rt.registry.host}/nowhere` })).rejects.toThrow(
      /nowhere\/node/,
    );
  });

  it("keeps each service's package cache to itself", async () => {
    // pip caches the wheels it builds from source distributions (docopt ships only one; pip's
    // HTTP cache would need cache headers, which the proxy here drops). A changed
    // requirements.txt reinstalls.
    const requirements = (tag: string) => (dir: string) =>
      fs.appendFileSync(path.join(dir, 'requirements.txt'), `docopt==0.6.2\n# ${tag}\n`);
    const built = /Building wheel for docopt/;
    const a1 = await build('python-flask', { cacheId: 'svc-a', edit: requirements('a1') });
    expect(a1.log).toMatch(built);
    const a2 = await build('python-flask', { cacheId: 'svc-a', edit: requirements('a2') });
    expect(a2.log).toMatch(/Successfully installed .*docopt-0\.6\.2/);
    expect(a2.log).not.toMatch(built);
    // Service B's first install finds nothing of A's.
    const b1 = await build('python-flask', { cacheId: 'svc-b', edit: requirements('b1') });
    expect(b1.log).toMatch(built);
  });

  it('stops a build step at the memory cap and says so', async () => {
    const bk = await startBuildkit({
      bin: 'buildkitd',
      dir: path.join(work.dir, 'buildkit-capped'),
      insecureRegistries: [rt.registry.host],
      memoryLimitMb: 128,
    });
    try {
      const app = path.join(work.dir, 'hungry');
      fs.mkdirSync(app);
      fs.writeFileSync(
        path.join(app, 'Dockerfile'),
        `FROM ${base.node}\nRUN node -e "const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))"\n`,
      );
      const err = await buildAndPush({
        address: bk.address,
        contextDir: app,
        dockerfileDir: app,
        imageRef: `${rt.registry.host}/t/hungry:1`,
        timeoutMs: 120_000,
        onLog: () => undefined,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BuildError);
      expect((err as BuildError).message).toBe(
        'the build ran out of memory (limit 128 MiB) at step [2/2] RUN node -e "const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))"',
      );
    } finally {
      await bk.stop();
    }
  });

  it("pulls a public registry's base image through a configured mirror, and names the registry without one", async () => {
    // The local registry plays a Docker Hub mirror holding library/mirrored:1.
    const src = path.join(work.dir, 'mirrored');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'hello.txt'), 'hello from the mirror\n');
    fs.writeFileSync(path.join(src, 'Dockerfile'), `FROM ${base.runtime}\nCOPY hello.txt /hello.txt\n`);
    const push = (
      address: string,
      dir: string,
      imageRef: string,
      onLog: (l: string) => void = () => undefined,
    ) => buildAndPush({ address, contextDir: dir, dockerfileDir: dir, imageRef, timeoutMs: 180_000, onLog });
    await push(rt.buildkit.address, src, `${rt.registry.host}/library/mirrored:1`);
    const app = path.join(work.dir, 'from-hub');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'Dockerfile'), 'FROM mirrored:1\nRUN cat /hello.txt\n');

    const bk = await startBuildkit({
      bin: 'buildkitd',
      dir: path.join(work.dir, 'buildkit-mirror'),
      insecureRegistries: [rt.registry.host],
      mirrors: { 'docker.io': rt.registry.host },
      network: 'host',
    });
    try {
      const log: string[] = [];
      await push(bk.address, app, `${rt.registry.host}/t/via-mirror:1`, (l) => log.push(l));
      expect(log.join('\n')).toMatch(/^#\d+ [\d.]+ hello from the mirror$/m);
    } finally {
      await bk.stop();
    }
    const err = await push(rt.buildkit.address, app, `${rt.registry.host}/t/no-mirror:1`).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BuildError);
    expect((err as BuildError).message).toMatch(
      /^build failed.*: the Dockerfile's base image mirrored:1 cannot be pulled: Docker Hub \(docker\.io\) is not reachable from this builder\. Use a base image we provide: FROM deploy-mcp\/node/,
    );
  });

  it('quotes the failing step and its own error lines', () => {
    const tail = [
      '#8 [stage-0 4/6] RUN npm ci',
      '#8 70.57 npm error code SELF_SIGNED_CERT_IN_CHAIN',
      '#8 70.57 npm error request to https://registry.example/ms failed',
      '#8 ERROR: process "/bin/sh -c npm ci" did not complete successfully: exit code: 1',
      'error: failed to solve: process "/bin/sh -c npm ci" did not complete successfully: exit code: 1',
    ];
    expect(describeFailure(tail)).toBe(
      'build failed at [stage-0 4/6] RUN npm ci: npm error code SELF_SIGNED_CERT_IN_CHAIN / npm error request to https://registry.example/ms failed',
    );
  });

  it('shows a generated step as written, and its last lines when none says error', () => {
    const tail = [
      '#12 [build 6/6] RUN --mount=type=secret,id=build-env --mount=type=cache,id=svc-go-gobuild,target=/root/.cache/go-build,sharing=locked ["sh","-c","set -a; [ -f /run/secrets/build-env ] && . /run/secrets/build-env; set +a; CGO_ENABLED=0 go build -ldflags=\\"-s -w\\" -o /out/app ."]',
      '#12 0.101 main.go:3:8: no required module provides package example.com/missing',
      '#12 ERROR: process "sh -c ..." did not complete successfully: exit code: 1',
    ];
    expect(describeFailure(tail)).toBe(
      'build failed at [build 6/6] RUN CGO_ENABLED=0 go build -ldflags="-s -w" -o /out/app .: main.go:3:8: no required module provides package example.com/missing',
    );
  });

  it('calls a step killed with exit code 137 out of memory', () => {
    const tail = [
      '#9 [stage-0 4/5] RUN pip install -r requirements.txt',
      '#9 3.2 Killed',
      '#9 ERROR: process "/bin/sh -c pip install -r requirements.txt" did not complete successfully: exit code: 137',
    ];
    expect(describeFailure(tail, { memoryLimitMb: 2048 })).toBe(
      'the build ran out of memory (limit 2048 MiB) at step [stage-0 4/5] RUN pip install -r requirements.txt',
    );
    expect(describeFailure(tail)).toMatch(/killed \(exit code 137\), most likely out of memory$/);
  });

  it('reports a failing build with its failing step and log tail', async () => {
    const app = path.join(work.dir, 'broken');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'Dockerfile'), 'FROM scratch\nCOPY missing.txt /\n');
    const err = await buildAndPush({
      address: rt.buildkit.address,
      contextDir: app,
      dockerfileDir: app,
      imageRef: `${rt.registry.host}/t/broken:1`,
      timeoutMs: 60_000,
      onLog: () => undefined,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuildError);
    expect((err as BuildError).message).toMatch(/missing\.txt/);
    expect((err as BuildError).logTail.length).toBeGreaterThan(0);
  });

  it('quotes pip when a Python dependency does not exist', async () => {
    const err = await build('python-flask', {
      edit: (dir) => fs.writeFileSync(path.join(dir, 'requirements.txt'), 'flask-does-not-exist-5e3c==1.0\n'),
    }).catch((e: unknown) => e);
    expect((err as BuildError).message).toMatch(
      /^build failed at \[stage-0 \d\/\d\] RUN pip install -r requirements\.txt: .*No matching distribution found for flask-does-not-exist-5e3c==1\.0/,
    );
  });
});
