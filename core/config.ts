import path from 'node:path';
import { z } from 'zod';

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
  DEPLOY_MCP_SECRET_KEY: z.string().optional(),
  DEPLOY_MCP_ALLOWED_ORIGINS: z.string().optional(),
  DEPLOY_MCP_INGRESS_PORT: z.coerce.number().int().min(1).max(65535).default(8080),
  DEPLOY_MCP_REGISTRY_PORT: z.coerce.number().int().min(1).max(65535).default(5000),
  DEPLOY_MCP_APPS_DOMAIN: z
    .string()
    .regex(/^[a-z0-9.-]+$/, 'must be a domain name')
    .default('localhost'),
  DEPLOY_MCP_BUILD_TIMEOUT_SECONDS: z.coerce.number().int().min(30).max(7200).default(900),
  DEPLOY_MCP_HEALTH_TIMEOUT_SECONDS: z.coerce.number().int().min(5).max(600).default(60),
  DEPLOY_MCP_GIT_TOKEN_TTL_SECONDS: z.coerce.number().int().min(60).max(86_400).default(3600),
  DEPLOY_MCP_GIT_MAX_PUSH_MB: z.coerce.number().int().min(1).max(10_240).default(200),
  DEPLOY_MCP_GIT_MAX_REPO_MB: z.coerce.number().int().min(1).max(102_400).default(1024),
  DEPLOY_MCP_GIT_MAX_REPOS: z.coerce.number().int().min(1).max(100_000).default(100),
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
  /** Base64 master key for secrets at rest; undefined: `<dataDir>/secret.key` (created once). */
  secretKey: string | undefined;
  /** Browser origins allowed to call /mcp (besides the public URL's own origin). */
  allowedOrigins: string[];
  runtime: {
    /** Traefik's entry point for apps: http://<name>.<appsDomain>:<ingressPort>. */
    ingressPort: number;
    /** Port of the embedded OCI registry on 127.0.0.1. */
    registryPort: number;
    appsDomain: string;
    buildTimeoutMs: number;
    healthTimeoutMs: number;
  };
  git: {
    /** Lifetime of the tokens in issued git remotes (capped at 24 h). */
    tokenTtlSeconds: number;
    maxPushBytes: number;
    maxRepoBytes: number;
    maxReposPerUser: number;
  };
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
    secretKey: e.DEPLOY_MCP_SECRET_KEY,
    allowedOrigins: (e.DEPLOY_MCP_ALLOWED_ORIGINS ?? '')
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean),
    runtime: {
      ingressPort: e.DEPLOY_MCP_INGRESS_PORT,
      registryPort: e.DEPLOY_MCP_REGISTRY_PORT,
      appsDomain: e.DEPLOY_MCP_APPS_DOMAIN,
      buildTimeoutMs: e.DEPLOY_MCP_BUILD_TIMEOUT_SECONDS * 1000,
      healthTimeoutMs: e.DEPLOY_MCP_HEALTH_TIMEOUT_SECONDS * 1000,
    },
    git: {
      tokenTtlSeconds: e.DEPLOY_MCP_GIT_TOKEN_TTL_SECONDS,
      maxPushBytes: e.DEPLOY_MCP_GIT_MAX_PUSH_MB * 1024 * 1024,
      maxRepoBytes: e.DEPLOY_MCP_GIT_MAX_REPO_MB * 1024 * 1024,
      maxReposPerUser: e.DEPLOY_MCP_GIT_MAX_REPOS,
    },
  };
}

function blankToUndefined(env: Record<string, string | undefined>) {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === '' ? undefined : v]));
}
