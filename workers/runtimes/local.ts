import type { OutputMap } from '@pulumi/pulumi/automation/index.js';
import type { ContainerEngine } from '../../core/container-engine.ts';
import { lazyProgram } from '../../tenant-stacks/lazy-program.ts';
import { tenantNetwork } from '../../tenant-stacks/local/network.ts';
import type { LocalServiceSpec, ReleaseSpec } from '../../tenant-stacks/local/program.ts';
import { waitUntilServing } from '../deploy/health.ts';
import { waitForRoute } from './route.ts';
import type { Runtime, RuntimeService } from './runtime.ts';

// Loaded with the first stack update (tenant-stacks/lazy-program.ts).
const localServiceProgram = lazyProgram(
  async () => (await import('../../tenant-stacks/local/program.ts')).localServiceProgram,
);

export type LocalRuntimeOptions = {
  engine: ContainerEngine;
  /** Docker Engine API socket (podman's compat API). */
  engineSocket: string;
  /** Traefik's file-provider directory. */
  routesDir: string;
  /** Traefik's API, to confirm a route switch before the old release goes (optional). */
  routesApiUrl?: string | undefined;
  /** Traefik's web entry point on this host, and the domain apps get names under. */
  ingressPort: number;
  appsDomain: string;
};

/**
 * The embedded runtime: each release a podman container on the tenant's own network, Traefik
 * routing the service's host to the serving one (tenant-stacks/local/).
 */
export class LocalRuntime implements Runtime {
  readonly name = 'local';
  readonly promotesItself = false;

  private readonly o: LocalRuntimeOptions;

  constructor(o: LocalRuntimeOptions) {
    this.o = o;
  }

  program(service: RuntimeService, serving: ReleaseSpec | undefined, candidate: ReleaseSpec | undefined) {
    return localServiceProgram(this.spec(service, serving, candidate));
  }

  private spec(
    service: RuntimeService,
    serving: ReleaseSpec | undefined,
    candidate: ReleaseSpec | undefined,
  ): LocalServiceSpec {
    return {
      slug: service.stackName,
      host: this.host(service),
      active: serving,
      candidate,
      engineSocket: this.o.engineSocket,
      routesDir: this.o.routesDir,
      routesApiUrl: this.o.routesApiUrl,
      labels: { 'deploy-mcp.service': service.id, 'deploy-mcp.user': service.userId },
      network: tenantNetwork(service.userId),
    };
  }

  // One update per release: the gate (the health check, in this process) runs inside it. The
  // candidate's image is pulled meanwhile, while the engine starts up: the container provider's
  // own pull then finds it there (a failed pull here is the provider's to report).
  gatedProgram(
    service: RuntimeService,
    serving: ReleaseSpec | undefined,
    candidate: ReleaseSpec,
    gate: (candidateOutputs: OutputMap) => Promise<boolean>,
  ) {
    this.o.engine.pullImage(candidate.image).catch(() => undefined);
    return localServiceProgram({
      ...this.spec(service, serving, candidate),
      gate: (c) =>
        gate({
          candidateContainerId: { value: c.containerId, secret: false },
          candidateHostPort: { value: c.hostPort, secret: false },
        }),
    });
  }

  // The container provider reads the image's labels itself (tenant-stacks/local/providers.ts).
  async prepare(): Promise<void> {}

  async judge(
    _service: RuntimeService,
    outputs: OutputMap,
    candidate: ReleaseSpec,
    o: { timeoutMs: number; onWait: () => void },
  ) {
    const verdict = await waitUntilServing({
      engine: this.o.engine,
      containerId: outputs.candidateContainerId?.value as string,
      hostPort: outputs.candidateHostPort?.value as number,
      port: candidate.port,
      path: candidate.healthPath ?? '/',
      memoryMb: candidate.memoryMb,
      timeoutMs: o.timeoutMs,
      onWait: o.onWait,
    });
    return verdict.healthy
      ? { healthy: true as const }
      : { healthy: false as const, reason: verdict.reason, logTail: verdict.logTail };
  }

  logs(_service: RuntimeService, outputs: OutputMap, _release: ReleaseSpec, lines: number) {
    const id = (outputs.candidateContainerId?.value ?? outputs.activeContainerId?.value) as
      | string
      | undefined;
    return id ? this.o.engine.logs(id, lines).catch(() => []) : Promise.resolve([]);
  }

  url(service: RuntimeService): string {
    return `http://${this.host(service)}${this.o.ingressPort === 80 ? '' : `:${this.o.ingressPort}`}`;
  }

  // The route names one upstream, and the promotion waited until Traefik applied it.
  waitUntilRouted(service: RuntimeService, release: ReleaseSpec, onWait: () => void): Promise<void> {
    return waitForRoute(this.o.ingressPort, this.host(service), onWait, undefined, release.healthPath);
  }

  async runningReleases(service: RuntimeService): Promise<string[]> {
    const containers = await this.o.engine.listContainers({ 'deploy-mcp.service': service.id });
    return containers.map((c) => c.labels['deploy-mcp.release'] ?? '');
  }

  // A tenant's network is made with its first container and goes with its last (providers.ts).
  async ensureTenant(): Promise<void> {}
  async releaseTenant(): Promise<void> {}

  private host(service: RuntimeService) {
    return `${service.hostLabel}.${this.o.appsDomain}`;
  }
}
