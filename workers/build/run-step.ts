/** The BuildKit secret that carries build-time env vars (never an ARG or ENV layer). */
export const BUILD_ENV_SECRET = 'build-env';

/** A package-manager cache kept between builds of one service (a BuildKit cache mount). */
export type Cache = { name: string; target: string };

/**
 * A RUN instruction that runs `command` with the build-time env vars loaded from the secret
 * mount, if any, and the given caches mounted under ids of `cacheId` (none without one).
 * BuildKit keeps a cache mount per id, so caches of different services never mix.
 */
export function runStep(command: string, o: { cacheId?: string | undefined; caches?: Cache[] } = {}): string {
  const script = `set -a; [ -f /run/secrets/${BUILD_ENV_SECRET} ] && . /run/secrets/${BUILD_ENV_SECRET}; set +a; ${command}`;
  const mounts = [`--mount=type=secret,id=${BUILD_ENV_SECRET}`];
  if (o.cacheId) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$/.test(o.cacheId))
      throw new Error(`invalid cache id ${o.cacheId}`);
    for (const c of o.caches ?? [])
      mounts.push(`--mount=type=cache,id=${o.cacheId}-${c.name},target=${c.target},sharing=locked`);
  }
  // Exec form: no outer shell expands $VARS before the secret's env vars are loaded.
  return `RUN ${mounts.join(' ')} ${JSON.stringify(['sh', '-c', script])}`;
}

/** CMD running `start` through a shell (so $PORT expands), as PID 1. */
export function startCmd(start: string): string {
  return `CMD ["sh", "-c", ${JSON.stringify(`exec ${start}`)}]`;
}

/** A COPY of the install files (files, not folders) into the working directory. */
export function copyFiles(files: string[]): string {
  return files.includes('.') ? 'COPY . .' : `COPY ${JSON.stringify([...files, './'])}`;
}
