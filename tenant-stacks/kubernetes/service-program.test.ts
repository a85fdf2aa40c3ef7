import { describe, expect, it } from 'vitest';
import { isSecret, MOCK_PROVIDER_ID, one, type Registered, runWithMocks } from './pulumi-mocks.ts';
import { type KubernetesServiceSpec, kubernetesServiceProgram } from './service-program.ts';

const userId = 'cm5x8q2k40000abcdxyz12345';
const serviceId = 'cm5x8q2k40001svcxyz123456';
const namespace = `tenant-${userId}`;
const image = `registry.internal:5000/t/svc-0123456789abcdef0123@sha256:${'ab12'.repeat(16)}`;
const kubeconfig = 'apiVersion: v1\nkind: Config\nusers: [{name: admin, user: {token: s3cr3t}}]\n';

function specWith(changes: Partial<KubernetesServiceSpec> = {}): KubernetesServiceSpec {
  return {
    cluster: { kubeconfig },
    userId,
    serviceId,
    slug: 'svc-0123456789abcdef0123',
    release: {
      key: 'abcdef123456',
      image,
      env: { DATABASE_URL: 'postgres://u:hunter2@db/app', API_TOKEN: 'tok-42' },
      port: 3000,
      memoryMb: 512,
      cpuMillis: 500,
      readOnlyRoot: true,
    },
    hostLabel: 'web-alice',
    appsDomain: 'apps.example.com',
    ingressClassName: 'traefik',
    ...changes,
  };
}

