import { describe, expect, it } from 'vitest';
import { tenantNamespace, tenantStackName } from './names.ts';
import { isSecret, MOCK_PROVIDER_ID, one, type Registered, runWithMocks } from './pulumi-mocks.ts';
import { type KubernetesTenantSpec, kubernetesTenantProgram, nodeIngressPeer } from './tenant-program.ts';

const userId = 'cm5x8q2k40000abcdxyz12345';
const kubeconfig = 'apiVersion: v1\nkind: Config\nusers: [{name: admin, user: {token: s3cr3t}}]\n';
const baseSpec: KubernetesTenantSpec = {
  cluster: { kubeconfig, context: 'deploy-mcp' },
  userId,
  ingressNamespace: 'traefik',
};

const metadataOf = (r: Registered) =>
  r.inputs.metadata as { name?: string; namespace?: string; labels?: object };
const specOf = (r: Registered) => r.inputs.spec as Record<string, unknown>;

describe('tenantNamespace', () => {
  it('is "tenant-<userId>" for a cuid', () => {
    expect(tenantNamespace(userId)).toBe(`tenant-${userId}`);
    expect(tenantStackName(userId)).toBe(`tenant-${userId}`);
  });

  it('is a DNS-1123 label of at most 63 characters for any id, and tells ids apart', () => {
    const ids = ['User_ABC', 'user_abc', 'x'.repeat(200), `${'x'.repeat(200)}y`, '--', 'Ünïcode.id'];
    const names = ids.map(tenantNamespace);
    for (const name of names) {
      expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      expect(name.length).toBeLessThanOrEqual(63);
    }
    expect(new Set(names).size).toBe(ids.length);
    expect(tenantNamespace('User_ABC')).toBe(tenantNamespace('User_ABC'));
  });
});

