import path from 'node:path';
import { z } from 'zod';
import type { MetricsAccess } from './metrics.ts';
import { type Cidr, cidrContains, parseCidr } from './network/cidr.ts';

// Settings of resources (databases; issue 11), spread into the schema below.
const resourceSettingsSchema = {
  DEPLOY_MCP_MAX_RESOURCES: z.coerce.number().int().min(1).max(100_000).default(20),
  DEPLOY_MCP_BACKUP_RETENTION_DAYS: z.coerce.number().int().min(0).max(3650).default(7),
  DEPLOY_MCP_POSTGRES_PORT: z.coerce.number().int().min(1).max(65535).default(5433),
  DEPLOY_MCP_POSTGRES_ADMIN_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// URL')
    .optional(),
  DEPLOY_MCP_POSTGRES_APP_HOST: z.string().min(1).optional(),
  ...tursoSettingsSchema(),
};

// Who may read GET /metrics (core/metrics.ts): a token, or public; neither: not served (404).
const metricsSettingsSchema = {
  DEPLOY_MCP_METRICS: z.enum(['public']).optional(),
  DEPLOY_MCP_METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').max(512).optional(),
};

/** Every setting Deploy MCP reads, parsed once at start-up. `.env.example` documents each. */
const schema = z.object({
  DEPLOY_MCP_DATA_DIR: z.string().min(1).default('./.data'),
  DEPLOY_MCP_DATABASE_URL: z
    .string()
    .regex(/^(file:|postgres(ql)?:\/\/)/, 'must start with file: (embedded) or postgres://')
    .optional(),
  DEPLOY_MCP_HOST: z.string().min(1).default('127.0.0.1'),
  DEPLOY_MCP_PORT: z.coerce.number().int().min(1).max(65535).default(8081),
  DEPLOY_MCP_DEPLOYER_PORT: z.coerce.number().int().min(1).max(65535).default(8082),
  DEPLOY_MCP_PUBLIC_URL: z.url().optional(),
  DEPLOY_MCP_TEMPORAL_ADDRESS: z.string().optional(),
  DEPLOY_MCP_TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  DEPLOY_MCP_TEMPORAL_PORT: z.coerce.number().int().min(1).max(65535).default(7233),
  DEPLOY_MCP_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  DEPLOY_MCP_TOOLS_DIR: z.string().min(1).default('./.tools'),
  DEPLOY_MCP_PULUMI_BACKEND_URL: z
    .string()
    .regex(
      /^[a-z][a-z0-9+.-]*:\/\/\S+$/,
      'must be a Pulumi backend URL: file://<dir>, s3://<bucket>, https://api.pulumi.com, …',
    )
    .optional(),
  DEPLOY_MCP_SECRET_KEY: z.string().optional(),
  DEPLOY_MCP_ALLOWED_ORIGINS: z.string().optional(),
  DEPLOY_MCP_INGRESS_PORT: z.coerce.number().int().min(1).max(65535).default(8080),
  DEPLOY_MCP_REGISTRY_PORT: z.coerce.number().int().min(1).max(65535).default(5000),
  // A runtime started elsewhere (all four, or none: then the deployer-worker starts its own).
  DEPLOY_MCP_BUILDKIT_ADDRESS: z
    .string()
    .regex(/^(unix|tcp):\/\//, 'must be unix:// or tcp://')
    .optional(),
  DEPLOY_MCP_REGISTRY: z
    .string()
    .regex(/^[a-z0-9.-]+:\d+$/, 'must be host:port')
    .optional(),
  DEPLOY_MCP_ENGINE_SOCKET: z.string().min(1).optional(),
  DEPLOY_MCP_ROUTES_DIR: z.string().min(1).optional(),
  DEPLOY_MCP_APPS_DOMAIN: z
    .string()
    .regex(/^[a-z0-9.-]+$/, 'must be a domain name')
    .default('localhost'),
  DEPLOY_MCP_BUILD_TIMEOUT_SECONDS: z.coerce.number().int().min(30).max(7200).default(900),
  DEPLOY_MCP_BUILD_MEMORY_MB: z.coerce.number().int().min(0).max(1_048_576).default(2048),
  // Builds one deployer worker runs at once; other deployments wait, queued (issue 15).
  DEPLOY_MCP_MAX_BUILDS: z.coerce.number().int().min(1).max(64).default(2),
  DEPLOY_MCP_BASE_IMAGE_PREFIX: z
    .string()
    .regex(
      /^[a-z0-9.-]+(:\d+)?(\/[a-z0-9._-]+)+$/,
      'must be host[:port]/path, e.g. registry.internal:5000/deploy-mcp',
    )
    .optional(),
  DEPLOY_MCP_HEALTH_TIMEOUT_SECONDS: z.coerce.number().int().min(5).max(600).default(60),
  DEPLOY_MCP_REGISTRY_MIRRORS: z
    .string()
    .regex(
      /^\s*([a-z0-9.-]+(:\d+)?=[a-z0-9.-]+(:\d+)?(\/[a-z0-9._-]+)*\s*(,\s*|$))*$/,
      'must be registry=mirror pairs, e.g. docker.io=mirror.internal:5000,ghcr.io=mirror.internal:5001',
    )
    .default(''),
  DEPLOY_MCP_GIT_TOKEN_TTL_SECONDS: z.coerce.number().int().min(60).max(86_400).default(3600),
  DEPLOY_MCP_GIT_MAX_PUSH_MB: z.coerce.number().int().min(1).max(10_240).default(200),
  DEPLOY_MCP_GIT_MAX_REPO_MB: z.coerce.number().int().min(1).max(102_400).default(1024),
  DEPLOY_MCP_GIT_MAX_REPOS: z.coerce.number().int().min(1).max(100_000).default(100),
  DEPLOY_MCP_MAX_SERVICES: z.coerce.number().int().min(1).max(100_000).default(50),
  // Where services run: the embedded podman + Traefik runtime, or a Kubernetes cluster.
  DEPLOY_MCP_RUNTIME: z.enum(['local', 'kubernetes']).default('local'),
  DEPLOY_MCP_KUBECONFIG: z.string().min(1).optional(),
  DEPLOY_MCP_KUBE_CONTEXT: z.string().min(1).optional(),
  DEPLOY_MCP_INGRESS_CLASS: z.string().min(1).default('traefik'),
  DEPLOY_MCP_INGRESS_NAMESPACE: z.string().min(1).default('kube-system'),
  DEPLOY_MCP_CLUSTER_REGISTRY: z
    .string()
    .regex(/^[a-z0-9.-]+(:\d+)?$/, 'must be host[:port]')
    .optional(),
  DEPLOY_MCP_INGRESS_TLS_SECRET: z.string().min(1).optional(),
  // The deployer's own ServiceAccount (namespace/name) when it runs with the narrow access of
  // tenant-stacks/kubernetes/deployer-access.ts: each tenant namespace binds it the tenant role.
  DEPLOY_MCP_KUBERNETES_SERVICE_ACCOUNT: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be namespace/name')
    .optional(),
  // The nodes' private network (IPv4 CIDR), admitted by tenants' ingress NetworkPolicy: a
  // host-network ingress controller connects from node addresses. Unset: the controller's
  // namespace only. The pod network (DEPLOY_MCP_K8S_POD_CIDR, k3s's by default) is cut out of it.
  DEPLOY_MCP_K8S_NODE_CIDR: z
    .string()
    .refine((v) => parseCidr(v) !== undefined, 'must be an IPv4 CIDR such as 10.0.0.0/16')
    .optional(),
  DEPLOY_MCP_K8S_POD_CIDR: z
    .string()
    .refine((v) => parseCidr(v) !== undefined, 'must be an IPv4 CIDR such as 10.42.0.0/16')
    .default('10.42.0.0/16'),
  DEPLOY_MCP_MIN_FREE_DISK_MB: z.coerce.number().int().min(0).max(1_048_576).default(512),
  // Sign-in providers besides the login code (mcp/auth/): Firebase Auth, GitHub OAuth.
  DEPLOY_MCP_FIREBASE_PROJECT_ID: z
    .string()
    .regex(/^[a-z0-9-]{4,40}$/, 'must be a Firebase project id')
    .optional(),
  DEPLOY_MCP_FIREBASE_API_KEY: z.string().min(1).max(200).optional(),
  DEPLOY_MCP_FIREBASE_AUTH_EMULATOR: z
    .string()
    .regex(/^[a-z0-9.-]+:\d+$/, 'must be host:port')
    .optional(),
  DEPLOY_MCP_GITHUB_SIGN_IN_CLIENT_ID: z.string().min(1).max(200).optional(),
  DEPLOY_MCP_GITHUB_SIGN_IN_CLIENT_SECRET: z.string().min(1).max(500).optional(),
  DEPLOY_MCP_GITHUB_SIGN_IN_WEB_URL: z.url().default('https://github.com'),
  DEPLOY_MCP_GITHUB_SIGN_IN_API_URL: z.url().default('https://api.github.com'),
  // GitHub App (core/github/README.md): all of app id and private key, or neither.
  DEPLOY_MCP_GITHUB_APP_ID: z.coerce.number().int().min(1).optional(),
  DEPLOY_MCP_GITHUB_PRIVATE_KEY_FILE: z.string().min(1).optional(),
  DEPLOY_MCP_GITHUB_WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  DEPLOY_MCP_GITHUB_API_URL: z.url().default('https://api.github.com'),
  DEPLOY_MCP_GITHUB_GIT_URL: z.url().default('https://github.com'),
  // Disk bounds: BuildKit's cache cap and the release images the registry keeps per service.
  DEPLOY_MCP_BUILD_CACHE_MB: z.coerce.number().int().min(256).max(10_485_760).default(10_240),
  // Embedded registry, buildkitd and podman: stopped after this long without a build or deploy; 0: always up.
  DEPLOY_MCP_DAEMONS_IDLE_SECONDS: z.coerce.number().int().min(0).max(604_800).default(600),
  DEPLOY_MCP_KEEP_RELEASES: z.coerce.number().int().min(1).max(1000).default(10),
  ...resourceSettingsSchema,
  ...metricsSettingsSchema,
});

export type Config = {
  /** Absolute directory holding all state of the embedded default. */
  dataDir: string;
  /** Database URL: `file:` for the embedded SQLite database, `postgres://` for PostgreSQL. */
  databaseUrl: string;
  host: string;
  /** Port of the MCP server role (/mcp, OAuth, web pages, /healthz). */
  port: number;
  /** Port of the deployer-server role (webhooks, /healthz). */
  deployerPort: number;
  /** Base URL agents and git clients use to reach the server. */
  publicUrl: string;
  temporal: {
    /** host:port of an external Temporal; undefined means role `all` starts a dev server. */
    address: string | undefined;
    namespace: string;
    /** Port for the embedded dev server. */
    devServerPort: number;
  };
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  /** Directory `npm run setup` fills with pinned binaries (bin/) and Node.js (node/bin/). */
  toolsDir: string;
  /** Pulumi backend of the tenant stacks; `file://<dataDir>/pulumi` unless configured. */
  pulumiBackendUrl: string;
  /** Base64 master key for secrets at rest; undefined: `<dataDir>/secret.key` (created once). */
  secretKey: string | undefined;
  /** Browser origins allowed to call /mcp (besides the public URL's own origin). */
  allowedOrigins: string[];
  /** /healthz reports degraded while the data dir's file system has less free space (MiB; 0: never). */
  minFreeDiskMb: number;
  runtime: {
    /** Traefik's entry point for apps: http://<name>.<appsDomain>:<ingressPort>. */
    ingressPort: number;
    /** Port of the embedded OCI registry on 127.0.0.1. */
    registryPort: number;
    appsDomain: string;
    /** Daemons started elsewhere; undefined means the deployer-worker starts the embedded ones. */
    external: ExternalRuntime | undefined;
    buildTimeoutMs: number;
    /** Memory all build steps of the embedded buildkitd may use together, in MiB; 0: no cap. */
    buildMemoryMb: number;
    /** Builds one deployer worker runs at once (the build task queue's activity slots). */
    maxBuilds: number;
    /** Live services one user may have (create_service refuses a new one beyond it). */
    maxServicesPerUser: number;
    /** Where base images live (`host:port/path`); undefined: `<the registry>/deploy-mcp`. */
    baseImagePrefix: string | undefined;
    healthTimeoutMs: number;
    /** Pull-through caches the embedded buildkitd pulls public registries' images from (registry → mirror). */
    registryMirrors: Record<string, string>;
    /** Set when services run on Kubernetes (DEPLOY_MCP_RUNTIME=kubernetes) instead of podman. */
    kubernetes: KubernetesSettings | undefined;
  };
  /** Sign-in providers besides the operator's login code; undefined when not configured. */
  signIn: SignInSettings;
  /** Databases agents create (create_resource): limits and where they live. */
  resources: ResourceSettings;
  git: {
    /** Lifetime of the tokens in issued git remotes (capped at 24 h). */
    tokenTtlSeconds: number;
    maxPushBytes: number;
    maxRepoBytes: number;
    maxReposPerUser: number;
  };
  /** What keeps the data dir's disk use bounded. */
  disk: {
    /** BuildKit's cache is garbage-collected above this size (MiB), and when the disk has < 10% free. */
    buildCacheMb: number;
    /** Images of the newest this-many releases of each live service stay in the registry (the serving one always). */
    keepReleases: number;
  };
  /** The embedded build and deploy daemons (registry, buildkitd, podman) started on demand. */
  daemons: {
    /** They stop after this long without a build or deploy (ms); 0: started with the server, always up. */
    idleStopMs: number;
  };
  /** The GitHub App; undefined when none is configured (host "github" is then refused). */
  github: GitHubSettings | undefined;
  /** Secret GitHub signs webhooks with; undefined: every delivery is refused (401). */
  githubWebhookSecret: string | undefined;
  /** Who may read GET /metrics on the server and deployer ports. */
  metrics: MetricsAccess;
};

/** Our GitHub App and where GitHub is reached (tests point both URLs at a local fake). */
export type GitHubSettings = {
  appId: number;
  /** Absolute path of the App's PEM private key (read when the App is built, never logged). */
  privateKeyFile: string;
  /** REST API base URL, e.g. https://api.github.com. */
  apiUrl: string;
  /** Base URL of git over HTTPS, e.g. https://github.com (clone URLs are <gitUrl>/<owner>/<name>.git). */
  gitUrl: string;
};

/** The cluster services run on, and how its ingress is reached. */
export type KubernetesSettings = {
  /** Absolute path of the kubeconfig (embedded credentials, or a pod's ServiceAccount files). */
  kubeconfigPath: string;
  /** Its context to use; undefined: the current one. */
  context: string | undefined;
  ingressClass: string;
  /** Namespace of the ingress controller's pods (tenants' NetworkPolicies let it in). */
  ingressNamespace: string;
  /** host[:port] the cluster pulls images from, when it names our registry differently. */
  clusterRegistry: string | undefined;
  /** Secret (in each tenant namespace, or the controller's default) with the apps' TLS certificate. */
  tlsSecret: string | undefined;
  /** The deployer's ServiceAccount ("namespace/name") when its access is the narrow one; else undefined. */
  serviceAccount: string | undefined;
  /** The nodes' private network, admitted to tenants' pods (a host-network ingress controller); undefined: none. */
  nodeCidr: string | undefined;
  /** The pod network, cut out of nodeCidr. */
  podCidr: string;
};

/** Firebase Auth and GitHub OAuth sign-in (mcp/auth/). */
export type SignInSettings = {
  firebase:
    | {
        projectId: string;
        /** The web API key the sign-in page uses with Firebase Auth's REST API. */
        apiKey: string;
        /** host:port of the Auth emulator (demo- projects only: it accepts unsigned tokens). */
        authEmulatorHost: string | undefined;
      }
    | undefined;
  github:
    | {
        clientId: string;
        clientSecret: string;
        /** https://github.com, or a fake's URL in tests. */
        webUrl: string;
        apiUrl: string;
      }
    | undefined;
};

/** Addresses of a runtime the deployer-worker uses instead of starting its own. */
export type ExternalRuntime = {
  buildkitAddress: string;
  /** host:port of the OCI registry images are pushed to and pulled from. */
  registryHost: string;
  /** Where apps run on this machine; undefined on Kubernetes (the cluster runs them). */
  apps:
    | {
        /** Unix socket of the Docker Engine API (podman's compat service). */
        engineSocket: string;
        /** Traefik's file-provider directory. */
        routesDir: string;
      }
    | undefined;
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses and validates configuration; the only place that sees the environment. */
export function loadConfig(env: Record<string, string | undefined>, cwd: string = process.cwd()): Config {
  const parsed = schema.safeParse(blankToUndefined(env));
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const dataDir = path.resolve(cwd, e.DEPLOY_MCP_DATA_DIR);
  return {
    dataDir,
    databaseUrl: e.DEPLOY_MCP_DATABASE_URL ?? `file:${path.join(dataDir, 'deploy-mcp.db')}`,
    host: e.DEPLOY_MCP_HOST,
    port: e.DEPLOY_MCP_PORT,
    deployerPort: e.DEPLOY_MCP_DEPLOYER_PORT,
    publicUrl: (e.DEPLOY_MCP_PUBLIC_URL ?? `http://localhost:${e.DEPLOY_MCP_PORT}`).replace(/\/$/, ''),
    temporal: {
      address: e.DEPLOY_MCP_TEMPORAL_ADDRESS,
      namespace: e.DEPLOY_MCP_TEMPORAL_NAMESPACE,
      devServerPort: e.DEPLOY_MCP_TEMPORAL_PORT,
    },
    logLevel: e.DEPLOY_MCP_LOG_LEVEL,
    toolsDir: path.resolve(cwd, e.DEPLOY_MCP_TOOLS_DIR),
    pulumiBackendUrl: pulumiBackendUrl(e.DEPLOY_MCP_PULUMI_BACKEND_URL, dataDir, cwd),
    secretKey: e.DEPLOY_MCP_SECRET_KEY,
    allowedOrigins: (e.DEPLOY_MCP_ALLOWED_ORIGINS ?? '')
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean),
    minFreeDiskMb: e.DEPLOY_MCP_MIN_FREE_DISK_MB,
    runtime: {
      ingressPort: e.DEPLOY_MCP_INGRESS_PORT,
      registryPort: e.DEPLOY_MCP_REGISTRY_PORT,
      appsDomain: e.DEPLOY_MCP_APPS_DOMAIN,
      external: externalRuntime(e, cwd),
      buildTimeoutMs: e.DEPLOY_MCP_BUILD_TIMEOUT_SECONDS * 1000,
      buildMemoryMb: e.DEPLOY_MCP_BUILD_MEMORY_MB,
      maxBuilds: e.DEPLOY_MCP_MAX_BUILDS,
      maxServicesPerUser: e.DEPLOY_MCP_MAX_SERVICES,
      baseImagePrefix: e.DEPLOY_MCP_BASE_IMAGE_PREFIX,
      healthTimeoutMs: e.DEPLOY_MCP_HEALTH_TIMEOUT_SECONDS * 1000,
      registryMirrors: Object.fromEntries(
        e.DEPLOY_MCP_REGISTRY_MIRRORS.split(',')
          .map((pair) => pair.trim().split('='))
          .filter((kv): kv is [string, string] => kv.length === 2 && !!kv[0] && !!kv[1]),
      ),
      kubernetes: kubernetesSettings(e, cwd),
    },
    signIn: signInSettings(e),
    resources: resourceSettings(e),
    git: {
      tokenTtlSeconds: e.DEPLOY_MCP_GIT_TOKEN_TTL_SECONDS,
      maxPushBytes: e.DEPLOY_MCP_GIT_MAX_PUSH_MB * 1024 * 1024,
      maxRepoBytes: e.DEPLOY_MCP_GIT_MAX_REPO_MB * 1024 * 1024,
      maxReposPerUser: e.DEPLOY_MCP_GIT_MAX_REPOS,
    },
    disk: {
      buildCacheMb: e.DEPLOY_MCP_BUILD_CACHE_MB,
      keepReleases: e.DEPLOY_MCP_KEEP_RELEASES,
    },
    daemons: { idleStopMs: e.DEPLOY_MCP_DAEMONS_IDLE_SECONDS * 1000 },
    github: githubSettings(e, cwd),
    githubWebhookSecret: e.DEPLOY_MCP_GITHUB_WEBHOOK_SECRET,
    metrics: metricsAccess(e),
  };
}

/** A token wins over public: setting both still asks for the token. */
function metricsAccess(e: z.infer<typeof schema>): MetricsAccess {
  if (e.DEPLOY_MCP_METRICS_TOKEN) return { mode: 'token', token: e.DEPLOY_MCP_METRICS_TOKEN };
  return e.DEPLOY_MCP_METRICS === 'public' ? { mode: 'public' } : { mode: 'off' };
}

function githubSettings(e: z.infer<typeof schema>, cwd: string): GitHubSettings | undefined {
  const id = e.DEPLOY_MCP_GITHUB_APP_ID;
  const key = e.DEPLOY_MCP_GITHUB_PRIVATE_KEY_FILE;
  if (id === undefined && key === undefined) return undefined;
  if (id === undefined || key === undefined)
    throw new ConfigError(
      'invalid configuration:\n  a GitHub App needs both DEPLOY_MCP_GITHUB_APP_ID and DEPLOY_MCP_GITHUB_PRIVATE_KEY_FILE',
    );
  return {
    appId: id,
    privateKeyFile: path.resolve(cwd, key),
    apiUrl: e.DEPLOY_MCP_GITHUB_API_URL.replace(/\/$/, ''),
    gitUrl: e.DEPLOY_MCP_GITHUB_GIT_URL.replace(/\/$/, ''),
  };
}

function externalRuntime(e: z.infer<typeof schema>, cwd: string): ExternalRuntime | undefined {
  // On Kubernetes the cluster runs the apps: only the build side (BuildKit, registry) is needed.
  const local = e.DEPLOY_MCP_RUNTIME === 'local';
  const given = {
    DEPLOY_MCP_BUILDKIT_ADDRESS: e.DEPLOY_MCP_BUILDKIT_ADDRESS,
    DEPLOY_MCP_REGISTRY: e.DEPLOY_MCP_REGISTRY,
    ...(local
      ? {
          DEPLOY_MCP_ENGINE_SOCKET: e.DEPLOY_MCP_ENGINE_SOCKET,
          DEPLOY_MCP_ROUTES_DIR: e.DEPLOY_MCP_ROUTES_DIR,
        }
      : {}),
  };
  const missing = Object.entries(given).filter(([, v]) => v === undefined);
  if (missing.length === Object.keys(given).length) return undefined;
  if (missing.length > 0) {
    throw new ConfigError(
      `invalid configuration:\n  an external runtime needs all of ${Object.keys(given).join(', ')}; ` +
        `missing: ${missing.map(([k]) => k).join(', ')}`,
    );
  }
  return {
    buildkitAddress: e.DEPLOY_MCP_BUILDKIT_ADDRESS as string,
    registryHost: e.DEPLOY_MCP_REGISTRY as string,
    apps: local
      ? {
          engineSocket: path.resolve(cwd, e.DEPLOY_MCP_ENGINE_SOCKET as string),
          routesDir: path.resolve(cwd, e.DEPLOY_MCP_ROUTES_DIR as string),
        }
      : undefined,
  };
}

function kubernetesSettings(e: z.infer<typeof schema>, cwd: string): KubernetesSettings | undefined {
  if (e.DEPLOY_MCP_RUNTIME !== 'kubernetes') return undefined;
  if (!e.DEPLOY_MCP_KUBECONFIG)
    throw new ConfigError(
      'invalid configuration:\n  DEPLOY_MCP_RUNTIME=kubernetes needs DEPLOY_MCP_KUBECONFIG (the path of a kubeconfig)',
    );
  return {
    kubeconfigPath: path.resolve(cwd, e.DEPLOY_MCP_KUBECONFIG),
    context: e.DEPLOY_MCP_KUBE_CONTEXT,
    ingressClass: e.DEPLOY_MCP_INGRESS_CLASS,
    ingressNamespace: e.DEPLOY_MCP_INGRESS_NAMESPACE,
    clusterRegistry: e.DEPLOY_MCP_CLUSTER_REGISTRY,
    tlsSecret: e.DEPLOY_MCP_INGRESS_TLS_SECRET,
    serviceAccount: e.DEPLOY_MCP_KUBERNETES_SERVICE_ACCOUNT,
    ...nodeNetwork(e),
  };
}

/** DEPLOY_MCP_K8S_NODE_CIDR and the pod network cut out of it; a node network inside the pod network admits nothing. */
function nodeNetwork(e: z.infer<typeof schema>): Pick<KubernetesSettings, 'nodeCidr' | 'podCidr'> {
  const node = e.DEPLOY_MCP_K8S_NODE_CIDR;
  const pods = e.DEPLOY_MCP_K8S_POD_CIDR;
  if (node && cidrContains(parseCidr(pods) as Cidr, parseCidr(node) as Cidr))
    throw new ConfigError(
      `invalid configuration:\n  DEPLOY_MCP_K8S_NODE_CIDR (${node}) lies inside the pod network DEPLOY_MCP_K8S_POD_CIDR (${pods})`,
    );
  return { nodeCidr: node, podCidr: pods };
}

function signInSettings(e: z.infer<typeof schema>): SignInSettings {
  const fail = (why: string) => new ConfigError(`invalid configuration:\n  ${why}`);
  let firebase: SignInSettings['firebase'];
  if (e.DEPLOY_MCP_FIREBASE_PROJECT_ID) {
    if (!e.DEPLOY_MCP_FIREBASE_API_KEY)
      throw fail('DEPLOY_MCP_FIREBASE_PROJECT_ID needs DEPLOY_MCP_FIREBASE_API_KEY (the web API key)');
    // The emulator's ID tokens are unsigned and firebase-admin accepts them in emulator mode:
    // only ever for a demo- project, which cannot exist in production.
    if (e.DEPLOY_MCP_FIREBASE_AUTH_EMULATOR && !e.DEPLOY_MCP_FIREBASE_PROJECT_ID.startsWith('demo-'))
      throw fail(
        'DEPLOY_MCP_FIREBASE_AUTH_EMULATOR is allowed only with a demo- project id (the emulator accepts unsigned tokens)',
      );
    firebase = {
      projectId: e.DEPLOY_MCP_FIREBASE_PROJECT_ID,
      apiKey: e.DEPLOY_MCP_FIREBASE_API_KEY,
      authEmulatorHost: e.DEPLOY_MCP_FIREBASE_AUTH_EMULATOR,
    };
  } else if (e.DEPLOY_MCP_FIREBASE_AUTH_EMULATOR) {
    throw fail('DEPLOY_MCP_FIREBASE_AUTH_EMULATOR needs DEPLOY_MCP_FIREBASE_PROJECT_ID (a demo- project)');
  }
  let github: SignInSettings['github'];
  if (e.DEPLOY_MCP_GITHUB_SIGN_IN_CLIENT_ID || e.DEPLOY_MCP_GITHUB_SIGN_IN_CLIENT_SECRET) {
    if (!e.DEPLOY_MCP_GITHUB_SIGN_IN_CLIENT_ID || !e.DEPLOY_MCP_GITHUB_SIGN_IN_CLIENT_SECRET)
      throw fail(
        'GitHub sign-in needs both DEPLOY_MCP_GITHUB_SIGN_IN_CLIENT_ID and DEPLOY_MCP_GITHUB_SIGN_IN_CLIENT_SECRET',
      );
    github = {
      clientId: e.DEPLOY_MCP_GITHUB_SIGN_IN_CLIENT_ID,
      clientSecret: e.DEPLOY_MCP_GITHUB_SIGN_IN_CLIENT_SECRET,
      webUrl: e.DEPLOY_MCP_GITHUB_SIGN_IN_WEB_URL.replace(/\/+$/, ''),
      apiUrl: e.DEPLOY_MCP_GITHUB_SIGN_IN_API_URL.replace(/\/+$/, ''),
    };
  }
  return { firebase, github };
}

// --- Resources (databases; issue 11) ---

/** Where resources live and how many one user may have. */
export type ResourceSettings = {
  /** Live resources one user may have (create_resource refuses a new one beyond it). */
  maxPerUser: number;
  /** Days the final backup of a deleted resource is kept (0: none is kept). */
  backupRetentionDays: number;
  postgres:
    | {
        /** The embedded server (Debian's PostgreSQL under `<dataDir>/postgres`) on this port. */
        kind: 'embedded';
        port: number;
      }
    | {
        /** A server the operator runs: an admin URL, and the host apps connect to. */
        kind: 'external';
        adminUrl: string;
        appHost: string;
      };
  /** Turso for `sqlite` resources (production); undefined: the embedded file. */
  turso: TursoSettings | undefined;
};

function resourceSettings(e: z.infer<typeof schema>): ResourceSettings {
  const adminUrl = e.DEPLOY_MCP_POSTGRES_ADMIN_URL;
  let postgres: ResourceSettings['postgres'] = { kind: 'embedded', port: e.DEPLOY_MCP_POSTGRES_PORT };
  if (adminUrl) {
    postgres = {
      kind: 'external',
      adminUrl,
      appHost: e.DEPLOY_MCP_POSTGRES_APP_HOST ?? new URL(adminUrl).host,
    };
  }
  return {
    maxPerUser: e.DEPLOY_MCP_MAX_RESOURCES,
    backupRetentionDays: e.DEPLOY_MCP_BACKUP_RETENTION_DAYS,
    postgres,
    turso: tursoSettings(e),
  };
}

// --- Turso (production SQLite; issue 11) ---

/** Turso's Platform API, where `sqlite` resources live when it is configured. */
export type TursoSettings = {
  /** The API's base URL (`https://api.turso.tech`); the client adds `/v1/`. */
  apiUrl: string;
  /** Organization slug. */
  org: string;
  /** Platform API token (a secret: never logged, a Pulumi secret in state). */
  apiToken: string;
  /** Groups are `<groupPrefix>-<location>`: one per region. */
  groupPrefix: string;
  /** Locations offered (create_resource's regions); the first is the default. */
  regions: string[];
  /** Lifetime of database tokens, in Turso's format (`52w`, `2w1d30m`). */
  tokenExpiration: string;
};

function tursoSettingsSchema() {
  return {
    DEPLOY_MCP_TURSO_API_URL: z
      .string()
      .regex(/^https?:\/\/[^\s/]+(\/\S*)?$/, 'must be an http(s) URL')
      .default('https://api.turso.tech'),
    DEPLOY_MCP_TURSO_ORG: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be an organization slug (lowercase letters, digits, -)')
      .optional(),
    DEPLOY_MCP_TURSO_API_TOKEN: z.string().min(1).optional(),
    DEPLOY_MCP_TURSO_GROUP_PREFIX: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,19}$/, 'must be lowercase letters, digits and -, at most 20')
      .default('deploy-mcp'),
    DEPLOY_MCP_TURSO_REGIONS: z
      .string()
      .regex(/^[a-z0-9-]+(,[a-z0-9-]+)*$/, 'must be Turso location codes separated by commas')
      .refine((v) => !v.split(',').includes('local'), '"local" is the embedded default\'s region')
      .default('aws-us-east-1'),
    DEPLOY_MCP_TURSO_TOKEN_EXPIRATION: z
      .string()
      .regex(/^(\d+[wdhms])+$/, 'must be a duration like 52w or 2w1d30m (tokens must expire)')
      .default('52w'),
  };
}

