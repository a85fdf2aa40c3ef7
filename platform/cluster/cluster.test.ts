import * as pulumi from '@pulumi/pulumi';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.ts';
import { registryLockForBuilds } from '../../core/db/maintenance-lock.ts';
import { isSecret, one, type Registered, runWithMocks } from '../../tenant-stacks/kubernetes/pulumi-mocks.ts';
import { nodeVars } from '../cloud/k3s.ts';
import type { Node } from '../cloud/servers.ts';
import { ALL_POOLS } from '../pools.ts';
import { type PlatformOutputs, platformProgram } from '../program.ts';
import { testConfig } from '../test-config.ts';
import { buildkitStartScript } from './buildkit-start.ts';
import { clusterLayer } from './index.ts';

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

/** A one-node cluster's settings (singleNode), as the local layer gives them. */
const single = {
  bindAddress: '127.0.0.1',
  ports: { web: 18080, websecure: 18443, registry: 15000, buildkit: 11234 },
  apiServer: { host: '127.0.0.1', port: 16443 },
  stateDir: '/srv/state',
};

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
    const cert = custom.find((r) => r.type.endsWith(':Certificate') && r.name === 'apps-wildcard');
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
  });

  it('installs cert-manager itself: the CRDs from the given directory, three components with their RBAC, the webhook configurations with the CA injected', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    // One CustomResourceDefinition per file of the directory, as it is.
    expect(
      one(
        resources,
        'kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition',
        'examples.cert-manager.io',
      ).inputs.spec,
    ).toMatchObject({ group: 'cert-manager.io', names: { kind: 'Example' } });
    const deployments = resources.filter(
      (r) => r.type === 'kubernetes:apps/v1:Deployment' && r.name.startsWith('cert-manager'),
    );
    expect(deployments.map((d) => [d.name, podSpecOf(d).containers[0]?.image]).sort()).toEqual([
      ['cert-manager', 'quay.io/jetstack/cert-manager-controller:v1.21.2'],
      ['cert-manager-cainjector', 'quay.io/jetstack/cert-manager-cainjector:v1.21.2'],
      ['cert-manager-webhook', 'quay.io/jetstack/cert-manager-webhook:v1.21.2'],
    ]);
    for (const d of deployments) {
      const spec = podSpecOf(d) as PodSpec & { serviceAccountName: string };
      expect(spec.serviceAccountName).toBe(d.name);
      expect(spec.hostNetwork).toBeUndefined();
      expect(spec.tolerations).toEqual(tolerating('ops'));
    }
    // The webhook's TLS on the chart's port behind its Service; the API server calls that Service.
    const webhookArgs = podSpecOf(one(resources, 'kubernetes:apps/v1:Deployment', 'cert-manager-webhook'))
      .containers[0]?.args;
    expect(webhookArgs).toContain('--secure-port=10250');
    expect(webhookArgs).toContain('--dynamic-serving-ca-secret-name=cert-manager-webhook-ca');
    for (const type of [
      'kubernetes:admissionregistration.k8s.io/v1:ValidatingWebhookConfiguration',
      'kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration',
    ]) {
      const conf = one(resources, type, 'cert-manager-webhook').inputs as {
        metadata: { annotations: Record<string, string> };
        webhooks: { clientConfig: unknown; failurePolicy: string }[];
      };
      expect(conf.metadata.annotations['cert-manager.io/inject-ca-from-secret']).toBe(
        'cert-manager/cert-manager-webhook-ca',
      );
      expect(conf.webhooks[0]?.clientConfig).toEqual({
        service: {
          name: 'cert-manager-webhook',
          namespace: 'cert-manager',
          path: expect.stringMatching(/^\/(validate|mutate)$/),
        },
      });
      expect(conf.webhooks[0]?.failurePolicy).toBe('Fail');
    }
    // Each component's ServiceAccount is bound to its roles, and to nothing cluster-admin-like.
    const bindings = resources.filter(
      (r) => r.type.endsWith('RoleBinding') && r.name.startsWith('cert-manager'),
    );
    expect(bindings.map((b) => b.name).sort()).toEqual(
      [
        'cert-manager-controller-issuers',
        'cert-manager-controller-clusterissuers',
        'cert-manager-controller-certificates',
        'cert-manager-controller-orders',
        'cert-manager-controller-challenges',
        'cert-manager-controller-ingress-shim',
        'cert-manager-controller-approve:cert-manager-io',
        'cert-manager:leaderelection',
        'cert-manager-cainjector',
        'cert-manager-cainjector:leaderelection',
        'cert-manager-webhook:subjectaccessreviews',
        'cert-manager-webhook:dynamic-serving',
      ].sort(),
    );
    for (const b of bindings)
      expect((b.inputs.roleRef as { name: string }).name).toBe((b.inputs.metadata as { name: string }).name);
    const roles = resources.filter(
      (r) => /:(Cluster)?Role$/.test(r.type) && r.name.startsWith('cert-manager'),
    );
    for (const r of roles)
      for (const rule of r.inputs.rules as { verbs: string[]; resources: string[] }[]) {
        expect(rule.verbs).not.toContain('*');
        expect(rule.resources).not.toContain('*');
      }
  });

  it('takes the ClusterIssuer from the configuration (a test CA issuer): no Cloudflare token then', async () => {
    const { resources } = await runWithMocks(
      platformProgram(testConfig({ certManagerIssuer: { ca: { secretName: 'test-ca' } } })),
    );
    expect(one(resources, 'kubernetes:cert-manager.io/v1:ClusterIssuer').inputs.spec).toEqual({
      ca: { secretName: 'test-ca' },
    });
    expect(resources.filter((r) => r.name === 'cloudflare-api-token')).toEqual([]);
  });

  it('on one node: cert-manager on the host network, the webhook called by URL on loopback, no listener but the webhook', async () => {
    const ports = { ...single.ports, certManagerWebhook: 19443, certManagerWebhookHealthz: 19080 };
    const { resources } = await runWithMocks(
      platformProgram(testConfig({ singleNode: { ...single, ports } })),
    );
    for (const name of ['cert-manager', 'cert-manager-webhook', 'cert-manager-cainjector']) {
      const spec = podSpecOf(one(resources, 'kubernetes:apps/v1:Deployment', name));
      expect(spec.hostNetwork, name).toBe(true);
      expect(spec.nodeSelector).toEqual({ 'deploy-mcp.dev/pool': 'all' });
      expect(envOf(spec)).toMatchObject({
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: '16443',
      });
    }
    const args = (name: string) =>
      podSpecOf(one(resources, 'kubernetes:apps/v1:Deployment', name)).containers[0]?.args;
    expect(args('cert-manager')).toEqual(
      expect.arrayContaining(['--metrics-listen-address=', '--healthz-listen-address=']),
    );
    expect(args('cert-manager-cainjector')).toContain('--metrics-listen-address=0');
    expect(args('cert-manager-webhook')).toEqual(
      expect.arrayContaining([
        '--secure-port=19443',
        '--healthz-port=19080',
        '--dynamic-serving-dns-names=localhost',
      ]),
    );
    const validating = one(
      resources,
      'kubernetes:admissionregistration.k8s.io/v1:ValidatingWebhookConfiguration',
      'cert-manager-webhook',
    ).inputs as { webhooks: { clientConfig: unknown }[] };
    expect(validating.webhooks[0]?.clientConfig).toEqual({ url: 'https://localhost:19443/validate' });
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

  it("gives BuildKit's build steps a network of their own (CNI) behind egress rules set by a NET_ADMIN-only init container", async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const spec = podSpecOf(one(resources, 'kubernetes:apps/v1:Deployment', 'buildkitd')) as PodSpec & {
      dnsPolicy?: string;
      initContainers?: { command: string[]; securityContext: unknown }[];
    };
    const data = one(resources, 'kubernetes:core/v1:ConfigMap', 'buildkitd-config').inputs.data as Record<
      string,
      string
    >;
    expect(data['buildkitd.toml']).toContain(
      '  networkMode = "cni"\n  cniConfigPath = "/etc/buildkit/build.conflist"\n  cniBinaryPath = "/usr/lib/cni"\n',
    );
    expect(JSON.parse(data['build.conflist'] ?? '').plugins[0]).toMatchObject({
      type: 'ptp',
      ipMasq: true,
      ipam: { ranges: [[{ subnet: '10.215.0.0/16' }]] },
    });
    const script = data['egress.sh'] ?? '';
    // The nodes' network (the registry's), k3s's pod and Service ranges, loopback, link-local.
    for (const range of ['10.0.0.0/16', '10.42.0.0/16', '10.43.0.0/16', '127.0.0.0/8', '169.254.0.0/16'])
      expect(script).toContain(`-A DMCP-KBUILD -d ${range} -j DROP`);
    expect(script).toContain('-A DMCP-KBUILD-IN -p tcp -j REJECT --reject-with tcp-reset');
    expect(script).toContain('-t mangle -I FORWARD 1 -s 10.215.0.0/16 -j DMCP-KBUILD');
    expect(script).toContain('-t filter -I INPUT 1 -s 10.215.0.0/16 -j DMCP-KBUILD-IN');
    expect(spec.initContainers).toEqual([
      expect.objectContaining({
        command: ['/bin/sh', '/etc/buildkit/egress.sh'],
        securityContext: { capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] } },
      }),
    ]);
    expect(spec.dnsPolicy).toBe('Default');
  });

  it("denies build steps every node's public IPv4 (the cloud layer's servers, the dedicated ones of the config) and the address of the node they run on", async () => {
    // The addresses Hetzner gives the servers, as the engine would report them.
    const servers: string[] = [];
    const { resources } = await runWithMocks(
      platformProgram(testConfig({ dedicatedAddresses: ['198.51.100.77', '2001:db8:77::2'] })),
      (type, name) => {
        if (type !== 'hcloud:index/server:Server') return {};
        servers.push(name);
        return { ipv4Address: `203.0.113.${servers.length}`, ipv6Address: `2001:db8:${servers.length}::1` };
      },
    );
    expect(servers).toHaveLength(7);
    const script =
      (
        one(resources, 'kubernetes:core/v1:ConfigMap', 'buildkitd-config').inputs.data as Record<
          string,
          string
        >
      )['egress.sh'] ?? '';
    const drops = [...script.matchAll(/^-A DMCP-KBUILD -d [\d.]+\/32 -j DROP/gm)].map((m) => m[0]);
    expect(drops).toEqual([
      ...servers.map((_, i) => `-A DMCP-KBUILD -d 203.0.113.${i + 1}/32 -j DROP`),
      '-A DMCP-KBUILD -d 198.51.100.77/32 -j DROP',
    ]);
    // IPv6 addresses are not in the IPv4 rules: the steps have no IPv6 address of the range nor a route.
    expect(script).not.toContain('2001:db8');
    const list = JSON.parse(
      (
        one(resources, 'kubernetes:core/v1:ConfigMap', 'buildkitd-config').inputs.data as Record<
          string,
          string
        >
      )['build.conflist'] ?? '',
    );
    expect(list.plugins[0].ipam).toEqual({
      type: 'host-local',
      ranges: [[{ subnet: '10.215.0.0/16' }]],
      routes: [{ dst: '0.0.0.0/0' }],
    });
    // Nor an IPv6 link-local address on its link (which reaches the other end's, on the pod or host).
    expect(list.plugins[1]).toEqual({ type: 'tuning', sysctl: { 'net.ipv6.conf.eth1.disable_ipv6': '1' } });
    // The node the pod runs on: its addresses from the downward API, read by the script where it runs.
    const spec = podSpecOf(one(resources, 'kubernetes:apps/v1:Deployment', 'buildkitd')) as PodSpec & {
      initContainers?: { env: unknown[] }[];
    };
    expect(spec.initContainers?.[0]?.env).toEqual([
      { name: 'NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
      { name: 'NODE_IPS', valueFrom: { fieldRef: { fieldPath: 'status.hostIPs' } } },
    ]);
    expect(script).toContain(`for a in \${NODE_IP:-} \${NODE_IPS:-}; do`);
  });

  it('starts buildkitd through the script that first removes the masquerading rules a killed one left (10.215/16 only), one buildkitd at a time', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const bk = one(resources, 'kubernetes:apps/v1:Deployment', 'buildkitd');
    const container = podSpecOf(bk).containers[0] as PodSpec['containers'][number] & { command?: string[] };
    expect(container.command).toEqual(['/bin/sh', '/etc/buildkit/start.sh']);
    expect(container.args?.slice(0, 2)).toEqual(['--config', '/etc/buildkit/buildkitd.toml']);
    const data = one(resources, 'kubernetes:core/v1:ConfigMap', 'buildkitd-config').inputs.data as Record<
      string,
      string
    >;
    expect(data['start.sh']).toBe(buildkitStartScript('deploy-mcp-cluster-build', '10.215.0.0/16'));
    expect(data['start.sh']?.trimEnd().endsWith('exec buildkitd "$@"')).toBe(true);
    expect((bk.inputs.spec as { strategy: unknown }).strategy).toEqual({ type: 'Recreate' });
  });

  it('runs deployer-server and deployer-worker from the configured image, configured for the kubernetes runtime', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    for (const role of ['deployer-server', 'deployer-worker']) {
      const spec = podSpecOf(one(resources, 'kubernetes:apps/v1:Deployment', role));
      expect(spec.containers[0]?.image).toBe('registry.example.com/deploy-mcp:1.0.0');
      expect(spec.containers[0]?.args).toEqual([
        'serve',
        '--role',
        role === 'deployer-server' ? 'server,worker,deployer-server' : 'deployer-worker',
      ]);
      expect(spec.tolerations).toEqual(tolerating('ops'));
      // Its own node-local data dir, handed to the image's user by a root init container that may only chown.
      const s = spec as PodSpec & {
        volumes?: { name: string; hostPath?: { path: string } }[];
        initContainers?: { command: string[]; securityContext: { capabilities: object } }[];
      };
      expect(s.volumes?.find((v) => v.name === 'data')?.hostPath?.path).toBe(`/var/lib/deploy-mcp/${role}`);
      expect(s.initContainers?.[0]?.command).toEqual(['chown', '10001:10001', '/app/.data']);
      expect(s.initContainers?.[0]?.securityContext.capabilities).toEqual({ drop: ['ALL'], add: ['CHOWN'] });
      expect(envOf(spec).DEPLOY_MCP_HOST).toBe('0.0.0.0');
      expect(envOf(spec)).toMatchObject({
        DEPLOY_MCP_RUNTIME: 'kubernetes',
        DEPLOY_MCP_INGRESS_CLASS: 'traefik',
        DEPLOY_MCP_INGRESS_NAMESPACE: 'traefik',
        DEPLOY_MCP_APPS_DOMAIN: 'apps.example.com',
        DEPLOY_MCP_REGISTRY: '10.0.1.20:5000',
        DEPLOY_MCP_BUILDKIT_ADDRESS: 'tcp://buildkitd.deploy-mcp-system:1234',
      });
    }
  });

  it('gives the deployer-worker a ServiceAccount of its own with tenant-only access, and no admin credential', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const worker = podSpecOf(
      one(resources, 'kubernetes:apps/v1:Deployment', 'deployer-worker'),
    ) as PodSpec & {
      serviceAccountName?: string;
      automountServiceAccountToken?: boolean;
    };
    expect(worker).toMatchObject({ serviceAccountName: 'deployer', automountServiceAccountToken: true });
    expect(envOf(worker).DEPLOY_MCP_KUBERNETES_SERVICE_ACCOUNT).toBe('deploy-mcp-system/deployer');
    const server = podSpecOf(one(resources, 'kubernetes:apps/v1:Deployment', 'deployer-server')) as {
      automountServiceAccountToken?: boolean;
    };
    expect(server.automountServiceAccountToken).toBe(false);
    // The kubeconfig names the projected token's file: no credential in it, and no Secret holds one.
    const kubeconfig = JSON.parse(
      (
        one(resources, 'kubernetes:core/v1:ConfigMap', 'deployer-kubeconfig').inputs.data as {
          config: string;
        }
      ).config,
    );
    expect(kubeconfig.users).toEqual([
      { name: 'deployer', user: { tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token' } },
    ]);
    expect(
      resources.filter((r) => r.type === 'kubernetes:core/v1:Secret' && r.name === 'deployer-kubeconfig'),
    ).toEqual([]);
    const binding = one(
      resources,
      'kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding',
      'deploy-mcp-deployer',
    );
    expect(binding.inputs.subjects).toEqual([
      { kind: 'ServiceAccount', namespace: 'deploy-mcp-system', name: 'deployer' },
    ]);
    // Cluster-wide it may bind only the tenant role, and reads no secrets anywhere.
    const rules = one(resources, 'kubernetes:rbac.authorization.k8s.io/v1:ClusterRole', 'deploy-mcp-deployer')
      .inputs.rules as { resources: string[]; verbs: string[]; resourceNames?: string[] }[];
    expect(rules.flatMap((r) => r.resources)).not.toContain('secrets');
    expect(rules.find((r) => r.verbs.includes('bind'))?.resourceNames).toEqual(['deploy-mcp-tenant']);
    expect(
      one(resources, 'kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding').inputs
        .spec,
    ).toEqual({ policyName: 'deploy-mcp-deployer-tenants-only', validationActions: ['Deny'] });
  });

  it("gives the deployer an environment the product's configuration accepts (kubernetes, no local engine)", async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const env = envOf(podSpecOf(one(resources, 'kubernetes:apps/v1:Deployment', 'deployer-worker')));
    const runtime = loadConfig(env).runtime;
    expect(runtime.kubernetes).toMatchObject({
      kubeconfigPath: '/etc/deploy-mcp/kube/config',
      ingressClass: 'traefik',
      ingressNamespace: 'traefik',
      serviceAccount: 'deploy-mcp-system/deployer',
      // Tenants admit the host-network Traefik from the nodes, never the pods.
      nodeCidr: '10.0.0.0/16',
      podCidr: '10.42.0.0/16',
    });
    expect(runtime.external).toEqual({
      buildkitAddress: 'tcp://buildkitd.deploy-mcp-system:1234',
      registryHost: '10.0.1.20:5000',
      apps: undefined,
    });
  });

  it('bounds and closes the platform namespaces by default: pod quotas, no LB/NodePort, ingress denied but for named peers', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const quotas = resources.filter((r) => r.type === 'kubernetes:core/v1:ResourceQuota');
    expect(
      Object.fromEntries(
        quotas.map((q) => [
          (q.inputs.metadata as { namespace: string }).namespace,
          (q.inputs.spec as { hard: object }).hard,
        ]),
      ),
    ).toEqual({
      // 2 build nodes and 3 run nodes in testConfig.
      'deploy-mcp-system': { pods: '12', 'services.loadbalancers': '0', 'services.nodeports': '0' },
      traefik: { pods: '6', 'services.loadbalancers': '0', 'services.nodeports': '0' },
    });
    const policy = (name: string) =>
      one(resources, 'kubernetes:networking.k8s.io/v1:NetworkPolicy', name).inputs.spec;
    expect(policy('default-deny-ingress')).toEqual({ podSelector: {}, policyTypes: ['Ingress'] });
    expect(policy('registry-ingress')).toMatchObject({
      podSelector: { matchLabels: { app: 'registry' } },
      ingress: [
        {
          from: [
            { ipBlock: { cidr: '10.0.0.0/16' } },
            { podSelector: { matchLabels: { app: 'buildkitd' } } },
            { podSelector: { matchLabels: { app: 'deployer-worker' } } },
            { podSelector: { matchLabels: { app: 'registry-cleanup' } } },
          ],
          ports: [{ protocol: 'TCP', port: 5000 }],
        },
      ],
    });
    expect(policy('deployer-server-ingress')).toMatchObject({
      ingress: [
        {
          from: [
            // Traefik on the run nodes' host network: a node's private address.
            { ipBlock: { cidr: '10.0.0.0/16' } },
            { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'traefik' } } },
            { podSelector: { matchLabels: { app: 'deployer-worker' } } },
          ],
        },
      ],
    });
    // Every pod the layer runs in deploy-mcp-system carries the label a policy names.
    const cron = one(resources, 'kubernetes:batch/v1:CronJob', 'registry-cleanup').inputs.spec as {
      jobTemplate: { spec: { template: { metadata: { labels: object } } } };
    };
    expect(cron.jobTemplate.spec.template.metadata.labels).toEqual({ app: 'registry-cleanup' });
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
    expect(pod.containers[0]?.args).toEqual([
      'registry',
      'prune',
      '--keep',
      '7',
      '--restart-registry',
      'deploy-mcp-system/registry',
    ]);
    expect(envOf(pod).DEPLOY_MCP_REGISTRY).toBe('10.0.1.20:5000');
    // The CLI parses its configuration from this env plus the SRE's Secret (a partial runtime
    // would be refused at start), and prunes the registry the nodes pull from.
    const config = loadConfig(
      { ...envOf(pod), DEPLOY_MCP_DATABASE_URL: 'postgres://db.internal/deploy' },
      '/app',
    );
    expect(config.runtime.external?.registryHost).toBe('10.0.1.20:5000');
  });

  it("collects the registry's blobs before it serves (an init container), restarted by the clean-up job with patch on that Deployment only", async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    type Container = {
      name: string;
      image: string;
      command?: string[];
      env?: unknown[];
      volumeMounts?: unknown[];
    };
    const reg = podSpecOf(one(resources, 'kubernetes:apps/v1:Deployment', 'registry')) as PodSpec & {
      initContainers?: Container[];
      containers: Container[];
    };
    // The same image, settings and volume as the registry; its own binary and configuration, bounded.
    const [gc, ...otherInit] = reg.initContainers ?? [];
    expect(otherInit).toEqual([]);
    const server = reg.containers[0] as Container;
    expect(gc).toMatchObject({ name: 'garbage-collect', image: server.image });
    expect(gc?.env).toEqual(server.env);
    expect(gc?.volumeMounts).toEqual([...(server.volumeMounts ?? []), { name: 'gc-log', mountPath: '/gc' }]);
    expect(gc?.command?.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(gc?.command?.[2]).toMatch(
      /^timeout \d+ \/bin\/registry garbage-collect \/etc\/docker\/registry\/config\.yml /,
    );

    // The job's identity: its own ServiceAccount, whose one Role allows patch on the registry alone.
    const account = one(resources, 'kubernetes:core/v1:ServiceAccount', 'registry-cleanup');
    expect(account.inputs.metadata).toMatchObject({
      name: 'registry-cleanup',
      namespace: 'deploy-mcp-system',
    });
    const role = one(resources, 'kubernetes:rbac.authorization.k8s.io/v1:Role', 'registry-cleanup');
    expect(role.inputs.rules).toEqual([
      { apiGroups: ['apps'], resources: ['deployments'], resourceNames: ['registry'], verbs: ['patch'] },
    ]);
    const binding = one(resources, 'kubernetes:rbac.authorization.k8s.io/v1:RoleBinding', 'registry-cleanup');
    expect(binding.inputs).toMatchObject({
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'registry-cleanup' },
      subjects: [{ kind: 'ServiceAccount', name: 'registry-cleanup', namespace: 'deploy-mcp-system' }],
    });
    // Nothing else grants it anything.
    const grants = resources.filter(
      (r) =>
        /RoleBinding$/.test(r.type) && JSON.stringify(r.inputs.subjects ?? []).includes('registry-cleanup'),
    );
    expect(grants.map((r) => r.name)).toEqual(['registry-cleanup']);

    // The job's pod runs as it, with its token and the kubeconfig that names the token file.
    const cron = one(resources, 'kubernetes:batch/v1:CronJob', 'registry-cleanup').inputs.spec as {
      jobTemplate: { spec: { template: { spec: PodSpec & Record<string, unknown> } } };
    };
    const pod = cron.jobTemplate.spec.template.spec;
    expect(pod).toMatchObject({ serviceAccountName: 'registry-cleanup', automountServiceAccountToken: true });
    expect(pod.volumes).toContainEqual({ name: 'kubeconfig', configMap: { name: 'deployer-kubeconfig' } });
    const env: Record<string, string> = {
      ...envOf(pod),
      DEPLOY_MCP_DATABASE_URL: 'postgres://db.internal/deploy',
    };
    const mount = (
      pod.containers[0] as unknown as { volumeMounts: { name: string; mountPath: string }[] }
    ).volumeMounts.find((m) => m.name === 'kubeconfig');
    expect(env.DEPLOY_MCP_KUBECONFIG).toBe(`${mount?.mountPath}/config`);
    // The lock: the deployer's builds (the same configuration, PostgreSQL) take its shared side;
    // the CLI's embedded install (SQLite) has none.
    expect(registryLockForBuilds(loadConfig(env, '/app'))).toBeTypeOf('function');
    expect(registryLockForBuilds(loadConfig({ DEPLOY_MCP_DATABASE_URL: 'file:/tmp/x.db' }, '/app'))).toBe(
      undefined,
    );
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
      'nodeCidr',
      'podCidr',
      'registryHost',
    ]);
    expect(outputs).toMatchObject({
      ingressClass: 'traefik',
      ingressNamespace: 'traefik',
      appsDomain: 'apps.example.com',
      registryHost: '10.0.1.20:5000',
      // Where the host-network Traefik connects from (the nodes), and the pods cut out of it.
      nodeCidr: '10.0.0.0/16',
      podCidr: '10.42.0.0/16',
    });
    expect(await pulumi.isSecret(returned?.kubeconfig as pulumi.Output<string>)).toBe(true);
  });

  it('on one node (singleNode): every pod on the node labelled pool=all, host network at the given addresses; cert-manager and deployer left out when asked', async () => {
    const { resources } = await runWithMocks(
      platformProgram(testConfig({ singleNode: single, certManager: false, deployer: false })),
    );
    type HostSpec = PodSpec & { volumes?: { name: string; hostPath?: { path: string } }[] };
    const spec = (type: string, name: string) => podSpecOf(one(resources, type, name)) as HostSpec;
    const traefik = spec('kubernetes:apps/v1:DaemonSet', 'traefik');
    const registry = spec('kubernetes:apps/v1:Deployment', 'registry');
    const buildkit = spec('kubernetes:apps/v1:Deployment', 'buildkitd');
    for (const s of [traefik, registry, buildkit]) {
      expect(s.nodeSelector).toEqual({ 'deploy-mcp.dev/pool': 'all' });
      expect(s.tolerations).toEqual([]);
      expect(s.hostNetwork).toBe(true);
    }
    expect(traefik.containers[0]?.args).toContain('--entrypoints.web.address=127.0.0.1:18080');
    expect(envOf(traefik)).toEqual({
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: '16443',
    });
    expect(envOf(registry).REGISTRY_HTTP_ADDR).toBe('127.0.0.1:15000');
    expect(registry.volumes?.[0]?.hostPath?.path).toBe('/srv/state/registry');
    expect(buildkit.containers[0]?.args).toContain('tcp://127.0.0.1:11234');
    expect(buildkit.volumes?.[0]?.hostPath?.path).toBe('/srv/state/buildkit');
    // BuildKit pushes to the plain-HTTP registry the layer was given.
    const bkConfig = one(resources, 'kubernetes:core/v1:ConfigMap', 'buildkitd-config').inputs.data as Record<
      string,
      string
    >;
    expect(bkConfig['buildkitd.toml']).toContain('[registry."10.0.1.20:5000"]\n  http = true');
    // No cert-manager objects, no deployer Deployments or clean-up job; the deployer's access stays.
    expect(resources.filter((r) => r.type.startsWith('kubernetes:cert-manager.io/'))).toEqual([]);
    expect(resources.filter((r) => r.name === 'cloudflare-api-token')).toEqual([]);
    expect(resources.filter((r) => r.name.startsWith('deployer-') && r.type.endsWith(':Deployment'))).toEqual(
      [],
    );
    expect(resources.filter((r) => r.type === 'kubernetes:batch/v1:CronJob')).toEqual([]);
    one(resources, 'kubernetes:core/v1:ServiceAccount', 'deployer');
    one(resources, 'kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding');
  });

  it('on one node with the deployer: its pods on the host network, the API server by its own address, state under the state dir', async () => {
    const { resources } = await runWithMocks(
      platformProgram(testConfig({ singleNode: single, certManager: false })),
    );
    for (const role of ['deployer-server', 'deployer-worker']) {
      const s = podSpecOf(one(resources, 'kubernetes:apps/v1:Deployment', role)) as PodSpec & {
        hostNetwork?: boolean;
        volumes?: { name: string; hostPath?: { path: string } }[];
      };
      expect(s.hostNetwork).toBe(true);
      expect(s.nodeSelector).toEqual({ 'deploy-mcp.dev/pool': 'all' });
      expect(s.volumes?.find((v) => v.name === 'data')?.hostPath?.path).toBe(`/srv/state/${role}`);
      expect(envOf(s)).toMatchObject({
        DEPLOY_MCP_HOST: '127.0.0.1',
        DEPLOY_MCP_DATA_DIR: '/app/.data/state',
        DEPLOY_MCP_BUILDKIT_ADDRESS: 'tcp://127.0.0.1:11234',
      });
      // One node: Traefik connects from the host itself, no node network to admit.
      expect(envOf(s).DEPLOY_MCP_K8S_NODE_CIDR).toBeUndefined();
    }
    const kubeconfig = JSON.parse(
      (
        one(resources, 'kubernetes:core/v1:ConfigMap', 'deployer-kubeconfig').inputs.data as {
          config: string;
        }
      ).config,
    );
    expect(kubeconfig.clusters[0].cluster.server).toBe('https://127.0.0.1:16443');
    // The product's names are not routed on one node; its ports come from the Secret.
    expect(resources.filter((r) => r.name === 'deployer-server' && !r.type.endsWith(':Deployment'))).toEqual(
      [],
    );
    expect(
      envOf(podSpecOf(one(resources, 'kubernetes:apps/v1:Deployment', 'deployer-server'))),
    ).not.toHaveProperty('DEPLOY_MCP_PORT');
  });

  it("routes the product's names to the deployer-server: mcp. and git. to its MCP port, api. to its webhooks, with their certificate", async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const service = one(resources, 'kubernetes:core/v1:Service', 'deployer-server').inputs as {
      metadata: { namespace: string };
      spec: { selector: object; ports: { name: string; port: number; targetPort: number }[] };
    };
    expect(service.metadata.namespace).toBe('deploy-mcp-system');
    expect(service.spec.selector).toEqual({ app: 'deployer-server' });
    expect(service.spec.ports.map((p) => [p.name, p.port, p.targetPort])).toEqual([
      ['server', 8081, 8081],
      ['deployer', 8082, 8082],
    ]);
    const ingress = one(resources, 'kubernetes:networking.k8s.io/v1:Ingress', 'deployer-server').inputs
      .spec as {
      ingressClassName: string;
      tls: { hosts: string[]; secretName: string }[];
      rules: {
        host: string;
        http: { paths: { backend: { service: { name: string; port: { number: number } } } }[] };
      }[];
    };
    expect(ingress.ingressClassName).toBe('traefik');
    expect(
      Object.fromEntries(
        ingress.rules.map((r) => [
          r.host,
          r.http.paths.map((p) => [p.backend.service.name, p.backend.service.port.number]),
        ]),
      ),
    ).toEqual({
      'api.deploy.example.com': [['deployer-server', 8082]],
      'mcp.deploy.example.com': [['deployer-server', 8081]],
      'git.deploy.example.com': [['deployer-server', 8081]],
    });
    const certificate = one(resources, 'kubernetes:cert-manager.io/v1:Certificate', 'product-names')
      .inputs as {
      metadata: { namespace: string };
      spec: { secretName: string; dnsNames: string[]; issuerRef: { kind: string; name: string } };
    };
    expect(certificate.metadata.namespace).toBe('deploy-mcp-system');
    expect(certificate.spec.dnsNames.sort()).toEqual([
      'api.deploy.example.com',
      'git.deploy.example.com',
      'mcp.deploy.example.com',
    ]);
    expect(certificate.spec.issuerRef).toEqual({ kind: 'ClusterIssuer', name: 'letsencrypt' });
    expect(ingress.tls).toEqual([
      {
        hosts: ['api.deploy.example.com', 'mcp.deploy.example.com', 'git.deploy.example.com'],
        secretName: certificate.spec.secretName,
      },
    ]);
    // The pod listens where the Service sends, says so when ready, and hands out its public address.
    const server = podSpecOf(
      one(resources, 'kubernetes:apps/v1:Deployment', 'deployer-server'),
    ) as PodSpec & {
      containers: { readinessProbe?: { httpGet: { path: string; port: number } } }[];
    };
    expect(server.containers[0]?.readinessProbe?.httpGet).toEqual({ path: '/healthz', port: 8081 });
    const config = loadConfig(envOf(server));
    expect([config.port, config.deployerPort, config.publicUrl]).toEqual([
      8081,
      8082,
      'https://mcp.deploy.example.com',
    ]);
    // Without cert-manager, Traefik's default certificate: no tls block naming a Secret nobody issues.
    const { resources: plain } = await runWithMocks(platformProgram(testConfig({ certManager: false })));
    expect(
      (
        one(plain, 'kubernetes:networking.k8s.io/v1:Ingress', 'deployer-server').inputs.spec as {
          tls?: unknown;
        }
      ).tls,
    ).toBeUndefined();
  });
});

