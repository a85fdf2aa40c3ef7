import type { OutputMap } from '@pulumi/pulumi/automation/index.js';
import { clusterAccess, KubeClient } from '../../core/kubernetes/client.ts';
import type { ServiceAccountRef } from '../../tenant-stacks/kubernetes/deployer-access.ts';
import { LABELS, tenantNamespace, tenantStackName } from '../../tenant-stacks/kubernetes/names.ts';
import type { KubernetesCluster } from '../../tenant-stacks/kubernetes/provider.ts';
import type { IngressTls } from '../../tenant-stacks/kubernetes/service-program.ts';
import { lazyProgram } from '../../tenant-stacks/lazy-program.ts';
import type { ReleaseSpec } from '../../tenant-stacks/local/program.ts';
import type { TenantStackRunner } from '../../tenant-stacks/runner.ts';
import { explainCrash } from '../deploy/diagnosis.ts';
import { requestStatus, serverErrorReason } from '../deploy/health.ts';
import { imageLabels } from './image-labels.ts';
import { diagnosePods, type Pod, type ReplicaSetConditions } from './pod-diagnosis.ts';
import { waitForRoute } from './route.ts';
import { RouteTimeoutError, type Runtime, type RuntimeService, type Verdict } from './runtime.ts';

// Loaded with the first stack update (tenant-stacks/lazy-program.ts).
const kubernetesServiceProgram = lazyProgram(
  async () => (await import('../../tenant-stacks/kubernetes/service-program.ts')).kubernetesServiceProgram,
);
const kubernetesTenantProgram = lazyProgram(
  async () => (await import('../../tenant-stacks/kubernetes/tenant-program.ts')).kubernetesTenantProgram,
);

export type KubernetesRuntimeOptions = {
  cluster: KubernetesCluster;
  runner: TenantStackRunner;
  /** Ingress class of the cluster's ingress controller (Traefik). */
  ingressClass: string;
  /** Namespace of the ingress controller's pods (tenants' NetworkPolicies let it in). */
  ingressNamespace: string;
  appsDomain: string;
  /** Port the ingress serves apps on from this host (0/80: none in URLs). */
  ingressPort: number;
  /** TLS for Ingresses (a secret or a cert-manager issuer); none: plain HTTP. */
  tls?: IngressTls | undefined;
  /** The registry the cluster pulls from, when it names ours differently (`host:port`). */
  clusterRegistry?: string | undefined;
  /** The registry builds push to (`host:port`): image references are rewritten to clusterRegistry. */
  registryHost: string;
  /**
   * The deployer's ServiceAccount when it has the narrow access of deployer-access.ts: each
   * tenant namespace binds it the tenant role, and a tenant is ready once that grant applies.
   */
  deployer?: ServiceAccountRef | undefined;
  /** The nodes' private network, admitted to tenants' pods (a host-network ingress controller). */
  nodeCidr?: string | undefined;
  /** The pod network, cut out of nodeCidr. */
  podCidr?: string | undefined;
};

/** How long a new tenant namespace's RoleBinding may take to reach the API server's authorizer. */
const GRANT_WAIT_MS = 15_000;

/** How long the ingress controller may take to apply an endpoint change (Traefik's throttle, 2 s). */
const INGRESS_UPDATE_MS = 2500;

/** How long a ready release's health path may answer 5xx before it fails (as the local runtime). */
const HTTP_ERROR_WINDOW_MS = 10_000;

/** How long a ready pod may give the deployer no HTTP answer before the port alone decides. */
const HTTP_SILENT_GRACE_MS = 10_000;

/** Image label saying the app writes only to /tmp and HOME (workers/build/dockerfile.ts). */
const READ_ONLY_ROOT_LABEL = 'io.deploy-mcp.read-only-root';

/**
 * Services on Kubernetes: per tenant a namespace stack (tenant-<userId>), per service a
 * Deployment, Service and Ingress (tenant-stacks/kubernetes/). The cluster rolls a new
 * release out beside the serving one and moves traffic when it is ready (maxUnavailable 0),
 * so there is no promote update; a release that fails is rolled back by re-applying the
 * serving one. Health comes from the pods' own status and then their health path (below 500),
 * logs from the pod log API.
 */
export class KubernetesRuntime implements Runtime {
  readonly name = 'kubernetes';
  readonly promotesItself = true;
  private readonly api: KubeClient;
  private readonly readOnly = new Map<string, boolean>();

  private readonly o: KubernetesRuntimeOptions;

  constructor(o: KubernetesRuntimeOptions) {
    this.o = o;
    this.api = new KubeClient(clusterAccess(o.cluster.kubeconfig, o.cluster.context));
  }