describe('kubernetesTenantProgram (pulumi.runtime.setMocks)', () => {
  it('makes the namespace with Pod Security Admission "restricted" enforced, audited and warned', async () => {
    const { resources, outputs } = await runWithMocks(kubernetesTenantProgram(baseSpec));
    const ns = one(resources, 'kubernetes:core/v1:Namespace');
    expect(metadataOf(ns)).toEqual({
      name: `tenant-${userId}`,
      labels: {
        'deploy-mcp.user': userId,
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/enforce-version': 'latest',
        'pod-security.kubernetes.io/audit': 'restricted',
        'pod-security.kubernetes.io/audit-version': 'latest',
        'pod-security.kubernetes.io/warn': 'restricted',
        'pod-security.kubernetes.io/warn-version': 'latest',
      },
    });
    expect(outputs).toEqual({ namespace: `tenant-${userId}` });
  });

  it('puts a ResourceQuota with the defaults (40 CPU, 40Gi, 200 pods) in it, or the given numbers', async () => {
    const { resources } = await runWithMocks(kubernetesTenantProgram(baseSpec));
    const quota = one(resources, 'kubernetes:core/v1:ResourceQuota');
    expect(metadataOf(quota).namespace).toBe(`tenant-${userId}`);
    expect(specOf(quota).hard).toEqual({
      'requests.cpu': '40',
      'limits.cpu': '40',
      'requests.memory': '40Gi',
      'limits.memory': '40Gi',
      pods: '200',
    });

    const custom = await runWithMocks(
      kubernetesTenantProgram({ ...baseSpec, quota: { limitsCpu: '8', requestsMemory: '16Gi', pods: 20 } }),
    );
    expect(specOf(one(custom.resources, 'kubernetes:core/v1:ResourceQuota')).hard).toEqual({
      'requests.cpu': '40',
      'limits.cpu': '8',
      'requests.memory': '16Gi',
      'limits.memory': '40Gi',
      pods: '20',
    });
  });

  it('gives containers that name no resources default requests and limits (LimitRange)', async () => {
    const { resources } = await runWithMocks(
      kubernetesTenantProgram({ ...baseSpec, containerDefaults: { limitMemory: '1Gi' } }),
    );
    const limits = one(resources, 'kubernetes:core/v1:LimitRange');
    expect(metadataOf(limits).namespace).toBe(`tenant-${userId}`);
    expect(specOf(limits).limits).toEqual([
      {
        type: 'Container',
        defaultRequest: { cpu: '100m', memory: '512Mi' },
        default: { cpu: '500m', memory: '1Gi' },
      },
    ]);
  });

  it('denies ingress except from the ingress controller namespace and the tenant itself', async () => {
    const { resources } = await runWithMocks(kubernetesTenantProgram(baseSpec));
    const policy = one(resources, 'kubernetes:networking.k8s.io/v1:NetworkPolicy', 'ingress');
    expect(metadataOf(policy).namespace).toBe(`tenant-${userId}`);
    expect(specOf(policy)).toEqual({
      podSelector: {},
      policyTypes: ['Ingress'],
      ingress: [
        { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'traefik' } } }] },
        { from: [{ podSelector: {} }] },
      ],
    });
  });

  it("admits the nodes' private network (a host-network ingress controller) when given, less the pod network inside it", async () => {
    const ingressOf = async (spec: Partial<KubernetesTenantSpec>) => {
      const { resources } = await runWithMocks(kubernetesTenantProgram({ ...baseSpec, ...spec }));
      return (
        specOf(one(resources, 'kubernetes:networking.k8s.io/v1:NetworkPolicy', 'ingress')) as {
          ingress: { from: unknown[] }[];
        }
      ).ingress;
    };
    const namespaceOnly = await ingressOf({});
    // Outside the pod network (the platform's 10.0.0.0/16, k3s's pods at 10.42.0.0/16): as given.
    expect(await ingressOf({ nodeCidr: '10.0.0.0/16' })).toEqual([
      namespaceOnly[0],
      { from: [{ ipBlock: { cidr: '10.0.0.0/16' } }] },
      ...namespaceOnly.slice(1),
    ]);
    // A node network that holds the pod network: the pods are cut out, so no tenant's pod matches.
    expect((await ingressOf({ nodeCidr: '10.0.0.0/8', podCidr: '10.244.0.0/16' }))[1]).toEqual({
      from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.244.0.0/16'] } }],
    });
    expect((await ingressOf({ nodeCidr: '10.0.0.0/8' }))[1]).toEqual({
      from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.42.0.0/16'] } }],
    });
    expect(() => nodeIngressPeer('10.42.1.0/24')).toThrow(/inside the pod network/);
    expect(() => nodeIngressPeer('10.0.0.1/16')).toThrow(/not an IPv4 CIDR/);
  });

  it('lets egress reach cluster DNS, the tenant and the internet, but no private range or the metadata endpoint', async () => {
    const { resources } = await runWithMocks(kubernetesTenantProgram(baseSpec));
    const policy = one(resources, 'kubernetes:networking.k8s.io/v1:NetworkPolicy', 'egress');
    expect(metadataOf(policy).namespace).toBe(`tenant-${userId}`);
    expect(specOf(policy)).toEqual({
      podSelector: {},
      policyTypes: ['Egress'],
      egress: [
        {
          to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } } }],
          ports: [
            { protocol: 'UDP', port: 53 },
            { protocol: 'TCP', port: 53 },
          ],
        },
        { to: [{ podSelector: {} }] },
        {
          to: [
            {
              ipBlock: {
                cidr: '0.0.0.0/0',
                except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.169.254/32'],
              },
            },
          ],
        },
      ],
    });

    const other = await runWithMocks(
      kubernetesTenantProgram({ ...baseSpec, ingressNamespace: 'kube-system', dnsNamespace: 'dns' }),
    );
    const ingress = one(other.resources, 'kubernetes:networking.k8s.io/v1:NetworkPolicy', 'ingress');
    const egress = one(other.resources, 'kubernetes:networking.k8s.io/v1:NetworkPolicy', 'egress');
    expect(JSON.stringify(specOf(ingress))).toContain('"kubernetes.io/metadata.name":"kube-system"');
    expect(JSON.stringify(specOf(egress))).toContain('"kubernetes.io/metadata.name":"dns"');
  });

  it('declares everything through its own provider for the given kubeconfig, never the ambient one', async () => {
    const { resources } = await runWithMocks(kubernetesTenantProgram(baseSpec));
    const providers = resources.filter((r) => r.type.startsWith('pulumi:providers:'));
    expect(providers.map((p) => [p.type, p.name])).toEqual([['pulumi:providers:kubernetes', 'cluster']]);
    const provider = providers[0] as Registered;
    expect(isSecret(provider.inputs.kubeconfig)).toBe(true);
    expect((provider.inputs.kubeconfig as { value: unknown }).value).toBe(kubeconfig);
    expect(provider.inputs.context).toBe('deploy-mcp');
    expect(provider.inputs.enableServerSideApply).toBe('true');

    const objects = resources.filter((r) => r.type.startsWith('kubernetes:'));
    expect(objects.map((r) => r.type).sort()).toEqual([
      'kubernetes:core/v1:LimitRange',
      'kubernetes:core/v1:Namespace',
      'kubernetes:core/v1:ResourceQuota',
      'kubernetes:networking.k8s.io/v1:NetworkPolicy',
      'kubernetes:networking.k8s.io/v1:NetworkPolicy',
    ]);
    for (const r of objects) {
      expect(r.provider, `${r.type} ${r.name}`).toMatch(
        new RegExp(`\\$pulumi:providers:kubernetes::cluster::${MOCK_PROVIDER_ID}$`),
      );
      expect(metadataOf(r).labels).toMatchObject({ 'deploy-mcp.user': userId });
    }
  });

  it("binds the deployer's ServiceAccount to the tenant role in the namespace only when it has one", async () => {
    const without = await runWithMocks(kubernetesTenantProgram(baseSpec));
    expect(
      without.resources.filter((r) => r.type === 'kubernetes:rbac.authorization.k8s.io/v1:RoleBinding'),
    ).toEqual([]);
    const { resources } = await runWithMocks(
      kubernetesTenantProgram({
        ...baseSpec,
        deployer: { namespace: 'deploy-mcp-system', name: 'deployer' },
      }),
    );
    const binding = one(resources, 'kubernetes:rbac.authorization.k8s.io/v1:RoleBinding');
    expect(metadataOf(binding)).toEqual({
      name: 'deploy-mcp-deployer',
      namespace: `tenant-${userId}`,
      labels: { 'deploy-mcp.user': userId },
    });
    expect(binding.inputs.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: 'deploy-mcp-tenant',
    });
    expect(binding.inputs.subjects).toEqual([
      { kind: 'ServiceAccount', namespace: 'deploy-mcp-system', name: 'deployer' },
    ]);
    // Its worker's pods may ask the tenant's pods their health path; nothing else of its namespace.
    const policy = one(resources, 'kubernetes:networking.k8s.io/v1:NetworkPolicy', 'ingress');
    expect((specOf(policy) as { ingress: unknown[] }).ingress).toContainEqual({
      from: [
        {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'deploy-mcp-system' } },
          podSelector: { matchLabels: { app: 'deployer-worker' } },
        },
      ],
    });
  });
});
