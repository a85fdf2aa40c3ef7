import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

describe('loadConfig', () => {
  it('defaults to the embedded setup under ./.data', () => {
    const c = loadConfig({}, '/srv/app');
    expect(c.dataDir).toBe('/srv/app/.data');
    expect(c.databaseUrl).toBe(`file:${path.join('/srv/app/.data', 'deploy-mcp.db')}`);
    expect(c.port).toBe(8081);
    expect(c.publicUrl).toBe('http://localhost:8081');
    expect(c.temporal.address).toBeUndefined();
  });

  it('takes PostgreSQL and an external Temporal for production', () => {
    const c = loadConfig(
      {
        DEPLOY_MCP_DATABASE_URL: 'postgres://u@db/deploy',
        DEPLOY_MCP_TEMPORAL_ADDRESS: 'temporal:7233',
        DEPLOY_MCP_PUBLIC_URL: 'https://mcp.example.com/',
      },
      '/srv/app',
    );
    expect(c.databaseUrl).toBe('postgres://u@db/deploy');
    expect(c.temporal.address).toBe('temporal:7233');
    expect(c.publicUrl).toBe('https://mcp.example.com');
  });

  it('keeps tenant stacks in the file backend under the data dir unless a backend URL is set', () => {
    expect(loadConfig({}, '/srv/app').pulumiBackendUrl).toBe('file:///srv/app/.data/pulumi');
    const url = (v: string) => loadConfig({ DEPLOY_MCP_PULUMI_BACKEND_URL: v }, '/srv/app').pulumiBackendUrl;
    expect(url('s3://tenant-stacks?region=eu-central-1')).toBe('s3://tenant-stacks?region=eu-central-1');
    expect(url('https://api.pulumi.com')).toBe('https://api.pulumi.com');
    expect(url('file:///var/lib/pulumi')).toBe('file:///var/lib/pulumi');
    expect(url('file://state/pulumi')).toBe('file:///srv/app/state/pulumi'); // relative to the cwd
    expect(() => url('/var/lib/pulumi')).toThrow(
      /DEPLOY_MCP_PULUMI_BACKEND_URL: must be a Pulumi backend URL/,
    );
  });

  it('names every invalid variable in one error; blank values count as unset', () => {
    const bad = () =>
      loadConfig({
        DEPLOY_MCP_PORT: '70000',
        DEPLOY_MCP_DATABASE_URL: 'mysql://x',
        DEPLOY_MCP_LOG_LEVEL: '',
      });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/DEPLOY_MCP_PORT/);
    expect(bad).toThrow(/DEPLOY_MCP_DATABASE_URL: must start with file:/);
    expect(bad).not.toThrow(/LOG_LEVEL/);
  });

  it('takes an external runtime only whole, naming what is missing', () => {
    expect(loadConfig({}).runtime.external).toBeUndefined();
    const whole = {
      DEPLOY_MCP_BUILDKIT_ADDRESS: 'unix:///run/buildkit/buildkitd.sock',
      DEPLOY_MCP_REGISTRY: '127.0.0.1:5000',
      DEPLOY_MCP_ENGINE_SOCKET: 'run/podman.sock',
      DEPLOY_MCP_ROUTES_DIR: '/var/lib/routes',
    };
    expect(loadConfig(whole, '/srv/app').runtime.external).toEqual({
      buildkitAddress: 'unix:///run/buildkit/buildkitd.sock',
      registryHost: '127.0.0.1:5000',
      apps: { engineSocket: '/srv/app/run/podman.sock', routesDir: '/var/lib/routes' },
    });
    // On Kubernetes the cluster runs the apps: BuildKit and the registry are the whole runtime
    // (what the platform's deployer Deployments are given).
    const onKubernetes = {
      DEPLOY_MCP_RUNTIME: 'kubernetes',
      DEPLOY_MCP_KUBECONFIG: '/etc/deploy-mcp/kube/config',
      DEPLOY_MCP_BUILDKIT_ADDRESS: 'tcp://buildkitd.deploy-mcp-system:1234',
      DEPLOY_MCP_REGISTRY: '10.0.1.20:5000',
    };
    expect(loadConfig(onKubernetes).runtime.external).toEqual({
      buildkitAddress: 'tcp://buildkitd.deploy-mcp-system:1234',
      registryHost: '10.0.1.20:5000',
      apps: undefined,
    });
    expect(() => loadConfig({ ...onKubernetes, DEPLOY_MCP_REGISTRY: undefined })).toThrow(
      /missing: DEPLOY_MCP_REGISTRY$/,
    );
    const partial = () =>
      loadConfig({ ...whole, DEPLOY_MCP_ENGINE_SOCKET: '', DEPLOY_MCP_ROUTES_DIR: undefined });
    expect(partial).toThrow(ConfigError);
    expect(partial).toThrow(/missing: DEPLOY_MCP_ENGINE_SOCKET, DEPLOY_MCP_ROUTES_DIR$/);
    expect(() => loadConfig({ ...whole, DEPLOY_MCP_BUILDKIT_ADDRESS: '/run/buildkitd.sock' })).toThrow(
      /DEPLOY_MCP_BUILDKIT_ADDRESS: must be unix:\/\/ or tcp:\/\//,
    );
  });

  it('checks the base image prefix and the service limit', () => {
    expect(loadConfig({}).runtime.maxServicesPerUser).toBe(50);
    expect(
      loadConfig({ DEPLOY_MCP_BASE_IMAGE_PREFIX: 'reg.internal:5000/deploy-mcp' }).runtime.baseImagePrefix,
    ).toBe('reg.internal:5000/deploy-mcp');
    expect(() => loadConfig({ DEPLOY_MCP_BASE_IMAGE_PREFIX: 'reg.internal:5000' })).toThrow(
      /DEPLOY_MCP_BASE_IMAGE_PREFIX: must be host\[:port\]\/path/,
    );
    expect(() => loadConfig({ DEPLOY_MCP_MAX_SERVICES: '0' })).toThrow(/DEPLOY_MCP_MAX_SERVICES/);
  });

  it('reads the free-disk threshold of /healthz (MiB, default 512, 0 turns it off)', () => {
    expect(loadConfig({}).minFreeDiskMb).toBe(512);
    expect(loadConfig({ DEPLOY_MCP_MIN_FREE_DISK_MB: '0' }).minFreeDiskMb).toBe(0);
    expect(() => loadConfig({ DEPLOY_MCP_MIN_FREE_DISK_MB: '-1' })).toThrow(/DEPLOY_MCP_MIN_FREE_DISK_MB/);
  });

  it("reads the nodes' network tenants admit (DEPLOY_MCP_K8S_NODE_CIDR) and the pod network cut out of it", () => {
    const k8s = (env: Record<string, string>) =>
      loadConfig({ DEPLOY_MCP_RUNTIME: 'kubernetes', DEPLOY_MCP_KUBECONFIG: 'k', ...env }).runtime.kubernetes;
    expect(k8s({ DEPLOY_MCP_K8S_NODE_CIDR: '10.0.0.0/16' })).toMatchObject({
      nodeCidr: '10.0.0.0/16',
      podCidr: '10.42.0.0/16',
    });
    expect(
      k8s({ DEPLOY_MCP_K8S_NODE_CIDR: '10.0.0.0/8', DEPLOY_MCP_K8S_POD_CIDR: '10.244.0.0/16' }),
    ).toMatchObject({ nodeCidr: '10.0.0.0/8', podCidr: '10.244.0.0/16' });
    for (const bad of ['10.0.0.1/16', '10.0.0.0/33', '10.0.0.0', 'nodes'])
      expect(() => k8s({ DEPLOY_MCP_K8S_NODE_CIDR: bad })).toThrow(/DEPLOY_MCP_K8S_NODE_CIDR/);
    // Inside the pod network it would admit pods (other tenants'): refused.
    expect(() => k8s({ DEPLOY_MCP_K8S_NODE_CIDR: '10.42.3.0/24' })).toThrow(/inside the pod network/);
  });

  it('runs services on Kubernetes only with a kubeconfig, with the ingress defaults', () => {
    expect(loadConfig({}).runtime.kubernetes).toBeUndefined();
    expect(() => loadConfig({ DEPLOY_MCP_RUNTIME: 'kubernetes' })).toThrow(/needs DEPLOY_MCP_KUBECONFIG/);
    expect(() => loadConfig({ DEPLOY_MCP_RUNTIME: 'nomad' })).toThrow(/DEPLOY_MCP_RUNTIME/);
    const k8s = loadConfig(
      {
        DEPLOY_MCP_RUNTIME: 'kubernetes',
        DEPLOY_MCP_KUBECONFIG: 'kube/admin.json',
        DEPLOY_MCP_CLUSTER_REGISTRY: 'registry.internal:5000',
      },
      '/srv',
    ).runtime.kubernetes;
    expect(k8s).toEqual({
      kubeconfigPath: '/srv/kube/admin.json',
      context: undefined,
      ingressClass: 'traefik',
      ingressNamespace: 'kube-system',
      clusterRegistry: 'registry.internal:5000',
      tlsSecret: undefined,
      serviceAccount: undefined,
      nodeCidr: undefined,
      podCidr: '10.42.0.0/16',
    });
    expect(
      loadConfig({
        DEPLOY_MCP_RUNTIME: 'kubernetes',
        DEPLOY_MCP_KUBECONFIG: 'k',
        DEPLOY_MCP_KUBERNETES_SERVICE_ACCOUNT: 'deploy-mcp-system/deployer',
      }).runtime.kubernetes?.serviceAccount,
    ).toBe('deploy-mcp-system/deployer');
    expect(() =>
      loadConfig({
        DEPLOY_MCP_RUNTIME: 'kubernetes',
        DEPLOY_MCP_KUBECONFIG: 'k',
        DEPLOY_MCP_KUBERNETES_SERVICE_ACCOUNT: 'deployer',
      }),
    ).toThrow(/DEPLOY_MCP_KUBERNETES_SERVICE_ACCOUNT/);
    expect(() =>
      loadConfig({
        DEPLOY_MCP_RUNTIME: 'kubernetes',
        DEPLOY_MCP_KUBECONFIG: 'k',
        DEPLOY_MCP_CLUSTER_REGISTRY: 'http://x',
      }),
    ).toThrow(/DEPLOY_MCP_CLUSTER_REGISTRY/);
  });

  it('configures a GitHub App with both its id and key file, or not at all', () => {
    expect(loadConfig({}).github).toBeUndefined();
    expect(loadConfig({}).githubWebhookSecret).toBeUndefined();
    expect(() => loadConfig({ DEPLOY_MCP_GITHUB_APP_ID: '12' })).toThrow(/needs both/);
    expect(() => loadConfig({ DEPLOY_MCP_GITHUB_PRIVATE_KEY_FILE: 'k.pem' })).toThrow(/needs both/);
    expect(() => loadConfig({ DEPLOY_MCP_GITHUB_WEBHOOK_SECRET: 'short' })).toThrow(/at least 16/);
    const c = loadConfig(
      {
        DEPLOY_MCP_GITHUB_APP_ID: '12',
        DEPLOY_MCP_GITHUB_PRIVATE_KEY_FILE: 'keys/app.pem',
        DEPLOY_MCP_GITHUB_API_URL: 'http://127.0.0.1:9/api/v3/',
      },
      '/srv',
    );
    expect(c.github).toEqual({
      appId: 12,
      privateKeyFile: '/srv/keys/app.pem',
      apiUrl: 'http://127.0.0.1:9/api/v3',
      gitUrl: 'https://github.com',
    });
  });

  it('bounds disk use: a build cache cap and the release images kept per service', () => {
    expect(loadConfig({}).disk).toEqual({ buildCacheMb: 10_240, keepReleases: 10 });
    expect(loadConfig({ DEPLOY_MCP_BUILD_CACHE_MB: '2048', DEPLOY_MCP_KEEP_RELEASES: '3' }).disk).toEqual({
      buildCacheMb: 2048,
      keepReleases: 3,
    });
    expect(() => loadConfig({ DEPLOY_MCP_KEEP_RELEASES: '0' })).toThrow(/DEPLOY_MCP_KEEP_RELEASES/);
    expect(() => loadConfig({ DEPLOY_MCP_BUILD_CACHE_MB: '10' })).toThrow(/DEPLOY_MCP_BUILD_CACHE_MB/);
  });
});