  program(service: RuntimeService, serving: ReleaseSpec | undefined, candidate: ReleaseSpec | undefined) {
    const release = candidate ?? serving;
    if (!release) return async () => ({});
    return kubernetesServiceProgram({
      cluster: this.o.cluster,
      userId: service.userId,
      serviceId: service.id,
      slug: service.stackName,
      release: {
        ...release,
        image: this.clusterImage(release.image),
        readOnlyRoot: this.readOnly.get(release.image) ?? false,
      },
      hostLabel: service.hostLabel,
      appsDomain: this.o.appsDomain,
      ingressClassName: this.o.ingressClass,
      tls: this.o.tls,
      ...(this.o.ingressPort && this.o.ingressPort !== 80 ? { publicPort: this.o.ingressPort } : {}),
      // The runtime watches the rollout itself (judge): it knows why a pod fails.
      rollout: { await: false },
    });
  }

  /** Reads the image's labels once (read-only root or not). */
  async prepare(release: ReleaseSpec): Promise<void> {
    if (this.readOnly.has(release.image)) return;
    const labels = await imageLabels(release.image).catch(() => ({}) as Record<string, string>);
    // Bounded: the oldest entry goes first (a Map iterates in insertion order).
    if (this.readOnly.size >= 1000) this.readOnly.delete(this.readOnly.keys().next().value as string);
    this.readOnly.set(release.image, labels[READ_ONLY_ROOT_LABEL] === 'true');
  }

