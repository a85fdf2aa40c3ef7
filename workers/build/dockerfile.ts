import type { BuildPlan } from './detect.ts';

export type BaseImages = {
  /** Debian bookworm + Node.js + npm, e.g. "127.0.0.1:5000/deploy-mcp/base-node:24.21.0". */
  node: string;
};

/** The BuildKit secret that carries build-time env vars (never an ARG or ENV layer). */
export const BUILD_ENV_SECRET = 'build-env';

/** Runs `command` with the build-time env vars loaded from the secret mount, if any. */
function withBuildEnv(command: string): string {
  const script = `set -a; [ -f /run/secrets/${BUILD_ENV_SECRET} ] && . /run/secrets/${BUILD_ENV_SECRET}; set +a; ${command}`;
  return `RUN --mount=type=secret,id=${BUILD_ENV_SECRET} sh -c ${JSON.stringify(script)}`;
}

/** The Dockerfile BuildKit builds for a generated plan (dockerfile plans use the repo's own). */
export function renderDockerfile(plan: Exclude<BuildPlan, { pack: 'dockerfile' }>, base: BaseImages): string {
  if (plan.pack === 'node') {
    return [
      `FROM ${base.node}`,
      'WORKDIR /app',
      // Dependencies first: the layer is reused while package.json and the lockfile are unchanged.
      'COPY package.json package-lock.json* ./',
      withBuildEnv(plan.install),
      'COPY . .',
      ...(plan.build ? [withBuildEnv(plan.build)] : []),
      'ENV NODE_ENV=production',
      `CMD ["sh", "-c", ${JSON.stringify(`exec ${plan.start}`)}]`,
      '',
    ].join('\n');
  }
  // Static sites are served by a tiny Node file server shipped in the base image.
  return [
    `FROM ${base.node}`,
    'WORKDIR /site',
    `COPY ${plan.root === '.' ? '.' : `${plan.root}/`} ./`,
    'CMD ["node", "/usr/local/lib/deploy-mcp/static-server.mjs", "/site"]',
    '',
  ].join('\n');
}

/** Files never sent to BuildKit. */
export const DOCKERIGNORE = ['.git', '.env', '.env.*', 'node_modules', ''].join('\n');

/** A dotenv file for the build secret: single-quoted values, so nothing is expanded. */
export function buildEnvFile(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => `${k}='${v.replaceAll("'", "'\\''")}'`)
    .join('\n');
}