describe('loadConfig: who may read /metrics', () => {
  it('nobody by default; a token (which wins over public), or anyone', () => {
    expect(loadConfig({}).metrics).toEqual({ mode: 'off' });
    expect(loadConfig({ DEPLOY_MCP_METRICS: 'public' }).metrics).toEqual({ mode: 'public' });
    const token = 'a-metrics-token-of-32-characters';
    expect(loadConfig({ DEPLOY_MCP_METRICS_TOKEN: token }).metrics).toEqual({ mode: 'token', token });
    expect(loadConfig({ DEPLOY_MCP_METRICS_TOKEN: token, DEPLOY_MCP_METRICS: 'public' }).metrics).toEqual({
      mode: 'token',
      token,
    });
    expect(() => loadConfig({ DEPLOY_MCP_METRICS_TOKEN: 'short' })).toThrow(/DEPLOY_MCP_METRICS_TOKEN/);
    expect(() => loadConfig({ DEPLOY_MCP_METRICS: 'yes' })).toThrow(/DEPLOY_MCP_METRICS/);
  });
});

describe('loadConfig: the build daemons on demand', () => {
  it('stop after 10 idle minutes by default; 0 keeps them up; out of range is refused', () => {
    expect(loadConfig({}).daemons).toEqual({ idleStopMs: 600_000 });
    expect(loadConfig({ DEPLOY_MCP_DAEMONS_IDLE_SECONDS: '0' }).daemons).toEqual({ idleStopMs: 0 });
    expect(loadConfig({ DEPLOY_MCP_DAEMONS_IDLE_SECONDS: '30' }).daemons).toEqual({ idleStopMs: 30_000 });
    expect(() => loadConfig({ DEPLOY_MCP_DAEMONS_IDLE_SECONDS: '-1' })).toThrow(
      /DEPLOY_MCP_DAEMONS_IDLE_SECONDS/,
    );
  });
});
