import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { containerdPaths, importImage } from '../../core/cluster/containerd.ts';
import { clusterLayout } from '../../core/cluster/layout.ts';
import { ociArchive, type TarEntry } from '../../core/cluster/oci-archive.ts';
import { CNI_BIN_DIR } from '../../core/daemons/buildkit.ts';
import type { CertManagerImages } from '../cluster/cert-manager-install.ts';

const exec = promisify(execFile);

/** The images the in-cluster layer runs, as references containerd knows once imported. */
export type PlatformImages = { traefik: string; registry: string; buildkit: string };

type ImageRecipe = {
  name: string;
  /** Host binaries: where they are here → where they go in the image. */
  binaries: [string, string][];
  /** Other files of the image. */
  files?: TarEntry[];
  entrypoint: string[];
  env?: string[];
};

/** The upstream registry image's configuration (docker.io/library/registry:2): filesystem storage on :5000. */
const REGISTRY_CONFIG = `version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
`;

/**
 * What each image holds, from binaries `npm run setup` and `setup:kubernetes` already put on the
 * machine: Traefik and buildkitd from the tools cache (static Go binaries), the registry and runc
 * from Debian's packages (docker-registry, runc) with the shared libraries they load; BuildKit's
 * also the CNI plugins, iptables and dash its steps' network needs (Debian's
 * containernetworking-plugins, iptables, dash). Each
 * behaves as its upstream image does (same entrypoint, same paths), so the layer's objects are
 * the ones production runs with the upstream images.
 */
function recipes(binDir: string): ImageRecipe[] {
  return [
    { name: 'traefik', binaries: [[path.join(binDir, 'traefik'), 'traefik']], entrypoint: ['/traefik'] },
    {
      name: 'registry',
      // dash and timeout for the garbage collection before it serves (as the upstream image's
      // busybox: platform/cluster/registry.ts).
      binaries: [
        ['/usr/bin/docker-registry', 'bin/registry'],
        ['/usr/bin/dash', 'bin/sh'],
        ['/usr/bin/timeout', 'bin/timeout'],
      ],
      files: [{ name: 'etc/docker/registry/config.yml', data: Buffer.from(REGISTRY_CONFIG) }],
      entrypoint: ['/bin/registry', 'serve', '/etc/docker/registry/config.yml'],
    },
    {
      name: 'buildkit',
      binaries: [
        [path.join(binDir, 'buildkitd'), 'usr/bin/buildkitd'],
        ['/usr/sbin/runc', 'usr/bin/runc'],
        // Build steps' network (platform/cluster/buildkit.ts): the CNI plugins the conflist
        // names (tuning: no IPv6 on the step's link; and loopback, which BuildKit adds), and iptables for the plugin's masquerading
        // and the egress rules' init script (dash runs it).
        ...['ptp', 'host-local', 'loopback', 'tuning'].map(
          (p) => [path.join(CNI_BIN_DIR, p), `usr/lib/cni/${p}`] as [string, string],
        ),
        ['/usr/sbin/xtables-nft-multi', 'usr/sbin/iptables'],
        ['/usr/sbin/xtables-nft-multi', 'usr/sbin/iptables-restore'],
        ...xtablesExtensions(),
        ['/usr/bin/dash', 'bin/sh'],
      ],
      entrypoint: ['/usr/bin/buildkitd'],
      env: ['PATH=/usr/bin:/usr/sbin:/bin'],
    },
  ];
}

/** iptables' extensions (matches and targets, loaded by name), where it looks for them. */
function xtablesExtensions(): [string, string][] {
  const dir = fs.existsSync(XTABLES_DIR) ? XTABLES_DIR : undefined;
  if (!dir) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.so'))
    .sort()
    .map((f) => [path.join(dir, f), path.join(dir, f).slice(1)]);
}

/** Debian's iptables (nf_tables backend, as this machine's) loads its extensions from here. */
const XTABLES_DIR = `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/xtables`;

