import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { ReleaseSpec } from '../local/program.ts';
import { LABELS, tenantNamespace } from './names.ts';
import { clusterProvider, type KubernetesCluster } from './provider.ts';

/** A release on Kubernetes: the local runtime's release plus what the image says of itself. */
export type KubernetesReleaseSpec = ReleaseSpec & {
  /** The image carries io.deploy-mcp.read-only-root=true: the app writes only to /tmp and HOME. */
  readOnlyRoot: boolean;
};

/** How the Ingress gets its certificate. */
export type IngressTls =
  /** A TLS Secret in the tenant's namespace; without secretName, the ingress controller's default certificate (e.g. a wildcard). */
  | { kind: 'secret'; secretName?: string | undefined }
  /** A certificate cert-manager issues for the host into the Secret "<slug>-tls". */
  | { kind: 'cert-manager'; issuer: string; issuerKind?: 'ClusterIssuer' | 'Issuer' | undefined };

/** How long `up` waits for a release to become ready, and whether it waits at all. */
export type RolloutOptions = {
  /** Seconds `up` waits for the new pod to be ready before it fails (pulumi.com/timeoutSeconds). */
  timeoutSeconds: number;
  /** The Deployment's progressDeadlineSeconds: after it, the cluster marks the rollout failed. */
  progressDeadlineSeconds: number;
  /** false: `up` returns once the objects are accepted (pulumi.com/skipAwait) and the caller watches the rollout. */
  await: boolean;
};

/** Waits about as long as the local runtime's health check (DEPLOY_MCP_HEALTH_TIMEOUT_SECONDS) plus an image pull. */
export const ROLLOUT_DEFAULTS: RolloutOptions = {
  timeoutSeconds: 120,
  progressDeadlineSeconds: 120,
  await: true,
};

/** One service in its own stack, in its tenant's namespace (made by the tenant stack first). */
export type KubernetesServiceSpec = {
  /** The cluster (the same one as the tenant stack's). */
  cluster: KubernetesCluster;
  /** The owner's user id: the namespace (tenantNamespace) and the deploy-mcp.user label. */
  userId: string;
  /** The service's id: the deploy-mcp.service label, which the Deployment selects its pods by. */
  serviceId: string;
  /** Name of the Deployment, Service and Ingress: a DNS-1123 label unique in the namespace (e.g. the stack name). */
  slug: string;
  /** The release to run; a new key rolls the Deployment out, an earlier release rolls it back. */
  release: KubernetesReleaseSpec;
  /** DNS label of the service's URL (Service.hostLabel). */
  hostLabel: string;
  /** The apps domain: the Ingress host is <hostLabel>.<appsDomain>. */
  appsDomain: string;
  /** The ingress controller's IngressClass (e.g. "traefik"). */
  ingressClassName: string;
  /** TLS for the host; absent, the URL is plain http. */
  tls?: IngressTls | undefined;
  /** Annotations the ingress controller needs on the Ingress (e.g. Traefik's router entry points). */
  ingressAnnotations?: Record<string, string> | undefined;
  /** Port of the public URL when the ingress controller is not on 80/443 (test clusters). */
  publicPort?: number | undefined;
  /** Changes to ROLLOUT_DEFAULTS. */
  rollout?: Partial<RolloutOptions> | undefined;
  /** Share of cpuMillis requested from the scheduler (default 1: Guaranteed); the limit is always cpuMillis. */
  cpuRequestRatio?: number | undefined;
};

/** Apps run as this user and group (as on the local runtime). */
export const APP_UID = 10001;
/** HOME of apps on a read-only root filesystem (an emptyDir), unless their env sets HOME. */
export const APP_HOME = '/home/app';
/** Size of each writable emptyDir (/tmp, HOME). */
const SCRATCH_SIZE = '256Mi';
/** A pinned image: "<repo>@sha256:<64 hex>". */
const PINNED_IMAGE = /^[^@\s]+@sha256:[0-9a-f]{64}$/;

/**
 * The service stack program (a pure factory): a Secret with the env, a Deployment of the release
 * (one replica; rolling update that starts the new pod beside the old one and removes the old one
 * only once the new one is ready), a ClusterIP Service (80 → PORT) and an Ingress for the host.
 *
 * Probes are TCP on PORT: the local runtime counts any HTTP answer (404 and 500 too) as alive,
 * an httpGet probe only 200–399, so an app without a "/" route would never be ready. The
 * startup probe allows as long as the rollout may take, so an app that never listens shows as
 * running-but-not-ready (not killed by the kubelet, which would read as a crash).
 */
/** Seconds a replaced pod keeps serving after it is marked for deletion (see the Deployment). */
export const PRE_STOP_SECONDS = 5;