describe('pool labels and taints kept on live nodes (node-pools.ts, pulumi.runtime.setMocks)', () => {
  type NodePatchInputs = {
    metadata: { name: string; labels: Record<string, string>; annotations: Record<string, string> };
    spec: { taints: unknown[] };
  };
  const patchesOf = (resources: Registered[]) =>
    resources
      .filter((r) => r.type === 'kubernetes:core/v1:NodePatch')
      .map((r) => ({ name: r.name, provider: r.provider, ...(r.inputs as NodePatchInputs) }));
  const servers = (resources: Registered[]) =>
    resources.filter((r) => r.type === 'hcloud:index/server:Server').map((r) => r.name);

  it("one NodePatch per server with its pool's label and exactly its pool's taints (ops and build NoSchedule, run and ctrl none), forced, by the layer's field manager", async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const patches = patchesOf(resources);
    // Every server of the cloud layer, and nothing else, is patched under its own name.
    expect(patches.map((p) => p.metadata.name).sort()).toEqual(servers(resources).sort());
    expect(patches.map((p) => p.metadata.name).sort()).toEqual(
      ['ctrl-1', 'ops-1', 'build-1', 'build-2', 'run-1', 'run-2', 'run-3'].sort(),
    );
    for (const p of patches) {
      const pool = p.metadata.name.replace(/-\d+$/, '');
      expect(p.name).toBe(`node-${p.metadata.name}`);
      expect(p.provider).toMatch(/::platform-cluster::mock-provider-id$/);
      expect(p.metadata.labels).toEqual({ 'deploy-mcp.dev/pool': pool });
      expect(p.metadata.annotations).toEqual({
        'pulumi.com/patchForce': 'true',
        'pulumi.com/patchFieldManager': 'deploy-mcp-platform-nodes',
      });
      expect(p.spec.taints, p.metadata.name).toEqual(
        pool === 'ops' || pool === 'build'
          ? [{ key: 'deploy-mcp.dev/pool', value: pool, effect: 'NoSchedule' }]
          : [],
      );
    }
  });

  it('keeps the registration flags: each node still registers with the same label and taints (k3s through Ansible)', async () => {
    const { resources } = await runWithMocks(platformProgram(testConfig()));
    const patches = patchesOf(resources);
    const joins = resources.filter((r) => r.type === 'command:local:Command' && r.name.startsWith('k3s-'));
    expect(joins.map((j) => j.name.replace(/^k3s-/, '')).sort()).toEqual(
      patches.map((p) => p.metadata.name).sort(),
    );
    // What Ansible is handed for each node (only its pool and name matter to labels and taints).
    const server = (name: string) =>
      ({ name, pool: name.replace(/-\d+$/, ''), privateIp: '10.0.1.10' }) as unknown as Node;
    for (const p of patches) {
      const vars = nodeVars(testConfig(), server(p.metadata.name), server('ctrl-1'), '10.0.1.20:5000');
      expect(vars.k3s_node_labels).toEqual(Object.entries(p.metadata.labels).map(([k, v]) => `${k}=${v}`));
      expect(vars.k3s_node_taints).toEqual(
        (p.spec.taints as { key: string; value: string; effect: string }[]).map(
          (t) => `${t.key}=${t.value}:${t.effect}`,
        ),
      );
    }
  });

  it('names are stable across updates: a node added or a setting changed renames no patch', async () => {
    const before = patchesOf((await runWithMocks(platformProgram(testConfig()))).resources);
    const config = testConfig();
    const after = patchesOf(
      (
        await runWithMocks(
          platformProgram({
            ...config,
            pools: { ...config.pools, run: { count: 4, serverType: 'cx52' } },
            images: { ...config.images, traefik: 'traefik:v3.6' },
          }),
        )
      ).resources,
    );
    const byName = (ps: typeof before) => Object.fromEntries(ps.map((p) => [p.name, p]));
    expect(Object.keys(byName(after)).sort()).toEqual([...Object.keys(byName(before)), 'node-run-4'].sort());
    for (const [name, p] of Object.entries(byName(before))) expect(byName(after)[name]).toEqual(p);
  });

  it('on one node, its node (pool all, no taints); without nodes given, no node is touched', async () => {
    const config = testConfig({ singleNode: single, certManager: false });
    const layer = (poolNodes?: { name: string; pool: typeof ALL_POOLS }[]) => async () => {
      clusterLayer(config, { kubeconfig: 'apiVersion: v1', registryHost: '127.0.0.1:15000', poolNodes });
      return {};
    };
    const one = patchesOf((await runWithMocks(layer([{ name: 'localhost', pool: ALL_POOLS }]))).resources);
    expect(one.map((p) => [p.name, p.metadata.name, p.metadata.labels, p.spec.taints])).toEqual([
      ['node-localhost', 'localhost', { 'deploy-mcp.dev/pool': 'all' }, []],
    ]);
    expect(patchesOf((await runWithMocks(layer())).resources)).toEqual([]);
  });
});
