import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { childEnv } from '../child-env.ts';
import { run, SYSTEM_PATH } from './exec.ts';
import { ociArchive } from './oci-archive.ts';

const SOURCE_DIR = path.join(import.meta.dirname, 'pause');

export type PauseImage = {
  /** The reference containerd's CRI plugin uses as `sandbox_image`. */
  ref: string;
  /** OCI layout archive for `ctr images import`. */
  archive: string;
};

/** The pause image's reference for the current source: it changes when pause/main.go does. */
export function pauseImageRef(): string {
  return `localhost/deploy-mcp/pause:${sourceHash()}`;
}

/**
 * The pod sandbox image, built locally (there is no registry to pull one from): a static Go
 * program (pause/main.go) as a one-layer OCI image. Compiled once per source version into
 * `cacheDir` (the tools cache); later calls only check the file is there.
 */
export async function ensurePauseImage(cacheDir: string): Promise<PauseImage> {
  const ref = pauseImageRef();
  const dir = path.join(cacheDir, `pause-${sourceHash()}`);
  const archive = path.join(dir, 'pause.oci.tar');
  if (fs.existsSync(archive)) return { ref, archive };

  fs.mkdirSync(dir, { recursive: true });
  const binary = path.join(dir, 'pause');
  const go = findGo();
  await run(go, ['build', '-trimpath', '-ldflags=-s -w', '-o', binary, '.'], {
    cwd: SOURCE_DIR,
    env: { PATH: `${path.dirname(go)}:${SYSTEM_PATH}`, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '' },
    timeoutMs: 600_000,
  });
  const { archive: bytes } = ociArchive({
    ref,
    files: [{ name: 'pause', data: fs.readFileSync(binary), mode: 0o755 }],
    entrypoint: ['/pause'],
    user: '65535:65535',
    architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
  });
  const tmp = `${archive}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, archive);
  return { ref, archive };
}

function sourceHash(): string {
  const h = createHash('sha256');
  for (const f of ['go.mod', 'main.go']) h.update(fs.readFileSync(path.join(SOURCE_DIR, f)));
  return h.digest('hex').slice(0, 12);
}

/** The Go toolchain: on PATH, or where the setup script installs it. */
function findGo(): string {
  const dirs = [...(childEnv().PATH ?? '').split(':').filter(Boolean), '/usr/local/go/bin'];
  for (const dir of dirs) {
    const candidate = path.join(dir, 'go');
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error('the pause image is built with Go, which is not installed: run `npm run setup`');
}
