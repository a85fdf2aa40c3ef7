import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { type Buildkit, startBuildkit } from '../../core/daemons/buildkit.ts';
import { type PodmanService, startPodmanService } from '../../core/daemons/podman.ts';
import { freePort } from '../../core/daemons/probes.ts';
import { type Registry, startRegistry } from '../../core/daemons/registry.ts';
import { startTraefik, type Traefik } from '../../core/daemons/traefik.ts';
import {
  localServiceProgram,
  type ReleaseGate,
  type ReleaseSpec,
} from '../../tenant-stacks/local/program.ts';
import { repoRoot } from './scratch.ts';

const run = promisify(execFile);

export type TestRuntime = {
  registry: Registry;
  buildkit: Buildkit;
  podman: PodmanService;
  traefik: Traefik;
  traefikPort: number;
  stop: () => Promise<void>;
};

/** The embedded runtime's daemons (registry, buildkitd, podman API, Traefik) under `dir`. */
export async function startTestRuntime(dir: string): Promise<TestRuntime> {
  const registry = await startRegistry({
    bin: 'docker-registry',
    dir: path.join(dir, 'registry'),
    port: await freePort(),
  });
  const traefikPort = await freePort();
  const started = await Promise.allSettled([
    startBuildkit({ bin: 'buildkitd', dir: path.join(dir, 'buildkit'), insecureRegistries: [registry.host] }),
    startPodmanService({ bin: 'podman', dir: path.join(dir, 'podman'), insecureRegistries: [registry.host] }),
    startTraefik({ bin: 'traefik', dir: path.join(dir, 'traefik'), port: traefikPort }),
  ]);
  const daemons = [registry, ...started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))];
  const stop = async () => {
    await Promise.all(daemons.map((d) => d.stop()));
  };
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  const [buildkit, podman, traefik] = daemons.slice(1) as [Buildkit, PodmanService, Traefik];
  return { registry, buildkit, podman, traefik, traefikPort, stop };
}

/** Names of the containers (running or not) labelled `deploy-mcp.test=<slug>`. */
export function containersOf(slug: string): string[] {
  const out = execFileSync('podman', [
    'ps',
    '-a',
    '--filter',
    `label=deploy-mcp.test=${slug}`,
    '--format',
    '{{.Names}}',
  ]);
  return out.toString().split('\n').filter(Boolean).sort();
}

/**
 * Builds the Go hello-server fixture (test/fixtures/hello-server) with BuildKit and pushes it
 * as each of `refs` (one build, several tags).
 */
export async function buildHelloServer(
  rt: Pick<TestRuntime, 'buildkit'>,
  workDir: string,
  refs: string[],
): Promise<void> {
  const context = fs.mkdtempSync(path.join(workDir, 'hello-context-'));
  const fixture = path.join(repoRoot, 'test/fixtures/hello-server');
  fs.copyFileSync(path.join(fixture, 'Dockerfile'), path.join(context, 'Dockerfile'));
  await run('go', ['build', '-o', path.join(context, 'hello-server'), '.'], {
    cwd: fixture,
    env: { ...process.env, CGO_ENABLED: '0' },
  });
  await run('buildctl', [
    '--addr',
    rt.buildkit.address,
    'build',
    '--frontend',
    'dockerfile.v0',
    '--local',
    `context=${context}`,
    '--local',
    `dockerfile=${context}`,
    '--output',
    `type=image,"name=${refs.join(',')}",push=true,registry.insecure=true`,
  ]);
}

/** A tenant-stack program on this runtime for test stack `slug` (containers labelled with it). */
export function testServiceProgram(
  rt: TestRuntime,
  slug: string,
  active?: ReleaseSpec,
  candidate?: ReleaseSpec,
  gate?: ReleaseGate,
) {
  return localServiceProgram({
    ...(gate ? { gate } : {}),
    slug,
    host: `${slug}.localhost`,
    active,
    candidate,
    engineSocket: rt.podman.socketPath,
    routesDir: rt.traefik.routesDir,
    routesApiUrl: rt.traefik.apiUrl,
    labels: { 'deploy-mcp.test': slug },
    network: `dmcp-test-${slug}`,
  });
}
