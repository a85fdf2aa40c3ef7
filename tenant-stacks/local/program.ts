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
};

export { tenantNetwork } from './network.ts';

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
 */
export function localServiceProgram(spec: LocalServiceSpec): pulumi.automation.PulumiFn {
  return async () => {
    const containers: Record<string, Container> = {};
    for (const [role, release] of [
      ['active', spec.active],
      ['candidate', spec.candidate],
    ] as const) {
      if (!release) continue;
      containers[role] = new Container(`release-${release.key}`, {
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
    }
    const active = containers.active;
    if (active) {
      new Route('route', {
        routesDir: spec.routesDir,
        name: spec.slug,
        host: spec.host,
        upstream: pulumi.interpolate`http://127.0.0.1:${active.hostPort}`,
        ...(spec.routesApiUrl ? { apiUrl: spec.routesApiUrl } : {}),
      });
    }
    return {
      activeHostPort: active?.hostPort,
      candidateHostPort: containers.candidate?.hostPort,
      activeContainerId: active?.containerId,
      candidateContainerId: containers.candidate?.containerId,
    };
  };
}
