import * as pulumi from '@pulumi/pulumi';
import { type ContainerInputs, containerProvider, type RouteInputs, routeProvider } from './providers.ts';

/** One release of a service: what a container runs. */
export type ReleaseSpec = {
  /** Stable per release (e.g. the deployment id); part of the container name. */
  key: string;
  image: string;
  env: Record<string, string>;
  port: number;
  memoryMb: number;
  cpuMillis: number;
  /** Path the release must answer below 500 on to be healthy (default "/"); not part of the stack. */
  healthPath?: string;
  /** Host directories mounted in ("host:container:rw": attached embedded SQLite resources). */
  mounts?: string[];
};

/** A service on the embedded runtime (podman + Traefik). */
export type LocalServiceSpec = {
  /** Container and route names start with this (DNS-safe, unique per service). */
  slug: string;
  /** Host Traefik routes to the active release, e.g. "web.localhost". */
  host: string;
  /** The release that serves traffic (undefined before the first healthy deploy). */
  active: ReleaseSpec | undefined;
  /** A release being checked before it takes traffic. */
  candidate: ReleaseSpec | undefined;
  engineSocket: string;
  routesDir: string;
  /** Traefik's API, to confirm a route switch before the old release goes (optional). */
  routesApiUrl?: string | undefined;
  labels: Record<string, string>;
  /** The tenant's container network (tenantNetwork): no path to other tenants' apps. */
  network: string;
  /**
   * Judges the candidate inside the update (see localServiceProgram): called once its container
   * runs; true moves the route to it and removes `active`, false leaves `active` serving.
   */
  gate?: ReleaseGate;
};

export { tenantNetwork } from './network.ts';

/** The candidate's running container, as the gate sees it. */
export type CandidateContainer = { containerId: string; hostPort: number };

/** Decides, while the stack update runs, whether the candidate takes the route. */
export type ReleaseGate = (candidate: CandidateContainer) => Promise<boolean>;

class Container extends pulumi.dynamic.Resource {
  declare readonly containerId: pulumi.Output<string>;
  declare readonly hostPort: pulumi.Output<number>;
  constructor(
    name: string,
    args: { [K in keyof ContainerInputs]: pulumi.Input<ContainerInputs[K]> },
    opts?: pulumi.CustomResourceOptions,
  ) {
    // Outputs echo the inputs; env must stay encrypted in the state there too.
    super(
      containerProvider,
      name,
      { ...args, containerId: undefined, hostPort: undefined },
      {
        ...opts,
        additionalSecretOutputs: ['env'],
      },
    );
  }
}

class Route extends pulumi.dynamic.Resource {
  constructor(
    name: string,
    args: { [K in keyof RouteInputs]: pulumi.Input<RouteInputs[K]> },
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(routeProvider, name, args, opts);
  }
}

/**
 * The tenant stack program (a pure factory): containers for the active and candidate releases
 * and a route to the active one. Env values are Pulumi secrets, encrypted in the stack state.
 *
 * With a `gate` and a candidate, one update does the whole release: the candidate's container
 * starts, the program waits for the gate's verdict on it (the health check, in this process),
 * then either routes to the candidate and leaves `active` out, which the engine deletes at the
 * end of the same update, after the route moved; or keeps `active` and its route as they were
 * (the candidate stays until the caller's next update drops it). A candidate whose container
 * fails to start fails the update before the gate is asked, and nothing else changes.
 */
export function localServiceProgram(spec: LocalServiceSpec): pulumi.automation.PulumiFn {
  const container = (release: ReleaseSpec) =>
    new Container(`release-${release.key}`, {
      socketPath: spec.engineSocket,
      name: `${spec.slug}-${release.key}`,
      image: release.image,
      env: pulumi.secret(
        Object.entries({ ...release.env, PORT: String(release.port) }).map(([k, v]) => `${k}=${v}`),
      ),
      port: release.port,
      memoryMb: release.memoryMb,
      nanoCpus: release.cpuMillis * 1_000_000,
      labels: { ...spec.labels, 'deploy-mcp.release': release.key },
      network: spec.network,
      ...(release.mounts?.length ? { mounts: release.mounts } : {}),
    });
  const route = (to: Container) =>
    new Route('route', {
      routesDir: spec.routesDir,
      name: spec.slug,
      host: spec.host,
      upstream: pulumi.interpolate`http://127.0.0.1:${to.hostPort}`,
      ...(spec.routesApiUrl ? { apiUrl: spec.routesApiUrl } : {}),
    });

  if (spec.gate && spec.candidate) {
    const { gate, candidate: candidateRelease } = spec;
    return async () => {
      const candidate = container(candidateRelease);
      // `up` runs without a preview, so the container's outputs are known here.
      const promoted = pulumi.runtime.isDryRun() ? false : await gate(await running(candidate));
      const active = promoted ? candidate : spec.active && container(spec.active);
      if (active) route(active);
      return {
        activeHostPort: active?.hostPort,
        candidateHostPort: candidate.hostPort,
        activeContainerId: active?.containerId,
        candidateContainerId: candidate.containerId,
        promoted,
      };
    };
  }

  return async () => {
    const active = spec.active && container(spec.active);
    const candidate = spec.candidate && container(spec.candidate);
    if (active) route(active);
    return {
      activeHostPort: active?.hostPort,
      candidateHostPort: candidate?.hostPort,
      activeContainerId: active?.containerId,
      candidateContainerId: candidate?.containerId,
    };
  };
}

/**
 * The container once the engine made it. A container that fails to start fails the update
 * itself (the CLI ends the update; this promise then never settles, and nothing waits on it).
 */
function running(c: Container): Promise<CandidateContainer> {
  return new Promise((resolve) => {
    pulumi.all([c.containerId, c.hostPort]).apply(([containerId, hostPort]) => {
      resolve({ containerId, hostPort });
    });
  });
}
