import * as pulumi from '@pulumi/pulumi';
import { describe, expect, it } from 'vitest';
import { isSecret, one, type Registered, runWithMocks } from '../../tenant-stacks/kubernetes/pulumi-mocks.ts';
import { type PlatformOutputs, platformProgram } from '../program.ts';
import { testConfig } from '../test-config.ts';

type PodSpec = {
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  hostNetwork?: boolean;
  containers: {
    image: string;
    args?: string[];
    env?: { name: string; value: string }[];
    ports?: unknown[];
  }[];
};
const podSpecOf = (r: Registered) => (r.inputs.spec as { template: { spec: PodSpec } }).template.spec;
const envOf = (spec: PodSpec) =>
  Object.fromEntries((spec.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
const tolerating = (pool: string) => [
  { key: 'deploy-mcp.dev/pool', operator: 'Equal', value: pool, effect: 'NoSchedule' },
];

describe('platform in-cluster layer (pulumi.runtime.setMocks)', () => {
  it('declares every Kubernetes object through the explicit provider, whose kubeconfig is a secret', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const provider = one(resources, 'pulumi:providers:kubernetes');
    expect(provider.name).toBe('platform-cluster');
    expect(isSecret(provider.inputs.kubeconfig)).toBe(true);
    const objects = resources.filter((r) => r.type.startsWith('kubernetes:'));
    expect(objects.length).toBeGreaterThan(15);
    for (const r of objects)
      expect([r.type, r.name, r.provider]).toEqual([
        r.type,
        r.name,
        expect.stringMatching(/::platform-cluster::mock-provider-id$/),
      ]);
  });

  it('runs Traefik as a DaemonSet on the run nodes host network, serving the ingress class "traefik"', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const ds = one(resources, 'kubernetes:apps/v1:DaemonSet', 'traefik');
    const spec = podSpecOf(ds);
    expect(spec.hostNetwork).toBe(true);
    expect(spec.nodeSelector).toEqual({ 'deploy-mcp.dev/pool': 'run' });
    expect(spec.tolerations ?? []).toEqual([]);
    expect(spec.containers[0]?.image).toBe('traefik:v3.5');
    expect(spec.containers[0]?.args).toContain('--providers.kubernetesingress.ingressclass=traefik');
    expect(spec.containers[0]?.args).toContain('--ping.entrypoint=web');
    expect(one(resources, 'kubernetes:networking.k8s.io/v1:IngressClass').inputs.metadata).toEqual({
      name: 'traefik',
    });
  });

  it('issues the wildcard certificate by DNS-01 through Cloudflare, the token a secret', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const custom = resources.filter((r) => r.type.startsWith('kubernetes:cert-manager.io/v1:'));
    const issuer = custom.find((r) => r.type.endsWith(':ClusterIssuer'));
    const cert = custom.find((r) => r.type.endsWith(':Certificate'));
    expect(issuer?.inputs.spec).toMatchObject({
      acme: {
        email: 'sre@example.com',
        solvers: [
          {
            dns01: { cloudflare: { apiTokenSecretRef: { name: 'cloudflare-api-token', key: 'api-token' } } },
          },
        ],
      },
    });
    expect(cert?.inputs.metadata).toEqual({ name: 'apps-wildcard', namespace: 'traefik' });
    expect(cert?.inputs.spec).toEqual({
      secretName: 'apps-wildcard-tls',
      dnsNames: ['*.apps.example.com', 'apps.example.com'],
      issuerRef: { kind: 'ClusterIssuer', name: 'letsencrypt' },
    });
    const token = one(resources, 'kubernetes:core/v1:Secret', 'cloudflare-api-token');
    expect(isSecret(token.inputs.stringData)).toBe(true);
    // No manifest configured: cert-manager is expected installed, nothing applied for it.
    expect(resources.filter((r) => r.type === 'kubernetes:yaml/v2:ConfigFile')).toEqual([]);
    const withManifest = await runWithMocks(
      platformProgram(testConfig({ certManagerManifest: '/srv/cert-manager.yaml' })),
    );
    expect(one(withManifest.resources, 'kubernetes:yaml/v2:ConfigFile').inputs.file).toBe(
      '/srv/cert-manager.yaml',
    );
  });

  it('puts the registry on ops (port 5000 of the node) and BuildKit on build, each tolerating its taint', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const reg = podSpecOf(one(resources, 'kubernetes:apps/v1:Deployment', 'registry'));
    expect(reg.nodeSelector).toEqual({ 'deploy-mcp.dev/pool': 'ops' });
    expect(reg.tolerations).toEqual(tolerating('ops'));
    expect(reg.containers[0]?.ports).toEqual([{ name: 'registry', containerPort: 5000, hostPort: 5000 }]);
    const bk = one(resources, 'kubernetes:apps/v1:Deployment', 'buildkitd');
    expect((bk.inputs.spec as { replicas: number }).replicas).toBe(2);
    expect(podSpecOf(bk).nodeSelector).toEqual({ 'deploy-mcp.dev/pool': 'build' });
    expect(podSpecOf(bk).tolerations).toEqual(tolerating('build'));
    const np = one(resources, 'kubernetes:networking.k8s.io/v1:NetworkPolicy', 'buildkitd');
    expect(np.inputs.spec).toMatchObject({
      podSelector: { matchLabels: { app: 'buildkitd' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { app: 'deployer-worker' } } }] }],
    });
  });

  it('runs deployer-server and deployer-worker from the configured image, configured for the kubernetes runtime', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    for (const role of ['deployer-server', 'deployer-worker']) {
      const spec = podSpecOf(one(resources, 'kubernetes:apps/v1:Deployment', role));
      expect(spec.containers[0]?.image).toBe('registry.example.com/deploy-mcp:1.0.0');
      expect(spec.containers[0]?.args).toEqual(['serve', '--role', role]);
      expect(spec.tolerations).toEqual(tolerating('ops'));
      expect(envOf(spec)).toMatchObject({
        DEPLOY_MCP_RUNTIME: 'kubernetes',
        DEPLOY_MCP_INGRESS_CLASS: 'traefik',
        DEPLOY_MCP_INGRESS_NAMESPACE: 'traefik',
        DEPLOY_MCP_APPS_DOMAIN: 'apps.example.com',
        DEPLOY_MCP_REGISTRY: '10.0.1.20:5000',
        DEPLOY_MCP_BUILDKIT_ADDRESS: 'tcp://buildkitd.deploy-mcp-system:1234',
      });
    }
    expect(
      isSecret(one(resources, 'kubernetes:core/v1:Secret', 'deployer-kubeconfig').inputs.stringData),
    ).toBe(true);
  });

  it('cleans the registry nightly, keeping the configured number of images per service', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig({ keepImagesPerService: 7 })));
    const cron = one(resources, 'kubernetes:batch/v1:CronJob', 'registry-cleanup');
    const spec = cron.inputs.spec as {
      concurrencyPolicy: string;
      jobTemplate: { spec: { template: { spec: PodSpec } } };
    };
    expect(spec.concurrencyPolicy).toBe('Forbid');
    const pod = spec.jobTemplate.spec.template.spec;
    expect(pod.containers[0]?.args).toEqual(['registry', 'prune', '--keep', '7']);
    expect(envOf(pod).DEPLOY_MCP_REGISTRY).toBe('10.0.1.20:5000');
  });

  it('outputs exactly what the kubernetes runtime is configured with, the kubeconfig as a secret', async () => {
    let returned: PlatformOutputs | undefined;
    const program = platformProgram(testConfig());
    const { outputs } = await runWithMocks(async () => {
      returned = await program();
      return returned;
    });
    expect(Object.keys(outputs).sort()).toEqual([
      'appsDomain',
      'ingressClass',
      'ingressNamespace',
      'kubeconfig',
      'registryHost',
    ]);
    expect(outputs).toMatchObject({
      ingressClass: 'traefik',
      ingressNamespace: 'traefik',
      appsDomain: 'apps.example.com',
      registryHost: '10.0.1.20:5000',
    });
    expect(await pulumi.isSecret(returned?.kubeconfig as pulumi.Output<string>)).toBe(true);
  });
});
