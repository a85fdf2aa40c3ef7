import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../core/daemons/probes.ts';
import type { ReleaseGate, ReleaseSpec } from '../../tenant-stacks/local/program.ts';
import { TenantStackRunner } from '../../tenant-stacks/runner.ts';
import { ensureBaseImages } from '../../workers/build/base-images.ts';
import { buildAndPush } from '../../workers/build/buildkit.ts';
import { detectBuildPlan } from '../../workers/build/detect.ts';
import { renderDockerfile } from '../../workers/build/dockerfile.ts';
import { eventually, httpGet } from '../support/http.ts';
import { containersOf, startTestRuntime, type TestRuntime, testServiceProgram } from '../support/runtime.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

describe('local tenant stack: containers and a Traefik route through Pulumi dynamic providers', () => {
  const work = scratchDir('stack', path.join(repoRoot, '.data', 'test'));
  const slug = `t-${process.pid}`;
  let rt: TestRuntime;
  let image: string;
  let runner: TenantStackRunner;

  beforeAll(async () => {
    rt = await startTestRuntime(work.dir);
    const { buildkit, registry } = rt;
    const base = await ensureBaseImages({
      buildkitAddress: buildkit.address,
      registryHost: registry.host,
      imagesDir: path.join(repoRoot, '.tools/images'),
    });
    const app = path.join(work.dir, 'app');
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps/node-hello'), app, { recursive: true });
    const plan = detectBuildPlan(app);
    if (plan.pack === 'dockerfile') throw new Error('unexpected plan');
    fs.writeFileSync(path.join(app, 'Dockerfile.generated'), renderDockerfile(plan, base));
    const meta = path.join(work.dir, 'meta');
    fs.mkdirSync(meta);
    fs.renameSync(path.join(app, 'Dockerfile.generated'), path.join(meta, 'Dockerfile'));
    image = `${registry.host}/t/${slug}:1`;
    await buildAndPush({
      address: buildkit.address,
      contextDir: app,
      dockerfileDir: meta,
      imageRef: image,
      timeoutMs: 300_000,
      onLog: () => undefined,
    });
    runner = new TenantStackRunner({
      projectName: 'deploy-mcp-tenants',
      backendUrl: `file://${path.join(work.dir, 'state')}`,
      workRoot: path.join(work.dir, 'work'),
      passphrase: 'test',
    });
  });

  afterAll(async () => {
    try {
      await runner?.destroy(slug).catch(() => undefined);
    } finally {
      await rt?.stop();
      work.cleanup();
    }
  });

  const release = (key: string, message: string): ReleaseSpec => ({
    key,
    image,
    env: { MESSAGE: message },
    port: 3000,
    memoryMb: 256,
    cpuMillis: 500,
  });
  const spec = (active?: ReleaseSpec, candidate?: ReleaseSpec) =>
    testServiceProgram(rt, slug, active, candidate);
  const viaTraefik = () => httpGet(`http://127.0.0.1:${rt.traefikPort}/`, `${slug}.localhost`);

  it('starts a candidate that answers on its own port before it takes traffic', async () => {
    const { outputs } = await runner.up(slug, spec(undefined, release('r1', 'one')));
    const port = outputs.candidateHostPort?.value as number;
    const res = await eventually(
      () => httpGet(`http://127.0.0.1:${port}/`),
      (r) => r.status === 200,
    );
    expect(res.body).toBe('one | no build token | 1m\n');
    expect((await viaTraefik()).status).toBe(404);
  });

  it('promotes it: Traefik routes the host to it, and the env values are secret in the state', async () => {
    await runner.up(slug, spec(release('r1', 'one')));
    expect((await eventually(viaTraefik, (r) => r.status === 200)).body).toMatch(/^one \|/);
    // At rest (the file backend's state on disk) env values are ciphertext.
    const files = fs.readdirSync(path.join(work.dir, 'state'), { recursive: true }).map(String);
    const stateFile = files.find((f) => f.endsWith(`${slug}.json`));
    if (!stateFile) throw new Error(`no state file among ${files.join(', ')}`);
    const state = fs.readFileSync(path.join(work.dir, 'state', stateFile), 'utf8');
    expect(state).toContain('4dabf18193072939515e22adb298388d'); // Pulumi's secret marker
    expect(state).not.toContain('MESSAGE=one');
  });

  it('keeps serving the active release while a candidate runs, then switches and removes the old one', async () => {
    const { outputs } = await runner.up(slug, spec(release('r1', 'one'), release('r2', 'two')));
    const candidate = outputs.candidateHostPort?.value as number;
    expect(
      (
        await eventually(
          () => httpGet(`http://127.0.0.1:${candidate}/`),
          (r) => r.status === 200,
        )
      ).body,
    ).toMatch(/^two/);
    expect((await viaTraefik()).body).toMatch(/^one/);
    await runner.up(slug, spec(release('r2', 'two')));
    expect((await eventually(viaTraefik, (r) => r.body.startsWith('two'))).body).toMatch(/^two/);
    expect(containersOf(slug)).toEqual([`${slug}-r2`]);
  });

  it('a failed update says why in a few lines, and the active release keeps serving', async () => {
    const missing = { ...release('r3', 'three'), image: `${rt.registry.host}/t/no-such-image:1` };
    const err = await runner.up(slug, spec(release('r2', 'two'), missing)).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(
      /^the stack update failed: pull \S+no-such-image:1 failed: .*manifest unknown/,
    );
    expect(err?.message.length).toBeLessThan(1000);
    expect((await viaTraefik()).body).toMatch(/^two/);
  });

  // One update per deploy (releaseImage on this runtime): the gate judges the running candidate
  // while the update waits; its answer decides the route and whether the old release goes.
  const gated = (active: ReleaseSpec | undefined, candidate: ReleaseSpec, gate: ReleaseGate) =>
    testServiceProgram(rt, slug, active, candidate, gate);
  const updates = async () => (await runner.history(slug, 100)).length;

  it('gated: one update starts the candidate, waits for the gate, moves the route and removes the old release', async () => {
    const before = await updates();
    const seen: { candidate: string; routed: string; containers: string[] }[] = [];
    const { outputs, summary } = await runner.up(
      slug,
      gated(release('r2', 'two'), release('r3', 'three'), async (c) => {
        const own = await eventually(
          () => httpGet(`http://127.0.0.1:${c.hostPort}/`),
          (r) => r.status === 200,
        );
        seen.push({ candidate: own.body, routed: (await viaTraefik()).body, containers: containersOf(slug) });
        return true;
      }),
    );
    // While the gate judged, the candidate answered on its own port and the old release served.
    expect(seen).toHaveLength(1);
    expect(seen[0]?.candidate).toMatch(/^three/);
    expect(seen[0]?.routed).toMatch(/^two/);
    expect(seen[0]?.containers.sort()).toEqual([`${slug}-r2`, `${slug}-r3`]);
    // After it: the route names the candidate, the old release is gone, in exactly one update.
    expect(outputs.promoted?.value).toBe(true);
    expect(outputs.activeHostPort?.value).toBe(outputs.candidateHostPort?.value);
    expect(summary.resourceChanges).toMatchObject({ create: 1, update: 1, delete: 1 });
    expect((await viaTraefik()).body).toMatch(/^three/);
    expect(containersOf(slug)).toEqual([`${slug}-r3`]);
    expect(await updates()).toBe(before + 1);
  });

  it('gated: a gate that says no leaves the serving release and its route; the next update drops the candidate', async () => {
    const { outputs } = await runner.up(
      slug,
      gated(release('r3', 'three'), release('r4', 'four'), async () => false),
    );
    expect(outputs.promoted?.value).toBe(false);
    expect((await viaTraefik()).body).toMatch(/^three/);
    expect(containersOf(slug).sort()).toEqual([`${slug}-r3`, `${slug}-r4`]);
    await runner.up(slug, spec(release('r3', 'three')));
    expect(containersOf(slug)).toEqual([`${slug}-r3`]);
    expect((await viaTraefik()).body).toMatch(/^three/);
  });

  it('gated: a candidate that cannot start fails the update before the gate is asked; nothing else changes', async () => {
    const missing = { ...release('r5', 'five'), image: `${rt.registry.host}/t/no-such-image:1` };
    let asked = 0;
    const err = await runner
      .up(
        slug,
        gated(release('r3', 'three'), missing, async () => {
          asked++;
          return true;
        }),
      )
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(err?.message).toMatch(/^the stack update failed: pull \S+no-such-image:1 failed/);
    expect(asked).toBe(0);
    expect((await viaTraefik()).body).toMatch(/^three/);
    expect(containersOf(slug)).toEqual([`${slug}-r3`]);
  });

  it('a pinned image already on the node starts without a pull: its registry is not asked', async () => {
    const engine = (method: string, api: string) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = http.request({ socketPath: rt.podman.socketPath, method, path: api }, (res) => {
          let text = '';
          res.on('data', (c) => {
            text += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', reject);
        req.end();
      });
    const repo = image.slice(0, image.lastIndexOf(':'));
    expect((await engine('POST', `/images/create?fromImage=${encodeURIComponent(repo)}&tag=1`)).status).toBe(
      200,
    );
    const local = JSON.parse((await engine('GET', `/images/${encodeURIComponent(image)}/json`)).text) as {
      RepoDigests: string[];
    };
    const digest = local.RepoDigests.find((d) => d.startsWith(`${rt.registry.host}/`))?.split('@')[1];
    if (!digest) throw new Error(`no digest of ${image}: ${local.RepoDigests.join(', ')}`);
    // The same image under a registry where nothing listens: a pull of it could only fail.
    const offline = `127.0.0.1:${await freePort()}/t/offline-${process.pid}`;
    const tagged = await engine('POST', `/images/${encodeURIComponent(image)}/tag?repo=${offline}&tag=1`);
    expect(tagged.status).toBe(201);
    const pinned = { ...release('r6', 'six'), image: `${offline}@${digest}` };
    const { outputs } = await runner.up(slug, spec(release('r3', 'three'), pinned));
    const res = await eventually(
      () => httpGet(`http://127.0.0.1:${outputs.candidateHostPort?.value as number}/`),
      (r) => r.status === 200,
    );
    expect(res.body).toMatch(/^six/);
    await runner.up(slug, spec(release('r3', 'three')));
    expect(containersOf(slug)).toEqual([`${slug}-r3`]);
    await engine('DELETE', `/images/${encodeURIComponent(`${offline}:1`)}`);
  });

  it('destroys everything: no container, no route, no stack', async () => {
    await runner.destroy(slug);
    await eventually(viaTraefik, (r) => r.status === 404);
    expect(fs.readdirSync(rt.traefik.routesDir).filter((f) => f.startsWith(slug))).toEqual([]);
    expect(containersOf(slug)).toEqual([]);
    expect(await runner.listStacks()).not.toContain(slug);
  });
});