export function kubernetesServiceProgram(spec: KubernetesServiceSpec): pulumi.automation.PulumiFn {
  const { release } = spec;
  if (!PINNED_IMAGE.test(release.image))
    throw new Error(`the release image must be pinned by digest (repo@sha256:…), got ${release.image}`);
  return async () => {
    const provider = clusterProvider(spec.cluster);
    const rollout = { ...ROLLOUT_DEFAULTS, ...spec.rollout };
    const namespace = tenantNamespace(spec.userId);
    const selector = { [LABELS.service]: spec.serviceId };
    const labels = { ...selector, [LABELS.user]: spec.userId };
    const host = `${spec.hostLabel}.${spec.appsDomain}`;
    const port = release.port;

    // Auto-named: a change of env replaces the Secret under a new name, which changes the pod
    // template, so the new env always comes with a rollout; the old Secret goes after it.
    const env = new k8s.core.v1.Secret(
      `${spec.slug}-env`,
      { metadata: { namespace, labels }, type: 'Opaque', stringData: pulumi.secret(release.env) },
      { provider },
    );

    // PORT (and HOME) win over the env's own: `env` takes precedence over `envFrom`.
    const homeVolume = release.readOnlyRoot;
    const ownEnv = [
      { name: 'PORT', value: String(port) },
      ...(homeVolume && !('HOME' in release.env) ? [{ name: 'HOME', value: APP_HOME }] : []),
    ];
    const volumes = [
      { name: 'tmp', emptyDir: { sizeLimit: SCRATCH_SIZE } },
      ...(homeVolume ? [{ name: 'home', emptyDir: { sizeLimit: SCRATCH_SIZE } }] : []),
    ];
    const volumeMounts = [
      { name: 'tmp', mountPath: '/tmp' },
      ...(homeVolume ? [{ name: 'home', mountPath: APP_HOME }] : []),
    ];
    const tcp = { tcpSocket: { port } };
    const cpuRequest = Math.max(1, Math.round(release.cpuMillis * (spec.cpuRequestRatio ?? 1)));

    const deployment = new k8s.apps.v1.Deployment(
      spec.slug,
      {
        metadata: {
          name: spec.slug,
          namespace,
          labels,
          annotations: {
            'pulumi.com/timeoutSeconds': String(rollout.timeoutSeconds),
            ...(rollout.await ? {} : { 'pulumi.com/skipAwait': 'true' }),
          },
        },
        spec: {
          replicas: 1,
          selector: { matchLabels: selector },
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
          progressDeadlineSeconds: rollout.progressDeadlineSeconds,
          template: {
            metadata: { labels: { ...labels, [LABELS.release]: release.key } },
            spec: {
              automountServiceAccountToken: false,
              // No <SERVICE>_PORT… variables for every Service in the namespace.
              enableServiceLinks: false,
              securityContext: {
                runAsNonRoot: true,
                runAsUser: APP_UID,
                runAsGroup: APP_UID,
                seccompProfile: { type: 'RuntimeDefault' },
              },
              containers: [
                {
                  name: 'app',
                  image: release.image,
                  imagePullPolicy: 'IfNotPresent',
                  ports: [{ name: 'http', containerPort: port, protocol: 'TCP' }],
                  env: ownEnv,
                  envFrom: [{ secretRef: { name: env.metadata.name } }],
                  resources: {
                    requests: { cpu: `${cpuRequest}m`, memory: `${release.memoryMb}Mi` },
                    limits: { cpu: `${release.cpuMillis}m`, memory: `${release.memoryMb}Mi` },
                  },
                  securityContext: {
                    allowPrivilegeEscalation: false,
                    capabilities: { drop: ['ALL'] },
                    readOnlyRootFilesystem: release.readOnlyRoot,
                  },
                  startupProbe: {
                    ...tcp,
                    periodSeconds: 1,
                    failureThreshold: Math.max(rollout.timeoutSeconds, rollout.progressDeadlineSeconds),
                  },
                  readinessProbe: { ...tcp, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 2 },
                  livenessProbe: { ...tcp, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 },
                  // A replaced pod keeps serving while the ingress controller learns it is going
                  // (endpoint updates reach Traefik within its 2 s throttle): no failed request
                  // during a rollout. The kubelet sleeps itself: the image needs no `sleep`.
                  lifecycle: { preStop: { sleep: { seconds: PRE_STOP_SECONDS } } },
                  volumeMounts,
                },
              ],
              volumes,
            },
          },
        },
      },
      { provider },
    );

    // Their readiness is the Deployment's: awaiting them would only wait longer (a Service for
    // endpoints, an Ingress for a status not every controller reports).
    const skipAwait = { 'pulumi.com/skipAwait': 'true' };
    const service = new k8s.core.v1.Service(
      spec.slug,
      {
        metadata: { name: spec.slug, namespace, labels, annotations: skipAwait },
        spec: {
          type: 'ClusterIP',
          selector,
          ports: [{ name: 'http', port: 80, targetPort: port, protocol: 'TCP' }],
        },
      },
      { provider },
    );

    const tls = spec.tls;
    const issuerAnnotation =
      tls?.kind === 'cert-manager'
        ? {
            [tls.issuerKind === 'Issuer' ? 'cert-manager.io/issuer' : 'cert-manager.io/cluster-issuer']:
              tls.issuer,
          }
        : {};
    const tlsSecret = tls?.kind === 'cert-manager' ? `${spec.slug}-tls` : tls?.secretName;
    const ingress = new k8s.networking.v1.Ingress(
      spec.slug,
      {
        metadata: {
          name: spec.slug,
          namespace,
          labels,
          annotations: { ...spec.ingressAnnotations, ...issuerAnnotation, ...skipAwait },
        },
        spec: {
          ingressClassName: spec.ingressClassName,
          rules: [
            {
              host,
              http: {
                paths: [
                  {
                    path: '/',
                    pathType: 'Prefix',
                    backend: { service: { name: service.metadata.name, port: { number: 80 } } },
                  },
                ],
              },
            },
          ],
          ...(tls ? { tls: [{ hosts: [host], ...(tlsSecret ? { secretName: tlsSecret } : {}) }] } : {}),
        },
      },
      { provider },
    );

    const scheme = tls ? 'https' : 'http';
    return {
      namespace,
      deploymentName: deployment.metadata.name,
      serviceName: service.metadata.name,
      ingressName: ingress.metadata.name,
      ingressHost: host,
      releaseKey: release.key,
      url: `${scheme}://${host}${spec.publicPort ? `:${spec.publicPort}` : ''}`,
    };
  };
}