  async judge(
    service: RuntimeService,
    _outputs: OutputMap,
    candidate: ReleaseSpec,
    o: { timeoutMs: number; onWait: () => void },
  ): Promise<Verdict> {
    const started = Date.now();
    const ns = tenantNamespace(service.userId);
    const path = candidate.healthPath ?? '/';
    let failingSince: number | undefined;
    let silentSince: number | undefined;
    while (Date.now() - started < o.timeoutMs) {
      o.onWait();
      const pods = await this.pods(service, candidate.key);
      const replicaSet = pods.length ? undefined : await this.replicaSetConditions(service, candidate.key);
      const verdict = diagnosePods(pods, {
        memoryMb: candidate.memoryMb,
        waitedMs: Date.now() - started,
        replicaSet,
      });
      if (verdict.state === 'ready') {
        // Ready means the port accepts (TCP probes: kubelet's HTTP probes fail 4xx too); healthy
        // means the health path answers below 500, asked of a ready pod directly (the tenant's
        // NetworkPolicy lets the deployer's worker in: tenant-program.ts).
        const ip = pods.find((p) => p.status?.containerStatuses?.every((c) => c.ready))?.status?.podIP;
        const answer = ip ? await requestStatus(ip, candidate.port, path) : undefined;
        const now = Date.now();
        if (answer && answer.status < 500) return { healthy: true };
        if (answer) {
          silentSince = undefined;
          failingSince ??= now;
          if (now - failingSince >= HTTP_ERROR_WINDOW_MS) {
            return {
              healthy: false,
              reason: serverErrorReason(path, answer.line, HTTP_ERROR_WINDOW_MS),
              logTail: await this.podLogs(ns, pods, 100, false),
            };
          }
        } else {
          // The pod's port accepts (kubelet's probe) but the deployer gets no HTTP answer: a
          // network between them it cannot cross, or an app that does not speak HTTP there. The
          // port is then all it can judge by, as before this check.
          failingSince = undefined;
          silentSince ??= now;
          if (now - silentSince >= HTTP_SILENT_GRACE_MS) return { healthy: true };
        }
      } else if (verdict.state === 'failed') {
        const logTail = await this.podLogs(ns, pods, 100, verdict.crashed);
        // A crash quotes the log line that says why (deploy/diagnosis.ts), as on the local runtime.
        const reason = verdict.crashed ? explainCrash(verdict.reason, logTail) : verdict.reason;
        return { healthy: false, reason, logTail };
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const pods = await this.pods(service, candidate.key);
    return {
      healthy: false,
      reason: `the app did not become ready on PORT=${candidate.port} within ${Math.round(o.timeoutMs / 1000)} s`,
      logTail: await this.podLogs(ns, pods, 100, false),
    };
  }

  async logs(service: RuntimeService, _outputs: OutputMap, release: ReleaseSpec, lines: number) {
    return this.podLogs(tenantNamespace(service.userId), await this.pods(service, release.key), lines, false);
  }

  url(service: RuntimeService): string {
    const scheme = this.o.tls ? 'https' : 'http';
    const port =
      this.o.ingressPort && this.o.ingressPort !== 80 && this.o.ingressPort !== 443
        ? `:${this.o.ingressPort}`
        : '';
    return `${scheme}://${service.hostLabel}.${this.o.appsDomain}${port}`;
  }

  /**
   * Waits until the Service's ready endpoints are the release's pods alone (the replaced ones
   * are leaving: they keep serving through their preStop sleep), then for the ingress
   * controller to apply that (Traefik throttles provider updates to one per 2 s), then until
   * the host answers through it.
   */
  async waitUntilRouted(service: RuntimeService, release: ReleaseSpec, onWait: () => void): Promise<void> {
    const ns = tenantNamespace(service.userId);
    const deadline = Date.now() + 60_000;
    for (;;) {
      onWait();
      const slices = await this.api.get<{
        items: { endpoints?: { conditions?: { ready?: boolean }; targetRef?: { name?: string } }[] }[];
      }>(
        `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices?labelSelector=${encodeURIComponent(`kubernetes.io/service-name=${service.stackName}`)}`,
      );
      const ready = (slices?.items ?? [])
        .flatMap((s) => s.endpoints ?? [])
        .filter((e) => e.conditions?.ready)
        .map((e) => e.targetRef?.name ?? '');
      const ours = new Set((await this.pods(service, release.key)).map((p) => p.metadata.name));
      if (ready.length > 0 && ready.every((name) => ours.has(name))) break;
      if (Date.now() > deadline)
        throw new RouteTimeoutError(`the service's endpoints did not move to the new release within 60 s`);
      await new Promise((r) => setTimeout(r, 500));
    }
    await new Promise((r) => setTimeout(r, INGRESS_UPDATE_MS));
    await waitForRoute(this.o.ingressPort, `${service.hostLabel}.${this.o.appsDomain}`, onWait);
  }

  async runningReleases(service: RuntimeService): Promise<string[]> {
    return [...new Set((await this.pods(service)).map((p) => p.metadata.labels?.[LABELS.release] ?? ''))];
  }

  async ensureTenant(userId: string): Promise<void> {
    const name = tenantNamespace(userId);
    const ns = await this.api.get<{ metadata: { labels?: Record<string, string> } }>(
      `/api/v1/namespaces/${name}`,
    );
    if (
      ns?.metadata.labels?.['pod-security.kubernetes.io/enforce'] === 'restricted' &&
      (await this.granted(name))
    )
      return;
    await this.o.runner.up(
      tenantStackName(userId),
      kubernetesTenantProgram({
        cluster: this.o.cluster,
        userId,
        ingressNamespace: this.o.ingressNamespace,
        deployer: this.o.deployer,
        nodeCidr: this.o.nodeCidr,
        podCidr: this.o.podCidr,
      }),
    );
    // RBAC applies a new RoleBinding shortly after it is stored: the service's stack needs it.
    const deadline = Date.now() + GRANT_WAIT_MS;
    while (!(await this.granted(name))) {
      if (Date.now() > deadline)
        throw new Error(`the deployer's role binding in namespace ${name} did not take effect within 15 s`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Whether the deployer's tenant role applies in `namespace` (always, when it has no narrow access). */
  private async granted(namespace: string): Promise<boolean> {
    if (!this.o.deployer) return true;
    const review = await this.api.post<{ status?: { allowed?: boolean } }>(
      '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
      {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SelfSubjectAccessReview',
        spec: { resourceAttributes: { namespace, verb: 'create', resource: 'secrets' } },
      },
    );
    return review.status?.allowed === true;
  }

  async releaseTenant(userId: string): Promise<void> {
    await this.o.runner.destroy(tenantStackName(userId));
  }

  private clusterImage(image: string): string {
    const { clusterRegistry, registryHost } = this.o;
    return clusterRegistry && image.startsWith(`${registryHost}/`)
      ? `${clusterRegistry}${image.slice(registryHost.length)}`
      : image;
  }

  private async pods(service: RuntimeService, releaseKey?: string): Promise<Pod[]> {
    const selector = [
      `${LABELS.service}=${service.id}`,
      ...(releaseKey ? [`${LABELS.release}=${releaseKey}`] : []),
    ];
    const list = await this.api.get<{ items: Pod[] }>(
      `/api/v1/namespaces/${tenantNamespace(service.userId)}/pods?labelSelector=${encodeURIComponent(selector.join(','))}`,
    );
    return list?.items ?? [];
  }

  private async replicaSetConditions(
    service: RuntimeService,
    releaseKey: string,
  ): Promise<ReplicaSetConditions> {
    const list = await this.api.get<{
      items: {
        spec?: { template?: { metadata?: { labels?: Record<string, string> } } };
        status?: { conditions?: ReplicaSetConditions };
      }[];
    }>(
      `/apis/apps/v1/namespaces/${tenantNamespace(service.userId)}/replicasets?labelSelector=${encodeURIComponent(`${LABELS.service}=${service.id}`)}`,
    );
    const rs = list?.items.find((r) => r.spec?.template?.metadata?.labels?.[LABELS.release] === releaseKey);
    return rs?.status?.conditions ?? [];
  }

  /** The last lines of the app container's log in the newest pod (the crashed run's, after a crash). */
  private async podLogs(ns: string, pods: Pod[], lines: number, previous: boolean): Promise<string[]> {
    const pod = [...pods].sort((a, b) =>
      (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? ''),
    )[0];
    if (!pod) return [];
    const path = `/api/v1/namespaces/${ns}/pods/${pod.metadata.name}/log?container=app&tailLines=${lines}`;
    const text =
      (previous ? await this.api.text(`${path}&previous=true`).catch(() => '') : '') ||
      (await this.api.text(path).catch(() => ''));
    return text.split('\n').filter((l, i, all) => l !== '' || i < all.length - 1);
  }
}