/** The shared libraries (and the loader) a dynamically linked binary needs, by their paths here. */
async function sharedLibraries(binary: string): Promise<string[]> {
  const { stdout } = await exec('ldd', [binary]).catch(() => ({ stdout: '' }));
  // "not a dynamic executable": none. Lines: "libc.so.6 => /lib/…/libc.so.6 (0x…)" or "/lib64/ld-linux… (0x…)".
  return [...stdout.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)].map((m) => m[1] as string);
}

/**
 * Builds (once per set of binaries: the archives are cached in `cacheDir`) the OCI archives of
 * Traefik, the registry and BuildKit, and imports them into the containerd of the one-node
 * cluster at `clusterDir`. Nothing is pulled from anywhere.
 */
export async function importPlatformImages(o: {
  binDir: string;
  cacheDir: string;
  clusterDir: string;
}): Promise<PlatformImages> {
  const socket = containerdPaths(clusterLayout(o.clusterDir).containerd).socket;
  const refs: Record<string, string> = {};
  for (const recipe of recipes(o.binDir)) {
    const { ref, archive } = await platformImage(recipe, o.cacheDir);
    await importImage(socket, ref, archive);
    refs[recipe.name] = ref;
  }
  return refs as PlatformImages;
}

/**
 * The images of cert-manager's controller, webhook and cainjector, from the static binaries
 * `npm run setup:kubernetes` built from the pinned module (`.tools/bin/cert-manager-<name>`), one
 * binary each at upstream's path (/app/cmd/<name>/<name>), imported into the one-node cluster's
 * containerd like the others (cached, nothing pulled).
 */
export async function importCertManagerImages(o: {
  binDir: string;
  cacheDir: string;
  clusterDir: string;
}): Promise<CertManagerImages> {
  const socket = containerdPaths(clusterLayout(o.clusterDir).containerd).socket;
  const refs: Record<string, string> = {};
  for (const name of ['controller', 'webhook', 'cainjector'] as const) {
    const binary = `app/cmd/${name}/${name}`;
    const { ref, archive } = await platformImage(
      {
        name: `cert-manager-${name}`,
        binaries: [[path.join(o.binDir, `cert-manager-${name}`), binary]],
        entrypoint: [`/${binary}`],
      },
      o.cacheDir,
    );
    await importImage(socket, ref, archive);
    refs[name] = ref;
  }
  return refs as CertManagerImages;
}

async function platformImage(r: ImageRecipe, cacheDir: string): Promise<{ ref: string; archive: string }> {
  const sources: [string, string][] = [];
  for (const [from, to] of r.binaries) {
    const real = fs.realpathSync(from);
    sources.push([real, to]);
    for (const lib of await sharedLibraries(real)) sources.push([fs.realpathSync(lib), lib.slice(1)]);
  }
  const unique = [...new Map(sources.map(([from, to]) => [to, from])).entries()];
  // The key: every source file's path, size and time, the extra files and the image settings.
  const key = createHash('sha256');
  for (const [to, from] of unique) {
    const st = fs.statSync(from);
    key.update(`${to}\0${from}\0${st.size}\0${st.mtimeMs}\0`);
  }
  for (const f of r.files ?? []) key.update(`${f.name}\0`).update(f.data);
  key.update(JSON.stringify([r.entrypoint, r.env]));
  const tag = key.digest('hex').slice(0, 12);
  const ref = `localhost/deploy-mcp/${r.name}:${tag}`;
  const dir = path.join(cacheDir, 'platform-images');
  const archive = path.join(dir, `${r.name}-${tag}.oci.tar`);
  if (fs.existsSync(archive)) return { ref, archive };
  const { archive: bytes } = ociArchive({
    ref,
    files: [
      ...unique.map(([to, from]) => ({ name: to, data: fs.readFileSync(from), mode: 0o755 })),
      ...(r.files ?? []),
    ],
    entrypoint: r.entrypoint,
    env: r.env,
    architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
  });
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${archive}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, archive);
  return { ref, archive };
}