type Container = Record<string, unknown> & { env: { name: string; value: string }[] };
type PodSpec = Record<string, unknown> & { containers: Container[]; volumes: unknown[] };
function deploymentOf(resources: Registered[]) {
  const d = one(resources, 'kubernetes:apps/v1:Deployment');
  const spec = d.inputs.spec as Record<string, unknown> & {
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
  const pod = spec.template.spec;
  return { d, spec, pod, app: pod.containers[0] as Container };
}
const metadataOf = (r: Registered) =>
  r.inputs.metadata as {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
const specOf = (r: Registered) => r.inputs.spec as Record<string, unknown>;

describe('kubernetesServiceProgram (pulumi.runtime.setMocks)', () => {
  it('keeps the env in a Secret of secret values, and nowhere else', async () => {
    const { resources } = await runWithMocks(kubernetesServiceProgram(specWith()));
    const secret = one(resources, 'kubernetes:core/v1:Secret');
    expect(metadataOf(secret).namespace).toBe(namespace);
    expect(metadataOf(secret).name).toBeUndefined(); // auto-named: a new env gets a new Secret
    expect(isSecret(secret.inputs.stringData)).toBe(true);
    expect((secret.inputs.stringData as { value: unknown }).value).toEqual({
      DATABASE_URL: 'postgres://u:hunter2@db/app',
      API_TOKEN: 'tok-42',
    });
    const elsewhere = JSON.stringify(resources.filter((r) => r !== secret));
    expect(elsewhere).not.toContain('hunter2');
    expect(elsewhere).not.toContain('tok-42');

    const { app } = deploymentOf(resources);
    expect(app.envFrom).toEqual([{ secretRef: { name: 'svc-0123456789abcdef0123-env-0a1b2c3d' } }]);
  });

  it('runs the image by digest, with PORT, and requests and limits from memoryMb and cpuMillis', async () => {
    const { resources } = await runWithMocks(kubernetesServiceProgram(specWith()));
    const { d, spec, pod, app } = deploymentOf(resources);
    expect(metadataOf(d)).toMatchObject({ name: 'svc-0123456789abcdef0123', namespace });
    expect(spec.replicas).toBe(1);
    expect(pod.containers).toHaveLength(1);
    expect(app.image).toBe(image);
    expect(app.ports).toEqual([{ name: 'http', containerPort: 3000, protocol: 'TCP' }]);
    expect(app.env).toContainEqual({ name: 'PORT', value: '3000' });
    expect(app.resources).toEqual({
      requests: { cpu: '500m', memory: '512Mi' },
      limits: { cpu: '500m', memory: '512Mi' },
    });

    const shared = await runWithMocks(kubernetesServiceProgram(specWith({ cpuRequestRatio: 0.25 })));
    expect(deploymentOf(shared.resources).app.resources).toEqual({
      requests: { cpu: '125m', memory: '512Mi' },
      limits: { cpu: '500m', memory: '512Mi' },
    });
  });

  it('refuses an image that is not pinned by digest', () => {
    const spec = specWith();
    expect(() =>
      kubernetesServiceProgram({ ...spec, release: { ...spec.release, image: 'registry/t/app:latest' } }),
    ).toThrow(/pinned by digest/);
  });

  it('probes PORT over TCP: readiness, liveness, and a startup probe as long as the rollout may take', async () => {
    const { resources } = await runWithMocks(
      kubernetesServiceProgram(specWith({ rollout: { timeoutSeconds: 90, progressDeadlineSeconds: 60 } })),
    );
    const { app } = deploymentOf(resources);
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe'])
      expect(app[probe], probe).toMatchObject({ tcpSocket: { port: 3000 } });
    expect(app.startupProbe).toEqual({ tcpSocket: { port: 3000 }, periodSeconds: 1, failureThreshold: 90 });
    expect(app.readinessProbe).toMatchObject({ periodSeconds: 5 });
    expect(app.livenessProbe).toMatchObject({ periodSeconds: 10, failureThreshold: 3 });
  });

  it('runs as uid 10001, non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp, no token', async () => {
    const { resources } = await runWithMocks(kubernetesServiceProgram(specWith()));
    const { pod, app } = deploymentOf(resources);
    expect(pod.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(app.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      readOnlyRootFilesystem: true,
    });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.enableServiceLinks).toBe(false);
  });

  it('gives a read-only image writable /tmp and HOME, and a writable one its root and /tmp', async () => {
    const readOnly = deploymentOf((await runWithMocks(kubernetesServiceProgram(specWith()))).resources);
    expect(readOnly.pod.volumes).toEqual([
      { name: 'tmp', emptyDir: { sizeLimit: '256Mi' } },
      { name: 'home', emptyDir: { sizeLimit: '256Mi' } },
    ]);
    expect(readOnly.app.volumeMounts).toEqual([
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'home', mountPath: '/home/app' },
    ]);
    expect(readOnly.app.env).toEqual([
      { name: 'PORT', value: '3000' },
      { name: 'HOME', value: '/home/app' },
    ]);

    const base = specWith();
    const writable = deploymentOf(
      (
        await runWithMocks(
          kubernetesServiceProgram({ ...base, release: { ...base.release, readOnlyRoot: false } }),
        )
      ).resources,
    );
    expect(writable.app.securityContext).toMatchObject({ readOnlyRootFilesystem: false });
    expect(writable.pod.volumes).toEqual([{ name: 'tmp', emptyDir: { sizeLimit: '256Mi' } }]);
    expect(writable.app.volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }]);
    expect(writable.app.env).toEqual([{ name: 'PORT', value: '3000' }]);

    // An env that sets HOME keeps it (env would override envFrom).
    const ownHome = deploymentOf(
      (
        await runWithMocks(
          kubernetesServiceProgram({
            ...base,
            release: { ...base.release, env: { HOME: '/tmp/home' } },
          }),
        )
      ).resources,
    );
    expect(ownHome.app.env).toEqual([{ name: 'PORT', value: '3000' }]);
  });

  it('rolls out beside the serving pod and waits for it as long as the spec says (or not at all)', async () => {
    const { resources } = await runWithMocks(kubernetesServiceProgram(specWith()));
    const { d, spec } = deploymentOf(resources);
    expect(spec.strategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
    });
    expect(spec.progressDeadlineSeconds).toBe(120);
    expect(metadataOf(d).annotations).toEqual({ 'pulumi.com/timeoutSeconds': '120' });

    const custom = deploymentOf(
      (
        await runWithMocks(
          kubernetesServiceProgram(
            specWith({ rollout: { timeoutSeconds: 45, progressDeadlineSeconds: 30, await: false } }),
          ),
        )
      ).resources,
    );
    expect(custom.spec.progressDeadlineSeconds).toBe(30);
    expect(metadataOf(custom.d).annotations).toEqual({
      'pulumi.com/timeoutSeconds': '45',
      'pulumi.com/skipAwait': 'true',
    });
  });

  it('selects pods by service, and labels every object with service and user, the pods with the release', async () => {
    const { resources } = await runWithMocks(kubernetesServiceProgram(specWith()));
    const { spec } = deploymentOf(resources);
    expect(spec.selector).toEqual({ matchLabels: { 'deploy-mcp.service': serviceId } });
    expect(spec.template.metadata.labels).toEqual({
      'deploy-mcp.service': serviceId,
      'deploy-mcp.user': userId,
      'deploy-mcp.release': 'abcdef123456',
    });
    const objects = resources.filter((r) => r.type.startsWith('kubernetes:'));
    expect(objects.map((r) => r.type).sort()).toEqual([
      'kubernetes:apps/v1:Deployment',
      'kubernetes:core/v1:Secret',
      'kubernetes:core/v1:Service',
      'kubernetes:networking.k8s.io/v1:Ingress',
    ]);
    for (const r of objects) {
      expect(metadataOf(r).namespace, r.type).toBe(namespace);
      expect(metadataOf(r).labels, r.type).toEqual({
        'deploy-mcp.service': serviceId,
        'deploy-mcp.user': userId,
      });
    }
  });

  it('serves PORT on port 80 of a ClusterIP Service, and the host through an Ingress of the given class', async () => {
    const { resources, outputs } = await runWithMocks(
      kubernetesServiceProgram(
        specWith({ ingressAnnotations: { 'traefik.ingress.kubernetes.io/router.entrypoints': 'web' } }),
      ),
    );
    const service = one(resources, 'kubernetes:core/v1:Service');
    expect(metadataOf(service)).toMatchObject({
      name: 'svc-0123456789abcdef0123',
      annotations: { 'pulumi.com/skipAwait': 'true' },
    });
    expect(specOf(service)).toEqual({
      type: 'ClusterIP',
      selector: { 'deploy-mcp.service': serviceId },
      ports: [{ name: 'http', port: 80, targetPort: 3000, protocol: 'TCP' }],
    });

    const ingress = one(resources, 'kubernetes:networking.k8s.io/v1:Ingress');
    expect(metadataOf(ingress).annotations).toEqual({
      'traefik.ingress.kubernetes.io/router.entrypoints': 'web',
      'pulumi.com/skipAwait': 'true',
    });
    expect(specOf(ingress)).toEqual({
      ingressClassName: 'traefik',
      rules: [
        {
          host: 'web-alice.apps.example.com',
          http: {
            paths: [
              {
                path: '/',
                pathType: 'Prefix',
                backend: { service: { name: 'svc-0123456789abcdef0123', port: { number: 80 } } },
              },
            ],
          },
        },
      ],
    });
    expect(outputs).toEqual({
      namespace,
      deploymentName: 'svc-0123456789abcdef0123',
      serviceName: 'svc-0123456789abcdef0123',
      ingressName: 'svc-0123456789abcdef0123',
      ingressHost: 'web-alice.apps.example.com',
      releaseKey: 'abcdef123456',
      url: 'http://web-alice.apps.example.com',
    });
  });

  it('takes TLS from a configured Secret, the controller default, or a cert-manager issuer', async () => {
    const ingressOf = async (changes: Partial<KubernetesServiceSpec>) => {
      const { resources, outputs } = await runWithMocks(kubernetesServiceProgram(specWith(changes)));
      const ingress = one(resources, 'kubernetes:networking.k8s.io/v1:Ingress');
      return { annotations: metadataOf(ingress).annotations, tls: specOf(ingress).tls, url: outputs.url };
    };
    const host = 'web-alice.apps.example.com';

    expect(await ingressOf({ tls: { kind: 'secret', secretName: 'apps-wildcard' } })).toEqual({
      annotations: { 'pulumi.com/skipAwait': 'true' },
      tls: [{ hosts: [host], secretName: 'apps-wildcard' }],
      url: `https://${host}`,
    });
    expect(await ingressOf({ tls: { kind: 'secret' }, publicPort: 8443 })).toEqual({
      annotations: { 'pulumi.com/skipAwait': 'true' },
      tls: [{ hosts: [host] }],
      url: `https://${host}:8443`,
    });
    expect(await ingressOf({ tls: { kind: 'cert-manager', issuer: 'letsencrypt' } })).toEqual({
      annotations: { 'cert-manager.io/cluster-issuer': 'letsencrypt', 'pulumi.com/skipAwait': 'true' },
      tls: [{ hosts: [host], secretName: 'svc-0123456789abcdef0123-tls' }],
      url: `https://${host}`,
    });
    expect(
      (await ingressOf({ tls: { kind: 'cert-manager', issuer: 'acme', issuerKind: 'Issuer' } })).annotations,
    ).toEqual({ 'cert-manager.io/issuer': 'acme', 'pulumi.com/skipAwait': 'true' });
    expect((await ingressOf({})).tls).toBeUndefined();
  });

  it('declares everything through its own provider for the given kubeconfig, never the ambient one', async () => {
    const { resources } = await runWithMocks(
      kubernetesServiceProgram(specWith({ cluster: { kubeconfig, context: 'prod' } })),
    );
    const providers = resources.filter((r) => r.type.startsWith('pulumi:providers:'));
    expect(providers.map((p) => [p.type, p.name])).toEqual([['pulumi:providers:kubernetes', 'cluster']]);
    const provider = providers[0] as Registered;
    expect(isSecret(provider.inputs.kubeconfig)).toBe(true);
    expect((provider.inputs.kubeconfig as { value: unknown }).value).toBe(kubeconfig);
    expect(provider.inputs.context).toBe('prod');
    expect(provider.inputs.enableServerSideApply).toBe('true');
    // A new env must come as a new Secret (a new name in the pod template, so a rollout).
    expect(provider.inputs.enableSecretMutable).toBe('false');
    for (const r of resources.filter((r) => r.type.startsWith('kubernetes:')))
      expect(r.provider, `${r.type} ${r.name}`).toMatch(
        new RegExp(`\\$pulumi:providers:kubernetes::cluster::${MOCK_PROVIDER_ID}$`),
      );
  });
});
