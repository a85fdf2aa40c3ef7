import { createHash } from 'node:crypto';

/** A file for a tar archive: path inside it, contents, permission bits. */
export type TarEntry = { name: string; data: Buffer; mode?: number };

/**
 * A ustar archive of regular files (names up to 100 bytes), with fixed owners and times so
 * equal inputs give equal bytes (and image digests).
 */
export function tar(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    if (Buffer.byteLength(e.name) > 100) throw new Error(`tar: name too long: ${e.name}`);
    const header = Buffer.alloc(512);
    const put = (text: string, offset: number, length: number) => header.write(text, offset, length, 'utf8');
    put(e.name, 0, 100);
    header.write(`${(e.mode ?? 0o644).toString(8).padStart(7, '0')}\0`, 100, 8);
    header.write('0000000\0', 108, 8); // uid
    header.write('0000000\0', 116, 8); // gid
    header.write(`${e.data.length.toString(8).padStart(11, '0')}\0`, 124, 12);
    header.write('00000000000\0', 136, 12); // mtime: the epoch
    header.write('        ', 148, 8); // checksum placeholder
    header.write('0', 156, 1); // regular file
    header.write('ustar\0', 257, 6);
    header.write('00', 263, 2);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
    blocks.push(header, e.data, Buffer.alloc((512 - (e.data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export type ImageSpec = {
  /** Full reference the image is known by once imported, e.g. localhost/deploy-mcp/pause:1. */
  ref: string;
  /** Files of its single layer. */
  files: TarEntry[];
  entrypoint: string[];
  /** "uid:gid" */
  user?: string;
  /** The image's environment, "NAME=value" (PATH for images with more than one program). */
  env?: string[];
  /** OCI architecture name (amd64, arm64). */
  architecture: string;
};

/**
 * A one-layer image as an OCI image layout in a tar archive, the form `ctr images import`
 * reads. Returns the archive and the manifest's digest.
 */
/** An OCI image manifest naming `config` and its uncompressed tar layers (digest, size). */
export function imageManifest(config: Buffer, layers: { digest: string; size: number }[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: sha256(config),
        size: config.length,
      },
      layers: layers.map((l) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: l.digest,
        size: l.size,
      })),
    }),
  );
}

export function ociArchive(spec: ImageSpec): { archive: Buffer; manifestDigest: string } {
  const layer = tar(spec.files);
  const layerDigest = sha256(layer);
  const config = Buffer.from(
    JSON.stringify({
      architecture: spec.architecture,
      os: 'linux',
      config: {
        Entrypoint: spec.entrypoint,
        ...(spec.user ? { User: spec.user } : {}),
        ...(spec.env ? { Env: spec.env } : {}),
      },
      rootfs: { type: 'layers', diff_ids: [layerDigest] },
    }),
  );
  const manifest = imageManifest(config, [{ digest: layerDigest, size: layer.length }]);
  const manifestDigest = sha256(manifest);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestDigest,
          size: manifest.length,
          platform: { architecture: spec.architecture, os: 'linux' },
          annotations: { 'io.containerd.image.name': spec.ref },
        },
      ],
    }),
  );
  const blob = (data: Buffer) => ({ name: `blobs/sha256/${sha256(data).slice(7)}`, data });
  const archive = tar([
    { name: 'oci-layout', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
    { name: 'index.json', data: index },
    blob(config),
    blob(layer),
    blob(manifest),
  ]);
  return { archive, manifestDigest };
}
