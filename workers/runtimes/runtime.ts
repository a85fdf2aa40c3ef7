import type { OutputMap, PulumiFn } from '@pulumi/pulumi/automation/index.js';
import type { ReleaseSpec } from '../../tenant-stacks/local/program.ts';

/** What a runtime needs to know of a service. */
export type RuntimeService = {
  id: string;
  userId: string;
  /** The service's stack: stable per tenant, project and service. */
  stackName: string;
  /** The DNS label reserved for the service (unique across tenants). */
  hostLabel: string;
};

/** A runtime's judgement of a release a stack update started. */
export type Verdict = { healthy: true } | { healthy: false; reason: string; logTail: string[] };

/**
 * Where services run: the seam between the deploy activities and a platform (the embedded
 * podman + Traefik runtime, or Kubernetes). Above it, MCP tools, statuses, dedupe, supersede,
 * rollback and audit behave the same whatever runs below.
 *
 * A deployment runs through it as: `up(program(serving, candidate))` → `judge` → when unhealthy
 * `up(program(serving))` (the candidate goes, `serving` keeps serving) → else, unless the
 * platform promotes by itself, `up(program(candidate))` → `waitUntilRouted`. A runtime with
 * `gatedProgram` judges inside the first update instead: `up(gatedProgram(serving, candidate,
 * judge))` → when unhealthy `up(program(serving))` → else `waitUntilRouted`.
 */
export interface Runtime {
  readonly name: 'local' | 'kubernetes';
  /**
   * The service stack's program (a pure factory): `serving` takes traffic; `candidate`, when
   * given, runs beside it until judged. Neither: the stack holds nothing.
   */
  program(
    service: RuntimeService,
    serving: ReleaseSpec | undefined,
    candidate: ReleaseSpec | undefined,
  ): PulumiFn;
  /**
   * Optional: the program of a whole release in one stack update. The candidate starts beside
   * `serving`; once it runs, the program asks `gate` (given the candidate's outputs, as `judge`
   * takes them) and, when it answers true, moves traffic to the candidate and removes `serving`
   * in the same update; otherwise `serving` keeps serving and the candidate stays until the next
   * update. Runtimes without it release in separate updates (see above).
   */
  gatedProgram?(
    service: RuntimeService,
    serving: ReleaseSpec | undefined,
    candidate: ReleaseSpec,
    gate: (candidateOutputs: OutputMap) => Promise<boolean>,
  ): PulumiFn;
  /** Reads what a release's program needs from its image (e.g. its labels). Before `program`. */
  prepare(release: ReleaseSpec): Promise<void>;
  /** True when the platform moves traffic to a ready candidate by itself (no promote update). */
  readonly promotesItself: boolean;
  /** Waits until the candidate serves, or says why it will not (exit code, memory, port, …). */
  judge(
    service: RuntimeService,
    outputs: OutputMap,
    candidate: ReleaseSpec,
    o: { timeoutMs: number; onWait: () => void },
  ): Promise<Verdict>;
  /** The last `lines` lines of a release's runtime log. */
  logs(service: RuntimeService, outputs: OutputMap, release: ReleaseSpec, lines: number): Promise<string[]>;
  /** The service's public URL. */
  url(service: RuntimeService): string;
  /** Waits until the public URL reaches `release` of the service, and only it (after a promotion). */
  waitUntilRouted(service: RuntimeService, release: ReleaseSpec, onWait: () => void): Promise<void>;
  /** Keys of the releases that have something running for the service (stray ones included). */
  runningReleases(service: RuntimeService): Promise<string[]>;
  /** Makes what a tenant's service stacks need (Kubernetes: its namespace stack). Idempotent. */
  ensureTenant(userId: string): Promise<void>;
  /** Removes what ensureTenant made, once the tenant has no service left. */
  releaseTenant(userId: string): Promise<void>;
}

/** A route that never came up: the promotion failed after the release was healthy. */
export class RouteTimeoutError extends Error {
  override name = 'RouteTimeoutError';
}
