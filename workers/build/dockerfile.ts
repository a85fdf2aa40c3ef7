import { goDockerfile } from './go-pack.ts';
import { nodeDockerfile } from './node-pack.ts';
import type { BuildPlan, StaticPlan } from './plan.ts';
import { pythonDockerfile } from './python-pack.ts';

export { BUILD_ENV_SECRET } from './run-step.ts';

/** Base image references in the registry (base-images.ts publishes them). */
export type BaseImages = {
  /** Debian bookworm minbase + this machine's CA bundle: where compiled apps (Go) run. */
  runtime: string;
  /** runtime + Node.js + npm + the static file server. */
  node: string;
  /** Debian bookworm + Python 3.11, with a venv at /opt/venv on PATH. */
  python: string;
  /** runtime + the Go toolchain. */
  go: string;
};

export type RenderOptions = {
  /**
   * Key of the package-manager caches (npm, pnpm, yarn, pip, Go) kept between builds: one per
   * service, so services never share one. Without it builds use no cache mounts.
   */
  cacheId?: string | undefined;
  /** The node base of the plan's Node.js major when it is not the default (ensureNodeMajor). */
  nodeImage?: string | undefined;
  /** The python base of the plan's Python version when it is not the default (ensurePythonVersion). */
  pythonImage?: string | undefined;
};

/**
 * Image label saying the app runs on a read-only root filesystem (writable /tmp and HOME only).
 * Generated images carry it: their apps write nothing else. A user's Dockerfile may set it too.
 */
export const READ_ONLY_ROOT_LABEL = 'io.deploy-mcp.read-only-root';

/** The Dockerfile BuildKit builds for a generated plan (dockerfile plans use the repo's own). */
export function renderDockerfile(
  plan: Exclude<BuildPlan, { pack: 'dockerfile' }>,
  base: BaseImages,
  o: RenderOptions = {},
): string {
  const dockerfile = `${packDockerfile(plan, base, o)}LABEL ${READ_ONLY_ROOT_LABEL}="true"\n`;
  return o.cacheId ? scopeBuildCache(dockerfile, o.cacheId) : dockerfile;
}

/** Build argument that keys every build step's cache to one service (scopeBuildCache). */
export const CACHE_SCOPE_ARG = 'DEPLOY_MCP_CACHE_SCOPE';

/**
 * Declares CACHE_SCOPE_ARG (= `scope`, a service's id) at the top of every stage. A declared
 * argument is part of each RUN step's environment, hence of its cache key: without it, one
 * tenant's build could reuse — or poison — the cached result of another tenant's identical
 * step. Applied to users' Dockerfiles too.
 */
export function scopeBuildCache(dockerfile: string, scope: string): string {
  return dockerfile.replace(/^([ \t]*FROM[ \t][^\n]*)$/gim, `$1\nARG ${CACHE_SCOPE_ARG}=${scope}`);
}

function packDockerfile(
  plan: Exclude<BuildPlan, { pack: 'dockerfile' }>,
  base: BaseImages,
  o: RenderOptions,
) {
  switch (plan.pack) {
    case 'node':
      return nodeDockerfile(plan, base, o);
    case 'python':
      return pythonDockerfile(plan, base, o);
    case 'go':
      return goDockerfile(plan, base, o);
    case 'static':
      return staticDockerfile(plan, base);
  }
}

/** Static sites are served by a tiny Node file server shipped in the node base image. */
function staticDockerfile(plan: StaticPlan, base: BaseImages): string {
  return [
    `FROM ${base.node}`,
    'WORKDIR /site',
    `COPY ${plan.root === '.' ? '.' : `${plan.root}/`} ./`,
    'CMD ["node", "/usr/local/lib/deploy-mcp/static-server.mjs", "/site"]',
    '',
  ].join('\n');
}

/** Files never sent to BuildKit. */
export const DOCKERIGNORE = ['.git', '.env', '.env.*', 'node_modules', '.venv', '**/__pycache__', ''].join(
  '\n',
);

/** A dotenv file for the build secret: single-quoted values, so nothing is expanded. */
export function buildEnvFile(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => `${k}='${v.replaceAll("'", "'\\''")}'`)
    .join('\n');
}
