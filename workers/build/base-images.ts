import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildAndPush } from './buildkit.ts';
import type { BaseImages } from './dockerfile.ts';

const STATIC_SERVER = path.join(import.meta.dirname, 'static-server.mjs');

// The rootfs carries this machine's CA bundle (setup copies it); Node and npm use their own CA
// list unless told, which fails behind a TLS-inspecting proxy.
const BASE_DOCKERFILE = [
  'FROM scratch',
  'ADD rootfs.tar /',
  'COPY static-server.mjs /usr/local/lib/deploy-mcp/static-server.mjs',
  'ENV PATH=/usr/local/bin:/usr/bin:/bin NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \\',
  '    NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false',
  '',
].join('\n');

export type BaseImageOptions = {
  buildkitAddress: string;
  /** Registry host:port the images are pushed to and pulled from. */
  registryHost: string;
  /** The root filesystem tarball `npm run setup` made (.tools/images/base-node.tar). */
  rootfsTar: string;
  onLog?: (line: string) => void;
};

/**
 * Publishes the base images to the local registry once: the setup-made root filesystem plus the
 * static file server. The tag is a digest of both, so a new tarball or script makes a new image.
 */
export async function ensureBaseImages(o: BaseImageOptions): Promise<BaseImages> {
  const tar = fs.realpathSync(o.rootfsTar);
  const tag = createHash('sha256')
    .update(path.basename(tar))
    .update(BASE_DOCKERFILE)
    .update(fs.readFileSync(STATIC_SERVER))
    .digest('hex')
    .slice(0, 16);
  const node = `${o.registryHost}/deploy-mcp/base-node:${tag}`;
  const res = await fetch(`http://${o.registryHost}/v2/deploy-mcp/base-node/manifests/${tag}`, {
    method: 'HEAD',
    headers: {
      accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json',
    },
  });
  if (res.ok) return { node };

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'base-image-'));
  try {
    try {
      fs.linkSync(tar, path.join(dir, 'rootfs.tar'));
    } catch {
      fs.copyFileSync(tar, path.join(dir, 'rootfs.tar'));
    }
    fs.copyFileSync(STATIC_SERVER, path.join(dir, 'static-server.mjs'));
    fs.writeFileSync(path.join(dir, 'Dockerfile'), BASE_DOCKERFILE);
    await buildAndPush({
      address: o.buildkitAddress,
      contextDir: dir,
      dockerfileDir: dir,
      imageRef: node,
      timeoutMs: 300_000,
      onLog: o.onLog ?? (() => undefined),
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return { node };
}
