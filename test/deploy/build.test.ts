import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBaseImages } from '../../workers/build/base-images.ts';
import { BuildError, buildAndPush, describeFailure } from '../../workers/build/buildkit.ts';
import { detectBuildPlan } from '../../workers/build/detect.ts';
import {
  BUILD_ENV_SECRET,
  buildEnvFile,
  DOCKERIGNORE,
  renderDockerfile,
} from '../../workers/build/dockerfile.ts';
import { startTestRuntime, type TestRuntime } from '../support/runtime.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

describe('build packs on BuildKit', () => {
  const work = scratchDir('build');
  let rt: TestRuntime;

  beforeAll(async () => {
    rt = await startTestRuntime(work.dir);
  });
  afterAll(async () => {
    await rt?.stop();
    work.cleanup();
  });

  it('builds a Node app: installs its dependency, runs its build with a secret env var, pushes the image', async () => {
    const base = await ensureBaseImages({
      buildkitAddress: rt.buildkit.address,
      registryHost: rt.registry.host,
      rootfsTar: path.join(repoRoot, '.tools/images/base-node.tar'),
    });
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
    fs.writeFileSync(path.join(meta, 'Dockerfile'), renderDockerfile(plan, base));
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
});