/** Turso's settings when the organization and its API token are both given; one alone is an error. */
function tursoSettings(e: z.infer<typeof schema>): TursoSettings | undefined {
  const org = e.DEPLOY_MCP_TURSO_ORG;
  const apiToken = e.DEPLOY_MCP_TURSO_API_TOKEN;
  if (!org && !apiToken) return undefined;
  if (!org || !apiToken)
    throw new ConfigError(
      'invalid configuration:\n  DEPLOY_MCP_TURSO_ORG and DEPLOY_MCP_TURSO_API_TOKEN go together (Turso for sqlite resources)',
    );
  return {
    apiUrl: e.DEPLOY_MCP_TURSO_API_URL.replace(/\/+$/, ''),
    org,
    apiToken,
    groupPrefix: e.DEPLOY_MCP_TURSO_GROUP_PREFIX,
    regions: [...new Set(e.DEPLOY_MCP_TURSO_REGIONS.split(','))],
    tokenExpiration: e.DEPLOY_MCP_TURSO_TOKEN_EXPIRATION,
  };
}

/** A `file://` URL's directory is made absolute (relative to `cwd`); other URLs are kept as given. */
function pulumiBackendUrl(url: string | undefined, dataDir: string, cwd: string): string {
  if (url === undefined) return `file://${path.join(dataDir, 'pulumi')}`;
  if (!url.startsWith('file://')) return url;
  const dir = url.slice('file://'.length);
  return dir.startsWith('~') ? url : `file://${path.resolve(cwd, dir)}`;
}

function blankToUndefined(env: Record<string, string | undefined>) {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === '' ? undefined : v]));
}
